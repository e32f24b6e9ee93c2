"""Synthesise the course's spoken prompts with espeak-ng, and write data/speech/manifest.json.

Run by a maintainer (``apt-get install espeak-ng``, then ``python data/make_speech.py``); the
WAV files and the manifest are committed, so neither the course nor its tests need
espeak-ng. Each file is 16-bit mono at 16 kHz (what Whisper reads), with the sentence it
says in the manifest. espeak-ng is a formant synthesiser: the voice is robotic, but every
word is clear, and its output is not covered by the program's GPL (the files are offered
under CC0).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from helpers import speech  # noqa: E402

OUT = HERE / "speech"
VOICE, SPEED = "en-us", 140  # words per minute: a little slower than espeak-ng's 175
PROMPTS = {"a-cup-of-coffee": "a cup of coffee", "a-red-motorcycle": "a red motorcycle"}


def synthesise(text: str) -> np.ndarray:
    """``text`` spoken by espeak-ng, mono float32 at 16 kHz."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(SPEED), "-w", str(raw), text],
                       check=True)
        return speech.load_audio(raw).samples


def main() -> None:
    OUT.mkdir(exist_ok=True)
    version = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True,
                             check=True).stdout.split("Data at")[0].strip()
    records = []
    for name, text in PROMPTS.items():
        samples = synthesise(text)
        path = OUT / f"{name}.wav"
        pcm = (np.clip(samples, -1, 1) * 32767).round().astype("<i2")
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(speech.RATE)
            out.writeframes(pcm.tobytes())
        data = path.read_bytes()
        records.append({"name": name, "file": path.name, "text": text,
                        "made_with": f"{version}, voice {VOICE}, {SPEED} words a minute, "
                                     "by data/make_speech.py",
                        "licence": "CC0 1.0 (synthesised; espeak-ng's GPL covers the program, "
                                   "not its output)",
                        "rate": speech.RATE, "seconds": round(len(pcm) / speech.RATE, 3),
                        "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        print(f"{path.relative_to(HERE.parent)}: {text!r}, {len(pcm) / speech.RATE:.2f} s")
    (OUT / "manifest.json").write_text(json.dumps({"speech": records}, indent=2) + "\n")


if __name__ == "__main__":
    main()
