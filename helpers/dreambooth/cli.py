"""The command line: ``python -m helpers.dreambooth --config cfg.json`` (also under
``accelerate launch -m helpers.dreambooth ...`` on several GPUs or machines)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from helpers import tracking
from helpers.dreambooth.config import DreamBoothConfig
from helpers.dreambooth.loop import train


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.dreambooth --config cfg.json`` (also under ``accelerate launch``)."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers.dreambooth",
        description="Train a DreamBooth LoRA (run it with `accelerate launch -m "
                    "helpers.dreambooth ...` on several GPUs).")
    parser.add_argument("--config", type=Path, help="a JSON file of DreamBoothConfig settings")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting (VALUE is JSON, or a plain string)")
    parser.add_argument("--resume", default=None,
                        help="'latest' or a checkpoint folder to continue from")
    parser.add_argument("--project", default=None,
                        help="track the run in this tracking project (e.g. lesson-05)")
    parser.add_argument("--offline", action="store_true", help="track offline only")
    parser.add_argument("--write-config", type=Path, metavar="FILE",
                        help="write the default settings to FILE and exit")
    args = parser.parse_args(argv)
    if args.write_config:
        DreamBoothConfig().to_json(args.write_config)
        print(f"wrote {args.write_config}")
        return 0
    values = DreamBoothConfig.from_json(args.config).to_dict() if args.config else {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r} must look like KEY=VALUE, e.g. max_steps=100")
        values[key.strip()] = _parse_value(value)
    config = DreamBoothConfig.from_dict(values)
    run = None
    if args.project and os.environ.get("RANK", "0") == "0":  # the main process tracks
        run = tracking.start(args.project, online=False if args.offline else None)
    result = train(config, run=run, resume=args.resume)
    if run is not None:
        run.end()
    if os.environ.get("RANK", "0") == "0":
        print(f"final loss {result.final_loss:.4f}; LoRA in {result.lora_dir}")
    return 0
