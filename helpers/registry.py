"""The model registry: every model the course uses, by short name (a leaf: no heavy imports).

Each ``ModelSpec`` says where one model's weights live: a Hugging Face hub id at a revision,
or an official checkpoint URL with its published SHA-256. ``resolve(name, family)`` turns
what a learner types into a spec, in one place and with one error format:

- a registry name (``"sam-vit-b"``, ``"clip-b32"``, ...);
- an alias of one, looked up inside the family asked for (``"vit_b"`` is SAM ViT-B,
  ``"sd15"`` is SD 1.5 text-to-image for a ``Generator`` and SD 1.5 inpainting for an
  ``Inpainter``); ``"tiny"`` always means the tiny random model of the family asked for;
- with one family, a hub id ``"org/repo"`` or a local folder.

In tiny mode (``HELPERS_TINY_MODELS=1``) every spec resolves to its family's tiny random
model (built by ``helpers.tiny``), so the same calls run anywhere in seconds.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers import runtime

FAMILIES = ("sam", "clip", "owlvit", "owlv2", "grounding-dino", "sd-inpaint", "sd", "clipseg",
            "align", "sam3", "sam2-video", "whisper")
DIFFUSION_FAMILIES = ("sd-inpaint", "sd")
NOUNS = {"sam": "SAM model", "clip": "CLIP model", "owlvit": "detector", "owlv2": "detector",
         "grounding-dino": "detector", "sd-inpaint": "inpainting model",
         "sd": "text-to-image model", "clipseg": "text segmenter", "sam3": "concept segmenter",
         "align": "CLIP model",  # ALIGN is CLIP-like: both are clip.Embedder's
         "sam2-video": "video segmenter", "whisper": "speech recognizer"}
"""What a model of each family is called in messages ("unknown detector 'x'")."""
SOURCE_FAMILIES = tuple(f for f in FAMILIES if f != "sam")
"""Families whose loader also takes a hub id or a local folder (``from_pretrained``); a SAM
checkpoint needs its architecture, so SAM takes registry names only."""
CACHE_ENV = "HELPERS_CACHE"
TINY_ALIAS = "tiny"


@dataclass(frozen=True)
class ModelSpec:
    """Where one model's weights live.

    Attributes:
        name: the short registry name.
        family: one of ``FAMILIES``; it decides which loader builds the model.
        source: a hub id (``"org/repo"``), an ``https://`` checkpoint URL, a local path,
            or ``"tiny"`` for the family's tiny random model.
        revision: the hub revision (commit or tag) for hub ids.
        sha256: the published SHA-256 of a checkpoint file (URLs only).
        size_bytes: the approximate download size of ``source``, used to check free disk
            space first (the parts a spec adds, ``adapter`` and ``vae``, are in ``PART_BYTES``).
        arch: the architecture variant where the family has several (SAM: vit_b/l/h).
        description: one line for listings.
        aliases: other names for this spec, looked up within its family.
        mirrors: other hub ids with the same files, tried in order when ``source`` is gone
            from the hub (a one-line notice names the one used).
        licence: the licence, and whether the hub asks to accept it first (gated).
        scheduler: for diffusion models, the scheduler it samples with by default (a name
            of ``helpers.schedulers``: ``"dpm++"``, ``"lcm"``); None keeps the repository's.
        adapter: a LoRA loaded into the pipeline as part of the model (the LCM-LoRA of the
            few-step names): a hub id, or ``"tiny"`` for the tiny random one.
        vae: a replacement autoencoder (``AutoencoderTiny``, TAESD): a hub id or ``"tiny"``.
        tiny: the name of the tiny model that stands for this one in tiny mode (default:
            the family's ``tiny-<family>``).
    """

    name: str
    family: str
    source: str
    revision: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    arch: str | None = None
    description: str = ""
    aliases: tuple[str, ...] = ()
    mirrors: tuple[str, ...] = ()
    licence: str = ""
    scheduler: str | None = None
    adapter: str | None = None
    vae: str | None = None
    tiny: str | None = None

    @property
    def is_hub(self) -> bool:
        """True for a hub id ``"org/repo"`` (not a URL, a local folder or a tiny model)."""
        return not (self.is_tiny or self.is_url or Path(self.source).exists())

    @property
    def is_tiny(self) -> bool:
        """True for a tiny random model built in code."""
        return self.source == "tiny"

    @property
    def is_url(self) -> bool:
        """True for a checkpoint file downloaded from a URL (with its SHA-256)."""
        return self.source.startswith(("https://", "http://"))


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"
GB = 1_000_000_000

_OPENRAIL = "CreativeML OpenRAIL-M (use restrictions; not gated)"
_OPENRAIL_PP = "CreativeML Open RAIL++-M (use restrictions; not gated)"
_SD15_INPAINT = "stable-diffusion-v1-5/stable-diffusion-inpainting"
_SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
LCM_LORA = "latent-consistency/lcm-lora-sdv1-5"
"""The LCM-LoRA distilled from SD 1.5 (Apache-2.0, about 135 MB): 2-8 steps instead of 25-50."""
TAESD = "madebyollin/taesd"
"""TAESD, a small autoencoder for SD 1.x latents (MIT, about 10 MB): at 4 steps the full VAE
would be half the cost of a picture on a CPU."""
PART_BYTES = {LCM_LORA: 135_000_000, TAESD: 10_000_000}
"""Download sizes of the parts some names add to their base model's repository."""
ADAPTER = "lcm"
"""The adapter name under which a spec's own LoRA (``ModelSpec.adapter``) is loaded."""
_LCM = dict(scheduler="lcm", adapter=LCM_LORA, vae=TAESD, licence=_OPENRAIL)

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        # Segment Anything: the official checkpoints and the hashes published with them.
        ModelSpec("sam-vit-b", "sam", _SAM_URL + "sam_vit_b_01ec64.pth",
                  sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
                  size_bytes=375_042_383, arch="vit_b", description="SAM ViT-B (91M)",
                  aliases=("vit_b",), licence="Apache-2.0"),
        ModelSpec("sam-vit-l", "sam", _SAM_URL + "sam_vit_l_0b3195.pth",
                  sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
                  size_bytes=1_250_000_000, arch="vit_l", description="SAM ViT-L (308M)",
                  aliases=("vit_l",), licence="Apache-2.0"),
        ModelSpec("sam-vit-h", "sam", _SAM_URL + "sam_vit_h_4b8939.pth",
                  sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
                  size_bytes=2_564_550_879, arch="vit_h", description="SAM ViT-H (636M)",
                  aliases=("vit_h",), licence="Apache-2.0"),
        # SlimSAM: SAM ViT-B with most channels pruned away, as transformers' SamModel.
        ModelSpec("slimsam-77", "sam", "nielsr/slimsam-77-uniform", revision="main",
                  size_bytes=int(0.04 * GB), arch="hf", aliases=("slimsam", "fast"),
                  description="SlimSAM-77 (9.7M; SAM ViT-B pruned by 77%, fast on a CPU)",
                  licence="Apache-2.0", tiny="tiny-slimsam"),
        ModelSpec("slimsam-50", "sam", "nielsr/slimsam-50-uniform", revision="main",
                  size_bytes=int(0.11 * GB), arch="hf",
                  description="SlimSAM-50 (28M; SAM ViT-B pruned by 50%)",
                  licence="Apache-2.0", tiny="tiny-slimsam"),
        # CLIP
        ModelSpec("clip-b32", "clip", "openai/clip-vit-base-patch32", revision="main",
                  size_bytes=int(0.6 * GB), description="CLIP ViT-B/32", licence="MIT"),
        ModelSpec("clip-l14", "clip", "openai/clip-vit-large-patch14", revision="main",
                  size_bytes=int(1.7 * GB), description="CLIP ViT-L/14", licence="MIT"),
        # ALIGN: EfficientNet-B7 + BERT-base, Kakao Brain's replication trained on COYO-700M.
        ModelSpec("align-base", "align", "kakaobrain/align-base", revision="main",
                  size_bytes=690_000_000, aliases=("align",),
                  description="ALIGN base (EfficientNet-B7 + BERT-base, 172M)",
                  licence="not stated on its model card (not gated); ask Kakao Brain "
                          "before commercial use"),
        # Open-vocabulary detectors
        ModelSpec("owlvit-b32", "owlvit", "google/owlvit-base-patch32", revision="main",
                  size_bytes=int(0.6 * GB), description="OWL-ViT B/32", licence="Apache-2.0"),
        ModelSpec("owlvit-b16", "owlvit", "google/owlvit-base-patch16", revision="main",
                  size_bytes=int(0.6 * GB), description="OWL-ViT B/16", licence="Apache-2.0"),
        ModelSpec("owlv2-b16", "owlv2", "google/owlv2-base-patch16-ensemble", revision="main",
                  size_bytes=int(0.6 * GB), description="OWLv2 B/16 (ensemble)",
                  licence="Apache-2.0"),
        ModelSpec("grounding-dino-tiny", "grounding-dino", "IDEA-Research/grounding-dino-tiny",
                  revision="main", size_bytes=int(0.7 * GB), description="Grounding DINO T",
                  licence="Apache-2.0"),
        ModelSpec("grounding-dino-base", "grounding-dino", "IDEA-Research/grounding-dino-base",
                  revision="main", size_bytes=int(0.9 * GB), description="Grounding DINO B",
                  licence="Apache-2.0"),
        # Text (or an example image) -> a mask, in one model (helpers.clipseg). Its size is
        # approximate (CLIP ViT-B/16 + a 1M decoder, float32).
        ModelSpec("clipseg-rd64", "clipseg", "CIDAS/clipseg-rd64-refined", revision="main",
                  size_bytes=int(0.6 * GB), aliases=("clipseg",),
                  description="CLIPSeg rd64 refined (150M; text or example image -> mask)",
                  licence="Apache-2.0 (per its hub model card; not gated)"),
        # Text and/or exemplar boxes -> every instance's mask (helpers.sam3). Gated and heavy:
        # the hub asks to accept Meta's SAM License first; its size is approximate.
        ModelSpec("sam3", "sam3", "facebook/sam3", revision="main", size_bytes=int(3.4 * GB),
                  description="SAM 3 (848M; gated, heavy: about 3.4 GB, slow on a CPU)",
                  licence="SAM License (Meta's own, use restrictions; gated: accept it on "
                          "https://huggingface.co/facebook/sam3 first)"),
        # One click -> a mask that follows the object through a clip (helpers.video). Sizes
        # are float32 safetensors of the released architectures (38.9M, 46M, 80.8M params).
        ModelSpec("sam2.1-tiny", "sam2-video", "facebook/sam2.1-hiera-tiny", revision="main",
                  size_bytes=156_000_000, aliases=("sam2-video", "sam2.1"),
                  description="SAM 2.1 Hiera-T video tracker (39M)", licence="Apache-2.0"),
        ModelSpec("sam2.1-small", "sam2-video", "facebook/sam2.1-hiera-small", revision="main",
                  size_bytes=184_000_000, description="SAM 2.1 Hiera-S video tracker (46M)",
                  licence="Apache-2.0"),
        ModelSpec("sam2.1-base-plus", "sam2-video", "facebook/sam2.1-hiera-base-plus",
                  revision="main", size_bytes=323_000_000,
                  description="SAM 2.1 Hiera-B+ video tracker (81M)", licence="Apache-2.0"),
        # Speech -> text (helpers.speech); float32 safetensors of 38M, 73M and 242M params.
        ModelSpec("whisper-tiny", "whisper", "openai/whisper-tiny", revision="main",
                  size_bytes=151_000_000, aliases=("whisper",),
                  description="Whisper tiny, multilingual speech -> text (38M)",
                  licence="Apache-2.0 per its hub model card (OpenAI's code: MIT)"),
        ModelSpec("whisper-base", "whisper", "openai/whisper-base", revision="main",
                  size_bytes=290_000_000, description="Whisper base (73M)",
                  licence="Apache-2.0 per its hub model card (OpenAI's code: MIT)"),
        ModelSpec("whisper-small", "whisper", "openai/whisper-small", revision="main",
                  size_bytes=967_000_000, description="Whisper small (242M)",
                  licence="Apache-2.0 per its hub model card (OpenAI's code: MIT)"),
        # Stable Diffusion. RunwayML's SD 1.5 repos and Stability's SD 2 repos have left the
        # hub; these are the community mirrors that diffusers' own documentation uses.
        ModelSpec("sd15-inpaint", "sd-inpaint", _SD15_INPAINT, revision="main",
                  size_bytes=int(4.3 * GB), description="SD 1.5 inpainting",
                  aliases=("sd15",), mirrors=("sd-legacy/stable-diffusion-inpainting",),
                  licence=_OPENRAIL, scheduler="dpm++"),
        ModelSpec("sd2-inpaint", "sd-inpaint", "sd2-community/stable-diffusion-2-inpainting",
                  revision="main", size_bytes=int(5.2 * GB),
                  description="SD 2 inpainting (community mirror of the removed "
                              "stabilityai/stable-diffusion-2-inpainting)",
                  aliases=("sd2",), licence=_OPENRAIL_PP, scheduler="dpm++"),
        ModelSpec("sd15", "sd", _SD15, revision="main",
                  size_bytes=int(4.3 * GB), description="SD 1.5 text-to-image",
                  mirrors=("sd-legacy/stable-diffusion-v1-5",), licence=_OPENRAIL,
                  scheduler="dpm++"),
        # Few-step SD 1.5: the same weights with the LCM-LoRA, the LCM scheduler and TAESD.
        ModelSpec("sd15-inpaint-lcm", "sd-inpaint", _SD15_INPAINT, revision="main",
                  size_bytes=int(4.3 * GB), aliases=("lcm",),
                  description="SD 1.5 inpainting + LCM-LoRA + TAESD (4 steps)",
                  mirrors=("sd-legacy/stable-diffusion-inpainting",),
                  tiny="tiny-sd-inpaint-lcm", **_LCM),  # type: ignore[arg-type]
        ModelSpec("sd15-lcm", "sd", _SD15, revision="main", size_bytes=int(4.3 * GB),
                  aliases=("lcm",), description="SD 1.5 + LCM-LoRA + TAESD (4 steps)",
                  mirrors=("sd-legacy/stable-diffusion-v1-5",), tiny="tiny-sd-lcm",
                  **_LCM),  # type: ignore[arg-type]
    ]
}
# One tiny random model per family: what tiny mode swaps in (see helpers.tiny).
TINY: dict[str, ModelSpec] = {
    family: ModelSpec(f"tiny-{family}", family, "tiny", arch="tiny",
                      description=f"tiny random {family} (tests and tiny mode)",
                      aliases=(TINY_ALIAS,),
                      scheduler="dpm++" if family in DIFFUSION_FAMILIES else None)
    for family in FAMILIES
}
REGISTRY.update({spec.name: spec for spec in TINY.values()})
# Tiny stand-ins of the variants whose loading differs from their family's plain model.
REGISTRY.update({spec.name: spec for spec in [
    ModelSpec("tiny-slimsam", "sam", "tiny", arch="hf",
              description="tiny random transformers SAM (SlimSAM's class)"),
    *(ModelSpec(f"tiny-{family}-lcm", family, "tiny", arch="tiny", scheduler="lcm",
              adapter="tiny", vae="tiny",
              description=f"tiny random {family} + a tiny random LCM-style LoRA")
      for family in DIFFUSION_FAMILIES),
]})


