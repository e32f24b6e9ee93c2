"""Segment Anything, prompted with points, boxes and earlier masks.

``Segmenter`` drives one of two backends with the same behaviour: the official
``segment_anything`` predictor for Meta's checkpoints (``"sam-vit-b"``, ``-l``, ``-h``), and
``sam_hf.HFSamPredictor`` for transformers ``SamModel`` checkpoints, the fast SlimSAM ones
(``"slimsam-77"``, ``"slimsam-50"``: SAM ViT-B with the image encoder pruned). The expensive
step, ``set_image`` (the image encoder, seconds on a CPU for ViT-B, a fraction of that for
SlimSAM), runs once per image; its result is kept in a small cache keyed by the image's
content, so coming back to an earlier image is free. The cheap step, ``predict`` (prompt
encoder + mask decoder, a tenth of a second), runs for every click. ``segment`` adds a mask
to every box of a ``Detections``.

Coordinates are those of the original image: points ``(x, y)`` and boxes
``[x1, y1, x2, y2]`` in pixels. Masks come back at the original size as bool arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers import checks, compat, encodings, images, models, sam_files
from helpers.prompts import Prompt
from helpers.video import VideoSegmenter  # noqa: F401  (re-exported: sam.VideoSegmenter)

if TYPE_CHECKING:
    from PIL import Image

    from helpers.detections import Detections

# Boxes decoded per call in segment(): on a CPU one box at a time was faster than a batch
# (see benchmarks/sam_latency.py); on a GPU a batch is the fast path.
BATCH_SIZE = {"cpu": 1, "mps": 4, "cuda": 16}


@dataclass
class SamResult:
    """Candidate masks for one prompt, best first.

    Attributes:
        masks: (K, H, W) bool, in original-image pixels (K = 3 with multimask, else 1).
        scores: (K,) float32, SAM's own estimate of each mask's IoU with the object.
        logits: (K, h, w) float32 low-resolution mask logits; pass ``logits[i]`` back as
            ``predict(mask=...)`` to refine a mask with more clicks.
        points, labels, box: the prompt that produced them (original pixels).
    """

    masks: np.ndarray
    scores: np.ndarray
    logits: np.ndarray
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None

    @property
    def best(self) -> np.ndarray:
        """(H, W) bool: the highest-scoring mask."""
        return self.masks[0]

    @property
    def best_logits(self) -> np.ndarray:
        """(1, h, w) logits of the best mask, ready for ``predict(mask=...)``."""
        return self.logits[:1]

    def __len__(self) -> int:
        return len(self.masks)

    def to_detections(self, label: str = "mask") -> Detections:
        """The candidates as ``Detections`` (boxes around each mask, scores = mask scores)."""
        from helpers.detections import Detections

        boxes = np.array([_mask_box(m) for m in self.masks], dtype=np.float32).reshape(-1, 4)
        # SAM's predicted IoU can stray past [0, 1]; as a confidence it is clipped there
        confidence = np.clip(np.nan_to_num(self.scores, nan=0.0), 0.0, 1.0)
        return Detections(boxes, confidence, [label] * len(self), self.masks, self.scores)


def _mask_box(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@dataclass
class _Embedding:
    features: Any  # torch.Tensor (1, C, g, g) on the model's device
    original_size: tuple[int, int]  # (H, W)
    input_size: tuple[int, int]  # (h, w) after resizing the long side


class Segmenter(encodings.Encoded, models.Pretrained):
    """Segment Anything: one image embedding, many cheap prompts.

    ``Segmenter.from_pretrained(name)`` takes ``"sam-vit-b"`` (the default; also
    ``"vit_b"``), ``"sam-vit-l"``/``"vit_l"``, ``"sam-vit-h"``/``"vit_h"``, the fast
    ``"slimsam-77"`` and ``"slimsam-50"`` (SlimSAM: ViT-B pruned by 77 % or 50 %, an
    image embedding several times quicker, masks a little coarser), or the tiny random
    models ``"tiny"`` (``"tiny-sam"``) and ``"tiny-slimsam"``. An official checkpoint is
    downloaded once (with a progress bar), checked against its published SHA-256, cached,
    and loaded once per kernel; a SlimSAM one comes from the Hugging Face hub. Both kinds
    give the same results here: masks at the original size, best first, logits to refine.

    Args:
        loaded: a SAM model from ``models.load``: a ``segment_anything`` ``Sam`` (its
            ``processor`` None) or a transformers ``SamModel`` with its ``SamProcessor``.
        cache_size: how many image embeddings to keep (most recently used first).

    Raises:
        ValueError: ``loaded`` is not a SAM model, or ``cache_size`` is not an integer >= 1.
        TypeError: ``loaded`` has a processor but its model is not a ``SamModel``.

    >>> seg = Segmenter.from_pretrained("vit_b")      # doctest: +SKIP
    >>> seg.set_image(images.sample("chelsea"))       # doctest: +SKIP
    >>> result = seg.predict(points=[[265, 238]], labels=[1])  # doctest: +SKIP
    """

    families = ("sam",)
    default = "sam-vit-b"

    def __init__(self, loaded: models.Loaded, cache_size: int = 8) -> None:
        cache_size = checks.integer("cache_size", cache_size, 1)
        super().__init__(loaded)
        self.model = loaded.model
        # Both predictors keep the same state (features, original_size, input_size) and
        # answer predict() alike; only a batch of boxes and the logits' size differ.
        self.predictor: Any
        if loaded.processor is not None:  # a transformers SamModel (SlimSAM)
            from helpers import sam_hf

            self.predictor = sam_hf.HFSamPredictor(self.model, loaded.processor)
            self._low_res = self.predictor.mask_size
        else:  # a segment_anything Sam
            from segment_anything import SamPredictor

            self.predictor = SamPredictor(self.model)
            side = int(self.model.image_encoder.img_size) // 4
            self._low_res = (side, side)
        encoder = self.model.config.prompt_encoder_config if loaded.processor is not None \
            else self.model.prompt_encoder  # the width the mask decoder reads
        channels = getattr(encoder, "hidden_size", None) or encoder.embed_dim
        self._embedding_shape = (1, int(channels), self._low_res[0] // 4, self._low_res[1] // 4)
        self._cache = encodings.Encodings(cache_size)
        self._key: str | None = None
        self._image: Image.Image | None = None

    @classmethod
    def from_pretrained(cls, name: str | None = None, device: str | None = None,
                        cache_size: int = 8, *, revision: str | None = None) -> Segmenter:
        """Load SAM ``name`` (see the class docstring) on ``device``, keeping the embeddings
        of the last ``cache_size`` images. SAM always runs in float32: its mask decoder is
        not reliable in half precision. ``revision`` picks a hub commit of a SlimSAM
        checkpoint; Meta's checkpoints are files with a published hash, so for them it has
        nothing to choose (it is accepted, as by every model noun).

        Raises:
            ValueError: an unknown name or device, before anything is downloaded.
            WeightsUnavailableError: the weights cannot be fetched; the message says what
                to do.
        """
        cache_size = checks.integer("cache_size", cache_size, 1)  # before the download
        return cls(cls._load(name, device, revision=revision), cache_size)

    @property
    def backend(self) -> str:
        """``"transformers"`` for a ``SamModel`` (SlimSAM), ``"segment_anything"`` for
        Meta's checkpoints."""
        return "transformers" if self.loaded.processor is not None else "segment_anything"

    @property
    def image(self) -> Image.Image | None:
        """The image set last (RGB), or None."""
        return self._image

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the image set last."""
        self._require_image()
        assert self._image is not None
        return self._image.size

    # ------------------------------------------------------------ the expensive step
    def set_image(self, image: Any) -> Segmenter:
        """Compute (or fetch from the cache) the embedding of ``image``; returns self.

        Args:
            image: anything ``images.load`` accepts.
        """
        img = images.load(image)
        key = f"{self.name}:{images.digest(img)}"

        def encode() -> _Embedding:
            import torch

            arr = np.asarray(img)  # (H, W, 3) uint8 RGB
            with torch.inference_mode():
                self.predictor.set_image(arr)
            return _Embedding(self.predictor.features, tuple(self.predictor.original_size),
                              tuple(self.predictor.input_size))

        embedding = self._cache.get(key, encode)
        self._activate(embedding)
        self._key, self._image = key, img
        return self

    def _activate(self, embedding: _Embedding) -> None:
        self.predictor.reset_image()
        self.predictor.features = embedding.features
        self.predictor.original_size = embedding.original_size
        self.predictor.input_size = embedding.input_size
        self.predictor.is_image_set = True

    def save_embedding(self, path: str | Path) -> Path:
        """Save the current image's embedding (so a workshop can skip the encoder)."""
        import torch

        self._require_image()
        assert self._key is not None
        embedding = self._cache[self._key]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        import io

        assert self._image is not None
        photo = io.BytesIO()
        self._image.save(photo, format="PNG")
        torch.save({"format": 2, "model": self.name, "key": self._key,
                    "features": embedding.features.detach().cpu(),
                    "original_size": list(embedding.original_size),
                    "input_size": list(embedding.input_size),
                    "image_png": photo.getvalue()}, path)
        return path

    def load_embedding(self, path: str | Path, image: Any = None) -> Segmenter:
        """Set the image saved with ``save_embedding`` without running the encoder.

        The file holds the photo as well; pass ``image`` to check that it is the one you
        expect.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is empty, damaged, cut off or not one ``save_embedding``
                wrote, or it was made by another model or for another image. Nothing
                changes then: the image set before stays set.
        """
        path = Path(path)
        data = sam_files.read_embedding(path)
        if data["model"] != self.name:
            raise ValueError(
                f"{str(path)!r} holds an embedding from {data.get('model')!r}, but this "
                f"segmenter is {self.name!r}; load the matching model or re-compute it"
            )
        if tuple(data["features"].shape) != self._embedding_shape:
            raise ValueError(f"{str(path)!r} is damaged: its embedding has shape "
                             f"{tuple(data['features'].shape)}, {self.name!r} makes "
                             f"{self._embedding_shape}; {sam_files.SAVE_AGAIN}")
        img = data["photo"]
        key = f"{self.name}:{images.digest(img)}"
        if (data["format"] >= 2 and data.get("key") != key) or \
                tuple(data["original_size"]) != (img.height, img.width):  # format 1: SHA-1
            raise ValueError(f"{str(path)!r} is damaged: its photo does not match its "
                             f"embedding; {sam_files.SAVE_AGAIN}")
        if image is not None and images.digest(images.load(image)) != images.digest(img):
            raise ValueError(f"{str(path)!r} was computed for another image than this one")
        embedding = _Embedding(data["features"].to(self.device),
                               tuple(data["original_size"]), tuple(data["input_size"]))
        self._cache.put(key, embedding)
        self._activate(embedding)
        self._key, self._image = key, img
        return self

    # ------------------------------------------------------------ the cheap step
    def _require_image(self) -> None:
        if self._image is None:
            raise RuntimeError("no image is set: call seg.set_image(image) before predicting")

    def _mask_size(self) -> tuple[int, int]:
        """(h, w) of this model's low-resolution logits: 256x256 for the real models (a
        quarter of the 1024-pixel input), 64x64 for the tiny ones."""
        return self._low_res

    def prompt(self, points: Any = None, labels: Any = None, box: Any = None,
               mask: Any = None) -> Prompt:
        """A ``Prompt`` for the current image, checked (including the mask's shape)."""
        self._require_image()
        return self._fits(Prompt(self.image_size, points, labels, box, mask))

    def _fits(self, prompt: Prompt) -> Prompt:
        """``prompt`` if it was made for the current image and its mask has this model's
        low-resolution shape."""
        if prompt.size != self.image_size:
            raise ValueError(f"the prompt was made for a {prompt.size[0]}x{prompt.size[1]} "
                             f"image, not this {self.image_size[0]}x{self.image_size[1]} one")
        if prompt.mask is not None and prompt.mask.shape[1:] != self._mask_size():
            h, w = self._mask_size()
            raise ValueError(
                f"mask must be low-resolution logits of shape (1, {h}, {w}) as in "
                f"result.logits[i:i+1]; got {prompt.mask.shape}"
            )
        return prompt

    def predict(self, points: Any = None, labels: Any = None, box: Any = None,
                mask: Any = None, multimask: bool = True,
                prompt: Prompt | None = None) -> SamResult:
        """Masks for a prompt on the current image, best first.

        Args:
            points: (N, 2) ``(x, y)`` pixels of the original image.
            labels: (N,) 1 = include this point, 0 = exclude it.
            box: ``[x1, y1, x2, y2]`` pixels.
            mask: (1, h, w) logits from an earlier result (``result.best_logits``) to refine.
            multimask: True returns three candidates (whole, part, sub-part) for an
                ambiguous prompt such as one point; False returns one mask.
            prompt: a ``Prompt`` instead of the four values above.

        Raises:
            RuntimeError: no image was set.
            ValueError: no prompt, or a prompt that does not fit the image.
        """
        import torch

        multimask = checks.flag("multimask", multimask)
        if prompt is not None and not isinstance(prompt, Prompt):
            raise ValueError(f"prompt {prompt!r:.60} must be a Prompt (seg.prompt(points, "
                             "labels, box)), or give points=/labels=/box= instead")
        self._require_image()
        if prompt is None:
            prompt = self.prompt(points, labels, box, mask)
        elif any(v is not None for v in (points, labels, box, mask)):
            raise ValueError("give either prompt= or points/labels/box/mask, not both")
        else:
            prompt = self._fits(prompt)
        if prompt.is_empty():
            raise ValueError("give at least one prompt: points= with labels=, box=, or mask=")
        with torch.inference_mode():
            masks, scores, logits = self.predictor.predict(
                point_coords=prompt.points, point_labels=prompt.labels, box=prompt.box,
                mask_input=prompt.mask, multimask_output=multimask)
        order = np.argsort(-scores, kind="stable")
        return SamResult(masks[order].astype(bool), scores[order].astype(np.float32),
                         logits[order].astype(np.float32), prompt.points, prompt.labels,
                         prompt.box)

    def segment(self, detections: Detections, image: Any = None,
                batch_size: int | None = None) -> Detections:
        """Add a mask to every box: the same detections with ``masks`` and ``mask_scores``.

        Args:
            detections: boxes in original pixels (e.g. from a text-prompted detector).
            image: the image the boxes belong to; None uses the image set last.
            batch_size: boxes per decoder call; None picks what is fastest on this device
                (``BATCH_SIZE``: one at a time on a CPU, batches on a GPU).
        """
        import torch

        from helpers.detections import Detections as _Detections

        if not isinstance(detections, _Detections):
            raise ValueError(f"segment takes Detections (from Detector.detect, or "
                             f"Detections(boxes)), not {detections!r:.60}")
        if batch_size is not None:
            batch_size = checks.integer("batch_size", batch_size, 1,
                                        hint="or None to choose by device")
        if image is not None:
            self.set_image(image)
        self._require_image()
        w, h = self.image_size
        if len(detections) == 0:
            return detections.with_masks(np.zeros((0, h, w), bool), np.zeros(0, np.float32))
        boxes = detections.clip((w, h)).xyxy
        degenerate = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if degenerate.any():
            i = int(np.flatnonzero(degenerate)[0])
            raise ValueError(
                f"box {i} {detections.xyxy[i].tolist()} has no area inside the {w}x{h} image"
            )
        size = BATCH_SIZE.get(self.device.split(":")[0], 1) if batch_size is None else batch_size
        masks, scores = [], []
        with torch.inference_mode():
            for start in range(0, len(boxes), size):
                m, s = self._decode_boxes(boxes[start:start + size])
                masks.append(m)
                scores.append(s)
        return detections.with_masks(np.concatenate(masks).astype(bool),
                                     np.concatenate(scores).astype(np.float32))

    def _decode_boxes(self, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, 4) boxes in original pixels -> (B, H, W) bool masks and (B,) scores, in one
        decoder call on the current image."""
        if self.backend == "transformers":
            return self.predictor.predict_boxes(boxes)
        import torch

        chunk = torch.as_tensor(boxes, device=self.predictor.device)
        chunk = self.predictor.transform.apply_boxes_torch(chunk, self.predictor.original_size)
        m, s, _ = self.predictor.predict_torch(None, None, boxes=chunk, multimask_output=False)
        return m[:, 0].cpu().numpy(), s[:, 0].float().cpu().numpy()


__getattr__ = compat.moved(__name__, {
    "NAMES": "registry.aliases('sam') (names and aliases live in helpers.registry)",
    "image_key": "images.digest"})
