"""Tiny random models, one per family, built in code so lessons and tests run offline.

Tiny mode (``HELPERS_TINY_MODELS=1``) and the tests swap every real model for a tiny one of
the same family: the same classes (``CLIPModel``, ``Owlv2ForObjectDetection``, SAM's ``Sam``,
``StableDiffusionInpaintPipeline``, ...) with a few thousand random weights instead of
millions of trained ones. Nothing is downloaded: every config, tokenizer vocabulary and
weight is made here, saved to a folder under ``registry.cache_dir() / "tiny"``, and loaded
back by ``helpers.models`` through exactly the loader that reads real weights. The outputs
are meaningless (the weights are random) but have the real shapes and types, so every cell
of a lesson runs, in seconds, on any laptop.

``ensure(family)`` builds a family's folder once (atomically, so two processes never see
a half-written one) and returns it; ``VERSION`` is part of the folder name, so bumping it
after a builder changes makes every machine rebuild.

Importing this module is cheap: torch, transformers and diffusers are imported inside the
functions that need them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpers import registry, tiny_hf, tiny_speech
from helpers.vocab import (  # noqa: F401  (re-exported: the tiny models' tokenizers)
    BERT_IDS,
    WORDS,
    bert_tokenizer,
    bert_vocab,
    clip_tokenizer,
    clip_vocab,
)

if TYPE_CHECKING:
    from segment_anything.modeling import Sam

VERSION = 2
"""Bump when a builder changes: it is part of the folder name, so old folders are rebuilt."""

MARKER = ".tiny-complete"
"""The file written last into a finished folder; a folder without it is not used."""

SAM_CONFIG = "sam_config.json"
"""The file in a tiny SAM folder that holds the architecture parameters."""

# ---------------------------------------------------------------- the cache folder

KINDS = (*registry.FAMILIES, "lcm-lora", "taesd", "sam-hf")
"""What ``ensure`` builds: one tiny model per family, and the parts some variants add (a
tiny LCM-style LoRA and a tiny TAESD for the few-step names, a transformers SAM for the
fast SAMs)."""


def kind_of(spec: registry.ModelSpec) -> str:
    """Which tiny build stands for the tiny ``spec`` (its family, or ``"sam-hf"``)."""
    return "sam-hf" if spec.family == "sam" and spec.arch == "hf" else spec.family


def folder_for(family: str) -> Path:
    """The folder where ``family``'s tiny model lives (whether or not it is built yet)."""
    _check_family(family)
    return registry.cache_dir() / "tiny" / f"{family}-v{VERSION}"


def ensure(family: str) -> Path:
    """The folder of ``family``'s tiny model, building it first if it is not there yet.

    The model is built into a temporary folder beside the final one and renamed into place
    only when complete, so an interrupted build never leaves a folder that looks finished.
    If another process finishes first, its folder is used and this one is discarded.

    Args:
        family: one of ``registry.FAMILIES``.

    Returns:
        The folder, ready for the family's loader in ``helpers.models``.

    Raises:
        ValueError: ``family`` is not one of ``registry.FAMILIES``.
    """
    folder = folder_for(family)
    if (folder / MARKER).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        build(family, tmp)
        (tmp / MARKER).write_text(f"tiny {family} v{VERSION}\n")
        if folder.exists() and not (folder / MARKER).exists():
            # A folder without the marker is not ours to trust (an old crash, a hand copy).
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / MARKER).exists():
                raise
            # Another process won the race: its folder is as good as ours.
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _remove_stale_builds(folder: Path, age_s: float = 3600.0) -> None:
    """Delete temporary build folders of ``folder`` left by processes that died mid-build."""
    for old in folder.parent.glob(f".{folder.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > age_s:
                shutil.rmtree(old, ignore_errors=True)


def build(family: str, folder: Path) -> Path:
    """Build ``family``'s tiny model into ``folder`` (created if needed) and return it.

    Builds are deterministic: the same code and library versions give the same weights.

    Raises:
        ValueError: ``family`` is not one of ``registry.FAMILIES``.
    """
    _check_family(family)
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # A private random stream: the caller's torch RNG state is left as it was.
    libraries: tuple[str, ...] = ("transformers",)  # whose progress bars to silence
    if family in ("sam", "taesd"):
        libraries = ()
    elif family in registry.DIFFUSION_FAMILIES:
        libraries = ("transformers", "diffusers")
    with _quiet(libraries), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _BUILDERS[family](folder)
    return folder


def _check_family(family: str) -> None:
    if family not in KINDS:
        raise ValueError(
            f"no tiny model for family {family!r}; choose one of {', '.join(KINDS)}"
        )


@contextlib.contextmanager
def _quiet(libraries: tuple[str, ...]) -> Iterator[None]:
    """Silence the progress bars and chatter of ``libraries`` (transformers, diffusers) while
    a tiny model is built, and restore their settings afterwards."""
    import importlib

    saved = []
    for name in libraries:
        log = importlib.import_module(f"{name}.utils.logging")
        saved.append((log, log.is_progress_bar_enabled(), log.get_verbosity()))
        log.disable_progress_bar()
        log.set_verbosity_error()
    try:
        yield
    finally:
        for log, bar, level in saved:
            log.set_verbosity(level)
            if bar:
                log.enable_progress_bar()


_SAM_DEFAULTS: dict[str, Any] = {
    "image_size": 256,           # SAM's preprocessing pads to a square of this side
    "patch_size": 16,            # the embedding grid is image_size // 16, like the real SAM
    "encoder_embed_dim": 32,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "encoder_global_attn_indexes": [1],
    "window_size": 4,
    "prompt_embed_dim": 32,      # also the image encoder's out_chans
    "mask_in_chans": 16,
    "decoder_depth": 1,
    "decoder_mlp_dim": 64,
    "decoder_num_heads": 2,
    "iou_head_depth": 2,
    "iou_head_hidden_dim": 32,
}


def sam_architecture(folder: str | Path) -> Sam:
    """An untrained ``Sam`` built from the parameters in ``folder / "sam_config.json"``.

    It mirrors ``segment_anything.build_sam._build_sam`` with small sizes; the loader then
    reads the weights from ``folder / "sam.pth"`` as it does for the official checkpoints.
    """
    from functools import partial

    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    cfg = {**_SAM_DEFAULTS, **json.loads((Path(folder) / SAM_CONFIG).read_text())}
    image_size, patch, dim = cfg["image_size"], cfg["patch_size"], cfg["prompt_embed_dim"]
    if image_size % patch:
        raise ValueError(f"SAM image_size {image_size} is not a multiple of patch {patch}")
    grid = image_size // patch
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg["encoder_depth"], embed_dim=cfg["encoder_embed_dim"], img_size=image_size,
            mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg["encoder_num_heads"], patch_size=patch, qkv_bias=True,
            use_rel_pos=True, global_attn_indexes=tuple(cfg["encoder_global_attn_indexes"]),
            window_size=cfg["window_size"], out_chans=dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim, image_embedding_size=(grid, grid),
            input_image_size=(image_size, image_size), mask_in_chans=cfg["mask_in_chans"],
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=cfg["decoder_depth"], embedding_dim=dim,
                                          mlp_dim=cfg["decoder_mlp_dim"],
                                          num_heads=cfg["decoder_num_heads"]),
            transformer_dim=dim, iou_head_depth=cfg["iou_head_depth"],
            iou_head_hidden_dim=cfg["iou_head_hidden_dim"],
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def _build_sam(folder: Path) -> None:
    import torch

    (folder / SAM_CONFIG).write_text(json.dumps(_SAM_DEFAULTS, indent=2) + "\n")
    sam = sam_architecture(folder)
    torch.save(sam.state_dict(), folder / "sam.pth")