def cache_dir() -> Path:
    """Where downloaded checkpoints and tiny models live (``HELPERS_CACHE`` or ~/.cache/helpers)."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "helpers")
    return Path(root)


def _families(family: str | Sequence[str] | None) -> tuple[str, ...]:
    if family is None:
        return FAMILIES
    chosen = (family,) if isinstance(family, str) else tuple(family)
    bad = [f for f in chosen if f not in FAMILIES]
    if bad or not chosen:
        raise ValueError(f"family {family!r} is not one of {', '.join(FAMILIES)}")
    return chosen


def names(family: str | Sequence[str] | None = None) -> list[str]:
    """Registry names, optionally of one family (or several) only."""
    chosen = _families(family)
    return [n for n, s in REGISTRY.items() if s.family in chosen]


def aliases(family: str | Sequence[str] | None = None) -> dict[str, str]:
    """alias -> registry name within ``family`` (the first family wins a shared alias)."""
    table: dict[str, str] = {}
    for fam in _families(family):
        for spec in REGISTRY.values():
            if spec.family == fam:
                for alias in spec.aliases:
                    table.setdefault(alias, spec.name)
    return table


def noun(family: str | Sequence[str] | None) -> str:
    """How messages call a model of ``family`` ("SAM model", "detector", or "model")."""
    if family is None:
        return "model"
    found = {NOUNS[f] for f in _families(family)}
    return found.pop() if len(found) == 1 else "model"


def resolve(name: str, family: str | Sequence[str] | None = None, *,
            tiny: bool = True) -> ModelSpec:
    """The spec that ``name`` stands for, with tiny mode applied (unless ``tiny=False``).

    Args:
        name: a registry name, an alias within ``family``, or (with exactly one family of
            ``SOURCE_FAMILIES``) a hub id ``"org/repo"`` or a local folder.
        family: one family, several (the first one's alias wins, so ``"tiny"`` for a
            detector is tiny OWL-ViT), or None for any registry name.

    Raises:
        ValueError: the name is unknown (the message lists close matches and the known
            names), or it belongs to another family than the one asked for.
    """
    chosen = _families(family)
    what = noun(family)
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{what} name {name!r} must be a non-empty string, "
                         f"e.g. {names(chosen)[0]!r}")
    spec = REGISTRY.get(name)
    if spec is None or spec.family not in chosen:
        alias = aliases(chosen).get(name) if family is not None else None
        if alias is not None:
            spec = REGISTRY[alias]
        elif spec is not None:
            raise ValueError(
                f"model {name!r} is a {spec.family} model, not {' or '.join(chosen)}; "
                f"choose one of {', '.join(names(chosen))}"
            )
        elif _takes_sources(chosen, family) and _looks_like_source(name):
            spec = ModelSpec(name, chosen[0], name, description="user-supplied")
        else:
            raise ValueError(_unknown(name, chosen, what, family is not None))
    if tiny and runtime.tiny_mode() and not spec.is_tiny:
        spec = REGISTRY[spec.tiny] if spec.tiny else TINY[spec.family]
    return spec


def _takes_sources(chosen: tuple[str, ...], family: object) -> bool:
    return family is not None and len(chosen) == 1 and chosen[0] in SOURCE_FAMILIES


def _looks_like_source(name: str) -> bool:
    return "/" in name or os.sep in name or Path(name).exists()


def _unknown(name: str, chosen: tuple[str, ...], what: str, scoped: bool) -> str:
    low = name.lower()
    if "lcm" in low and ("sd2" in low or "sd-2" in low or "stable-diffusion-2" in low):
        return (f"there is no few-step (LCM) version of SD 2, so {name!r} is not a model: the "
                "LCM-LoRA was distilled from SD 1.5 only. Use 'sd15-inpaint-lcm' (or "
                "'sd15-lcm') for 4-step pictures, or 'sd2-inpaint' with 25 DPM-Solver++ steps.")
    pool = names(chosen)
    extra = list(aliases(chosen)) if scoped else []
    close = difflib.get_close_matches(name, pool + extra, n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    known = ", ".join(pool) + (f" (or {', '.join(map(repr, extra))})" if extra else "")
    where = " or a hub id 'org/repo' or a local folder" if _takes_sources(
        chosen, chosen if scoped else None) else ""
    return f"unknown {what} {name!r}.{hint} Known: {known}{where}."
