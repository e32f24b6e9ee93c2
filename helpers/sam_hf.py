"""Segment Anything as a transformers ``SamModel``: SlimSAM's fast checkpoints.

SlimSAM (``nielsr/slimsam-77-uniform``, ``nielsr/slimsam-50-uniform``) is SAM ViT-B with
its image encoder pruned from 768 channels to 168 or 384 (77 % or 50 % of its weights
gone); the prompt encoder and mask decoder are SAM's own. The checkpoints are transformers
``SamModel`` + ``SamProcessor`` folders, not ``segment_anything`` files, so they need their
own loader and predictor:

- ``load(source, revision, device)`` reads a hub id or a folder;
- ``build_tiny(folder)`` writes a tiny random ``SamModel`` of the same layout (tiny mode);
- ``HFSamPredictor`` is what ``sam.Segmenter`` uses in place of ``SamPredictor`` for such a
  model: the image encoder runs once per image, each prompt only runs the prompt encoder and
  mask decoder on the kept embedding.

Coordinates are those of the original image: points ``(x, y)`` and boxes
``[x1, y1, x2, y2]`` in pixels. torch and transformers are imported inside the functions,
so importing this module costs nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# The tiny model: a 256-pixel square input and a 16x16 embedding grid, like the tiny
# segment_anything SAM, so the low-resolution logits are 64x64 (the real SAM's: 256x256).
_TINY_SIDE = 256
_TINY_PATCH = 16
_TINY_WIDTH = 32


def load(source: str, revision: str | None, device: str) -> tuple[Any, Any]:
    """A transformers ``SamModel`` and its ``SamProcessor`` from a hub id or a folder.

    Args:
        source: a hub id such as ``"nielsr/slimsam-77-uniform"``, or a folder written by
            ``save_pretrained`` (``build_tiny`` writes one).
        revision: the hub commit, branch or tag; None for the repository's default.
        device: where the model goes ("cpu", "cuda", "mps").

    Returns:
        (model, processor): the model in float32 (SAM's mask decoder is not reliable in half
        precision), in eval mode on ``device``.
    """
    import torch
    from transformers import SamModel, SamProcessor

    kwargs: dict[str, Any] = {} if revision is None else {"revision": revision}
    model = SamModel.from_pretrained(source, dtype=torch.float32, **kwargs)
    processor = SamProcessor.from_pretrained(source, **kwargs)
    return model.to(device).eval(), processor


# The SlimSAM checkpoints' vision_config (their config.json sets only these two; the rest
# is SamConfig's default, which is SAM ViT-B: 12 layers, 12 heads, 1024-pixel input, patch 16,
# global attention in layers 2, 5, 8, 11, window 14). The prompt encoder and mask decoder
# are SAM's own.
SLIMSAM_VISION: dict[str, dict[str, int]] = {
    "slimsam-77": {"hidden_size": 168, "mlp_dim": 696},    # nielsr/slimsam-77-uniform
    "slimsam-50": {"hidden_size": 384, "mlp_dim": 1536},   # nielsr/slimsam-50-uniform
}


def slimsam_config(name: str) -> Any:
    """The full-size ``SamConfig`` of SlimSAM ``name`` ("slimsam-77" or "slimsam-50"), for
    a model with random weights (benchmarks: the real cost without a download).

    Raises:
        ValueError: ``name`` is not one of ``SLIMSAM_VISION``.
    """
    from transformers import SamConfig

    if name not in SLIMSAM_VISION:
        raise ValueError(f"unknown SlimSAM {name!r}; choose one of {', '.join(SLIMSAM_VISION)}")
    # A realistic weight scale: the library's 1e-10 would run the encoder on denormals.
    return SamConfig(vision_config={**SLIMSAM_VISION[name], "initializer_range": 0.02})


def tiny_config() -> Any:
    """The ``SamConfig`` of the tiny random model (about 100k parameters)."""
    from transformers import SamConfig

    width = _TINY_WIDTH
    return SamConfig(
        vision_config={
            "hidden_size": width, "output_channels": width, "num_hidden_layers": 2,
            "num_attention_heads": 2, "mlp_dim": 2 * width, "image_size": _TINY_SIDE,
            "patch_size": _TINY_PATCH, "window_size": 4, "global_attn_indexes": [1],
            # the point encoding is sin and cos of num_pos_feats each: the prompt width
            "num_pos_feats": width // 2,
            # The library's 1e-10 gives a random encoder whose embedding ignores the image.
            "initializer_range": 0.1,
        },
        prompt_encoder_config={"hidden_size": width, "image_size": _TINY_SIDE,
                               "patch_size": _TINY_PATCH, "mask_input_channels": 16},
        mask_decoder_config={"hidden_size": width, "mlp_dim": 2 * width,
                             "num_hidden_layers": 2, "num_attention_heads": 2,
                             "iou_head_depth": 2, "iou_head_hidden_dim": width},
        # The library's 0.02 gives logits of 1e-5, where rounding flips pixels; 0.2 puts
        # most of them well away from the threshold, so masks compare exactly.
        initializer_range=0.2,
    )


def processor_for(side: int) -> Any:
    """A ``SamProcessor`` that resizes the long side to ``side`` and pads to a square of
    ``side`` (SAM's preprocessing, ImageNet mean and std); its low-resolution mask size is
    ``side // 4``."""
    from transformers import SamImageProcessor, SamProcessor

    from helpers import checks

    plain = checks.integer("side", side, hint="a multiple of 16 pixels, such as 1024")
    if plain < 16 or plain % 16:
        raise ValueError(f"side {side!r} must be a multiple of 16 pixels, such as 1024")
    side = plain
    mask = side // 4
    return SamProcessor(image_processor=SamImageProcessor(
        size={"longest_edge": side}, pad_size={"height": side, "width": side},
        mask_size={"longest_edge": mask}, mask_pad_size={"height": mask, "width": mask}))


def build_tiny(folder: Path) -> None:
    """Save a tiny random ``SamModel`` and its matching ``SamProcessor`` into ``folder``.

    ``load(str(folder), None, "cpu")`` reads them back. The weights come from torch's
    global random stream: the caller seeds it (``tiny.build`` does, with 0) for the same
    weights on every build.

    Args:
        folder: an existing or new folder; its ``config.json``, ``model.safetensors`` and
            processor file are overwritten.
    """
    from transformers import SamModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    SamModel(tiny_config()).eval().save_pretrained(folder)
    processor_for(_TINY_SIDE).save_pretrained(folder)


def is_sam_model(model: Any) -> bool:
    """True for a transformers ``SamModel`` (what ``HFSamPredictor`` drives)."""
    return all(hasattr(model, name) for name in
               ("get_image_embeddings", "prompt_encoder", "mask_decoder", "config"))


def _processor_sides(image_processor: Any) -> tuple[int, int]:
    """(resize, pad): the long side the processor resizes to and the square it pads to."""
    size, pad = image_processor.size, image_processor.pad_size
    resize = size["longest_edge"] if size is not None else None
    height, width = (pad["height"], pad["width"]) if pad is not None else (None, None)
    if resize is None or height is None or height != width:
        raise ValueError(
            f"the processor resizes to {size!r} and pads to {pad!r}; SAM needs a longest "
            "edge and a square pad of the same side (1024 for SlimSAM): save the "
            "processor that came with the model next to it"
        )
    return int(resize), int(height)


class HFSamPredictor:
    """SAM's two steps on a transformers ``SamModel``: embed an image once, decode prompts.

    It keeps the state ``segment_anything.SamPredictor`` keeps (``features``,
    ``original_size``, ``input_size``, ``is_image_set``) and answers ``predict`` with the
    same arrays, so ``sam.Segmenter`` drives either one alike. The masks are those of
    transformers' own path (``SamProcessor`` -> ``SamModel`` -> ``post_process_masks``);
    only the encoder is not run again for each prompt.

    Args:
        model: a transformers ``SamModel`` (float32).
        processor: its ``SamProcessor``; its resize, pad and mask sizes must agree with the
            model's ``image_size`` and embedding grid.

    Raises:
        TypeError: ``model`` is not a ``SamModel`` or ``processor`` not a ``SamProcessor``.
        ValueError: the processor and the model disagree on the input size.
    """

    def __init__(self, model: Any, processor: Any) -> None:
        if not is_sam_model(model):
            raise TypeError(f"HFSamPredictor takes a transformers SamModel, not "
                            f"{type(model).__name__}; load one with sam_hf.load(...)")
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is None:
            raise TypeError(f"HFSamPredictor needs the model's SamProcessor, not "
                            f"{type(processor).__name__}; load it with sam_hf.load(...)")
        config = model.config
        side = int(config.vision_config.image_size)
        resize, pad = _processor_sides(image_processor)
        prompt_side = int(config.prompt_encoder_config.image_size)
        if not resize == pad == side == prompt_side:
            raise ValueError(
                f"the processor resizes to {resize} and pads to {pad} pixels, but the model "
                f"takes {side} (prompt encoder: {prompt_side}); save the processor that came "
                "with the model next to it"
            )
        grid = int(config.prompt_encoder_config.image_embedding_size)
        self.model = model
        self.processor = processor
        self.image_side = side
        """Side of the square the encoder sees (1024 for SlimSAM), in pixels."""
        self.mask_size: tuple[int, int] = (4 * grid, 4 * grid)
        """(h, w) of the low-resolution logits: four times the embedding grid."""
        self.features: Any = None
        self.original_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None
        self.is_image_set = False

    @property
    def device(self) -> Any:
        """The torch device the model is on."""
        return next(self.model.parameters()).device

    def reset_image(self) -> None:
        """Forget the current image's embedding."""
        self.features = None
        self.original_size = None
        self.input_size = None
        self.is_image_set = False

    # ------------------------------------------------------------ once per image
    def set_image(self, image: np.ndarray) -> None:
        """Run the image encoder on ``image`` and keep its embedding.

        Args:
            image: (H, W, 3) uint8 RGB.

        Raises:
            ValueError: ``image`` is not (H, W, 3) uint8.
        """
        import torch

        arr = np.asarray(image)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"image must be an (H, W, 3) uint8 RGB array; got shape "
                             f"{arr.shape} {arr.dtype}; load it with images.load(...)")
        if not arr.flags.writeable:  # a PIL image's buffer; torch.from_numpy warns on it
            arr = arr.copy()
        batch = self.processor(images=arr, return_tensors="pt")
        param = next(self.model.parameters())
        pixels = batch["pixel_values"].to(param.device, param.dtype)
        with torch.inference_mode():
            features = self.model.get_image_embeddings(pixels)
        self.features = features
        (h, w), (new_h, new_w) = batch["original_sizes"][0], batch["reshaped_input_sizes"][0]
        self.original_size = (int(h), int(w))
        self.input_size = (int(new_h), int(new_w))
        self.is_image_set = True

    # ------------------------------------------------------------ once per prompt
    def _require_image(self) -> tuple[tuple[int, int], tuple[int, int]]:
        if not self.is_image_set or self.original_size is None or self.input_size is None:
            raise RuntimeError("no image is set: call set_image(image) before predicting")
        return self.original_size, self.input_size

    def to_input_frame(self, coords: np.ndarray) -> np.ndarray:
        """(..., 2) ``(x, y)`` original pixels -> pixels of the resized image the encoder saw
        (before padding), scaled per axis like ``SamProcessor`` does."""
        (h, w), (new_h, new_w) = self._require_image()
        return np.asarray(coords, np.float64) * np.array([new_w / w, new_h / h])

    def upscale(self, logits: Any) -> Any:
        """(N, h, w) low-resolution logits -> (N, H, W) logits at the original size: up to
        the padded square, the padding cut off, then down to the original size (bilinear,
        as ``post_process_masks``)."""
        import torch.nn.functional as F  # noqa: N812

        original, (new_h, new_w) = self._require_image()
        side = self.image_side
        out = F.interpolate(logits[None].float(), (side, side), mode="bilinear",
                            align_corners=False)
        out = out[..., :new_h, :new_w]
        return F.interpolate(out, original, mode="bilinear", align_corners=False)[0]

    def _decode(self, points: np.ndarray | None, labels: np.ndarray | None,
                boxes: np.ndarray | None, mask: np.ndarray | None,
                multimask: bool) -> tuple[Any, Any]:
        """The mask decoder on the kept embedding: (P, K, h, w) logits and (P, K) scores
        for P prompts (P boxes, or one point set)."""
        import torch

        device = self.features.device
        kwargs: dict[str, Any] = {}
        if points is not None:
            pts = self.to_input_frame(points).reshape(1, 1, -1, 2)
            kwargs["input_points"] = torch.as_tensor(pts, dtype=torch.float32, device=device)
            kwargs["input_labels"] = torch.as_tensor(
                np.asarray(labels, np.int64).reshape(1, 1, -1), device=device)
        if boxes is not None:
            corners = self.to_input_frame(np.asarray(boxes).reshape(-1, 2, 2))
            kwargs["input_boxes"] = torch.as_tensor(corners.reshape(1, -1, 4),
                                                    dtype=torch.float32, device=device)
        if mask is not None:
            kwargs["input_masks"] = torch.as_tensor(
                np.asarray(mask, np.float32).reshape(1, 1, *self.mask_size), device=device)
        with torch.inference_mode():
            out = self.model(image_embeddings=self.features, multimask_output=bool(multimask),
                             **kwargs)
        return out.pred_masks[0], out.iou_scores[0]

    def predict(self, point_coords: np.ndarray | None = None,
                point_labels: np.ndarray | None = None, box: np.ndarray | None = None,
                mask_input: np.ndarray | None = None,
                multimask_output: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt on the current image (``SamPredictor.predict``'s contract).

        Args:
            point_coords: (N, 2) ``(x, y)`` original pixels, or None.
            point_labels: (N,) 1 = include, 0 = exclude; given with ``point_coords``.
            box: (4,) ``[x1, y1, x2, y2]`` original pixels, or None.
            mask_input: (1, h, w) low-resolution logits of an earlier result, or None.
            multimask_output: True for three candidates, False for one.

        Returns:
            (masks, scores, logits): (K, H, W) bool at the original size, (K,) float32 and
            (K, h, w) float32 low-resolution logits, in the decoder's order.

        Raises:
            RuntimeError: no image was set.
            ValueError: no prompt at all, or points without labels.
        """
        self._require_image()
        if point_coords is None and box is None and mask_input is None:
            raise ValueError("give at least one prompt: point_coords with point_labels, box, "
                             "or mask_input")
        if (point_coords is None) != (point_labels is None):
            raise ValueError("point_coords and point_labels go together; give both or neither")
        logits, scores = self._decode(point_coords, point_labels, box, mask_input,
                                      multimask_output)
        low = logits[0]  # (K, h, w): one prompt
        masks = self.upscale(low) > 0
        return (masks.cpu().numpy(), scores[0].float().cpu().numpy(),
                low.float().cpu().numpy())

    def predict_boxes(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One mask per box, all boxes in one decoder call (single-mask output).

        Args:
            boxes: (B, 4) ``[x1, y1, x2, y2]`` original pixels.

        Returns:
            (masks, scores): (B, H, W) bool at the original size and (B,) float32.

        Raises:
            RuntimeError: no image was set.
            ValueError: ``boxes`` is not (B, 4) with B >= 1.
        """
        self._require_image()
        arr = np.asarray(boxes, np.float64)
        if arr.ndim != 2 or arr.shape[1] != 4 or len(arr) == 0:
            raise ValueError(f"boxes must have shape (B, 4) as [x1, y1, x2, y2] pixels with "
                             f"B >= 1; got {arr.shape}")
        logits, scores = self._decode(None, None, arr, None, multimask=False)
        masks = self.upscale(logits[:, 0]) > 0  # (B, H, W)
        return masks.cpu().numpy(), scores[:, 0].float().cpu().numpy()