def _tiny_unet(inpaint: bool) -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8, in_channels=9 if inpaint else 4, out_channels=4, layers_per_block=1,
        block_out_channels=(32, 64), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        attention_head_dim=8,
    )


def _build_stable_diffusion(folder: Path, inpaint: bool) -> None:
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(CLIPTextConfig(**tiny_hf.clip_text_config(tokenizer)))
    unet = _tiny_unet(inpaint)
    # Four blocks, so the latents are 1/8 of the image side as in the real SD.
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
        block_out_channels=(32, 32, 32, 32), sample_size=64,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    )
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1)
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionPipeline
    pipe = cls(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
               scheduler=scheduler, safety_checker=None, feature_extractor=None,
               requires_safety_checker=False)
    pipe.save_pretrained(folder)


def _build_sd_inpaint(folder: Path) -> None:
    _build_stable_diffusion(folder, inpaint=True)


def _build_sd(folder: Path) -> None:
    _build_stable_diffusion(folder, inpaint=False)


def _build_lcm_lora(folder: Path) -> None:
    """A random LoRA on the attention layers of the tiny UNet, saved as diffusers saves a
    LoRA: it stands for the LCM-LoRA (both tiny UNets share those layers, as SD 1.5's
    text-to-image and inpainting UNets do)."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = _tiny_unet(inpaint=False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # small, so the adapter changes the picture without swamping it
        for name, param in unet.named_parameters():
            if "lora_" in name:
                param.mul_(0.3)
    StableDiffusionPipeline.save_lora_weights(
        str(folder), unet_lora_layers=get_peft_model_state_dict(unet), safe_serialization=True)


def _build_taesd(folder: Path) -> None:
    """A tiny ``AutoencoderTiny`` (TAESD's class): four blocks, so latents are 1/8 of the
    image side with 4 channels, as with SD's own VAE."""
    from diffusers import AutoencoderTiny

    AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8),
                    decoder_block_out_channels=(8, 8, 8, 8), num_encoder_blocks=(1, 1, 1, 1),
                    num_decoder_blocks=(1, 1, 1, 1)).save_pretrained(folder)


def _build_sam_hf(folder: Path) -> None:
    from helpers import sam_hf

    sam_hf.build_tiny(folder)


_BUILDERS: dict[str, Callable[[Path], None]] = {
    **tiny_hf.BUILDERS,
    **tiny_speech.BUILDERS,
    "sam": _build_sam,
    "sd-inpaint": _build_sd_inpaint,
    "sd": _build_sd,
    "lcm-lora": _build_lcm_lora,
    "taesd": _build_taesd,
    "sam-hf": _build_sam_hf,
}
