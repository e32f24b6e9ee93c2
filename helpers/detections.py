"""``Detections``: what a detector finds and what SAM adds to it, as parallel arrays.

One object carries N detections: boxes ``xyxy`` (N, 4) float32 in pixels of the original
image, ``scores`` (N,), ``labels`` (N strings: the text query that found each box), and,
once segmented, ``masks`` (N, H, W) bool with ``mask_scores`` (N,). It is validated when
built, indexed like a NumPy array (``dets[dets.scores > 0.3]``, ``dets[0]``, ``dets[2:]``),
and every other box format enters through a named constructor.

A ``Detections`` does not know its image, so a box may reach past it (as a detector's raw
box can). Wherever the image is known, boxes are clipped to it by one rule
(``Detections.clip``): ``to_mask`` and ``box_masks`` clip, ``Segmenter.segment`` clips and
refuses a box with no area inside, and the tracker clips with a warning (and drops a box
wholly outside). A *prompt* box, typed by a learner, is never clipped: see ``prompts.Prompt``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers import checks, compat
from helpers.prompts import same_arrays


def _as_boxes(xyxy: Any) -> np.ndarray:
    if xyxy is None:
        raise ValueError("boxes None: give (N, 4) [x1, y1, x2, y2] pixels, or "
                         "Detections.empty() for none")
    try:
        boxes = np.asarray(xyxy, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise ValueError(f"boxes {xyxy!r:.80} must be (N, 4) numbers [x1, y1, x2, y2] "
                         f"pixels ({err})") from None
    if boxes.size == 0:
        return np.zeros((0, 4), dtype=np.float32)
    if boxes.ndim == 1 and boxes.shape[0] == 4:
        boxes = boxes[None, :]
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4); got {boxes.shape}")
    return boxes


def _image_size(size: Any) -> tuple[int, int]:
    """(width, height) as two whole numbers >= 1 (an image's ``.size``)."""
    if isinstance(size, (str, bytes)) or not hasattr(size, "__len__") or len(size) != 2:
        raise ValueError(f"image_size {size!r:.60} must be (width, height) pixels, e.g. "
                         "image.size")
    return (checks.integer("image width", size[0], 1),
            checks.integer("image height", size[1], 1))


@dataclass
class Detections:
    """N detections as parallel arrays (boxes in xyxy pixels of the original image).

    Attributes:
        xyxy: (N, 4) float32, ``[x1, y1, x2, y2]`` pixels with x2 >= x1 and y2 >= y1.
        scores: (N,) float32 detector confidences (1.0 for boxes a person drew).
        labels: N strings, the query or class name of each box.
        masks: optional (N, H, W) bool masks in original-image pixels.
        mask_scores: optional (N,) float32 mask quality scores (SAM's predicted IoU).
    """

    xyxy: np.ndarray
    scores: np.ndarray = None  # type: ignore[assignment]  # None: all 1.0
    labels: list[str] = None  # type: ignore[assignment]  # None: all ""

    masks: np.ndarray | None = None
    mask_scores: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.xyxy = _as_boxes(self.xyxy)
        n = len(self.xyxy)
        if self.scores is None:
            self.scores = np.ones(n, dtype=np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if self.labels is None:
            self.labels = [""] * n
        elif isinstance(self.labels, str):
            self.labels = [self.labels] * n
        self.labels = [str(label) for label in self.labels]
        lengths = {"xyxy": n, "scores": len(self.scores), "labels": len(self.labels)}
        if self.masks is not None:
            self.masks = np.asarray(self.masks)
            if self.masks.ndim == 2 and n == 1:
                self.masks = self.masks[None]
            if self.masks.ndim != 3:
                raise ValueError(f"masks must have shape (N, H, W); got {self.masks.shape}")
            if self.masks.dtype.kind == "f" and not np.isfinite(self.masks).all():
                raise ValueError("masks hold NaN or infinite values; a mask is True/False (or "
                                 "0/1) per pixel: threshold probabilities first (p > 0.5)")
            if self.masks.dtype != bool:
                self.masks = self.masks > 0.5 if self.masks.dtype.kind == "f" else self.masks != 0
            lengths["masks"] = len(self.masks)
        if self.mask_scores is not None:
            self.mask_scores = np.asarray(self.mask_scores, dtype=np.float32).reshape(-1)
            lengths["mask_scores"] = len(self.mask_scores)
            if self.masks is None:
                raise ValueError("mask_scores were given without masks")
        if len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{k}={v}" for k, v in lengths.items())
            raise ValueError(f"Detections arrays must all have the same length; got {sizes}")
        for field in ("scores", "mask_scores"):
            values = getattr(self, field)
            if values is not None and not np.isfinite(values).all():
                bad = int(np.flatnonzero(~np.isfinite(values))[0])
                raise ValueError(f"{field}[{bad}] is {values[bad]}: scores must be finite "
                                 "numbers (a detector's lie in [0, 1])")
        outside = (self.scores < 0) | (self.scores > 1)
        if outside.any():
            bad = int(np.flatnonzero(outside)[0])
            raise ValueError(f"scores[{bad}] is {self.scores[bad]:g}, outside [0, 1]: a score is "
                             "a confidence (1.0 for a box a person drew); scale them first")
        if not np.isfinite(self.xyxy).all():
            bad = int(np.flatnonzero(~np.isfinite(self.xyxy).all(axis=1))[0])
            raise ValueError(f"box {bad} has non-finite coordinates: {self.xyxy[bad].tolist()}")
        flipped = (self.xyxy[:, 2] < self.xyxy[:, 0]) | (self.xyxy[:, 3] < self.xyxy[:, 1])
        if flipped.any():
            bad = int(np.flatnonzero(flipped)[0])
            raise ValueError(
                f"box {bad} {self.xyxy[bad].tolist()} has x2 < x1 or y2 < y1; boxes are "
                "[x1, y1, x2, y2] pixels. For [x, y, w, h] use Detections.from_xywh, for "
                "centre boxes Detections.from_cxcywh."
            )

    # ------------------------------------------------------------ constructors
    @classmethod
    def empty(cls, image_size: tuple[int, int] | None = None) -> Detections:
        """No detections; with ``image_size`` (width, height) also an empty (0, H, W) mask stack."""
        masks = None
        if image_size is not None:
            w, h = image_size
            masks = np.zeros((0, h, w), dtype=bool)
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), [], masks,
                   None if masks is None else np.zeros(0, np.float32))

    @classmethod
    def from_xywh(cls, boxes: Any, scores: Any = None, labels: Any = None) -> Detections:
        """From ``[x, y, w, h]`` pixel boxes (top-left corner plus size, as COCO and Comet use)."""
        b = _as_boxes(boxes)
        if (b[:, 2:] < 0).any():
            raise ValueError("box widths and heights must be >= 0")
        return cls(np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1), scores, labels)

    @classmethod
    def from_cxcywh(cls, boxes: Any, scores: Any = None, labels: Any = None, *,
                    normalized: bool = False,
                    image_size: tuple[int, int] | None = None) -> Detections:
        """From centre boxes ``[cx, cy, w, h]``, in pixels or normalised to [0, 1].

        Args:
            normalized: True when the boxes are fractions of the image (as DETR-style and
                OWL-ViT heads output); then ``image_size`` = (width, height) is required.
        """
        b = _as_boxes(boxes)
        if normalized:
            if image_size is None:
                raise ValueError("normalized boxes need image_size=(width, height) in pixels")
            w, h = image_size
            b = b * np.array([w, h, w, h], dtype=np.float32)
        elif image_size is not None:
            raise ValueError("image_size is only used with normalized=True")
        if (b[:, 2:] < 0).any():
            raise ValueError("box widths and heights must be >= 0")
        half = b[:, 2:] / 2
        return cls(np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1), scores, labels)

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """Join several Detections (e.g. one per query) into one."""
        parts = list(parts)
        stray = next((p for p in parts if not isinstance(p, Detections)), None)
        if stray is not None:
            raise ValueError(f"concat joins Detections only; got {stray!r:.60}")
        parts = [p for p in parts if len(p)] or list(parts[:1])
        if not parts:
            return cls.empty()
        with_masks = [p.masks is not None for p in parts]
        if any(with_masks) and not all(with_masks):
            raise ValueError("cannot concatenate Detections with and without masks")
        masks = np.concatenate([p.masks for p in parts]) if all(with_masks) else None  # type: ignore[misc]
        mask_scores = None
        if masks is not None and all(p.mask_scores is not None for p in parts):
            mask_scores = np.concatenate([p.mask_scores for p in parts])  # type: ignore[misc]
        return cls(np.concatenate([p.xyxy for p in parts]),
                   np.concatenate([p.scores for p in parts]),
                   [label for p in parts for label in p.labels], masks, mask_scores)

    # ------------------------------------------------------------ container protocol
    def __len__(self) -> int:
        return len(self.xyxy)

    def is_empty(self) -> bool:
        """True when there are no detections (an empty result flows through every step)."""
        return len(self) == 0

    def __eq__(self, other: object) -> bool:
        """Same boxes, scores, labels, masks and mask scores (exactly)."""
        if not isinstance(other, Detections):
            return NotImplemented
        return (np.array_equal(self.xyxy, other.xyxy)
                and np.array_equal(self.scores, other.scores)
                and self.labels == other.labels
                and same_arrays(self.masks, other.masks)
                and same_arrays(self.mask_scores, other.mask_scores))

    __hash__ = None  # type: ignore[assignment]

    def __iter__(self) -> Iterator[Detections]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, index: Any) -> Detections:
        """Select detections with an int, a slice, an int array or a boolean array (N,)."""
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -len(self) <= i < len(self):
                raise IndexError(f"detection {i} is out of range for {len(self)} detections")
            idx: Any = np.array([i % len(self)])
        elif isinstance(index, slice):
            idx = np.arange(len(self))[index]
        else:
            idx = np.asarray(index)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise IndexError(
                        f"boolean index has shape {idx.shape}; expected ({len(self)},)"
                    )
                idx = np.flatnonzero(idx)
            elif idx.size == 0:
                idx = idx.astype(int)
            elif not np.issubdtype(idx.dtype, np.integer):
                raise IndexError(f"cannot index Detections with {idx.dtype} values")
        return Detections(
            self.xyxy[idx],
            self.scores[idx],
            [self.labels[int(i)] for i in idx],
            None if self.masks is None else self.masks[idx],
            None if self.mask_scores is None else self.mask_scores[idx],
        )

    def __repr__(self) -> str:
        masks = "" if self.masks is None else f", masks={self.masks.shape}"
        shown = ", ".join(f"{lab!r}:{s:.2f}" for lab, s in zip(self.labels[:5], self.scores[:5]))
        more = ", ..." if len(self) > 5 else ""
        return f"Detections(n={len(self)}, [{shown}{more}]{masks})"

    # ------------------------------------------------------------ operations
    @property
    def xywh(self) -> np.ndarray:
        """(N, 4) ``[x, y, w, h]`` pixel boxes (the format Comet's annotations use)."""
        return np.concatenate([self.xyxy[:, :2], self.xyxy[:, 2:] - self.xyxy[:, :2]], axis=1)

    @property
    def area(self) -> np.ndarray:
        """(N,) box areas in square pixels."""
        wh = self.xyxy[:, 2:] - self.xyxy[:, :2]
        return wh[:, 0] * wh[:, 1]

    def filter(self, min_score: float) -> Detections:
        """Keep detections whose score is at least ``min_score`` (in [0, 1])."""
        low = checks.number("min_score", min_score, 0.0, 1.0)
        return self[self.scores >= low]

    def sorted(self) -> Detections:
        """The same detections, highest score first."""
        return self[np.argsort(-self.scores, kind="stable")]

    def nms(self, iou: float = 0.5, per_label: bool = True) -> Detections:
        """Drop boxes that overlap a higher-scoring box by more than ``iou``.

        Args:
            iou: the intersection-over-union above which a box is a duplicate, in (0, 1].
            per_label: True compares boxes only within the same label (two labels on one
                object both survive); False suppresses across labels.

        Returns:
            The kept detections, highest score first.
        """
        iou = checks.number("NMS IoU", iou, 0.0, 1.0, low_open=True)
        per_label = checks.flag("per_label", per_label)
        if len(self) <= 1:
            return self.sorted()
        import torch
        from torchvision.ops import batched_nms, nms

        # float64 so that ties and near-ties resolve the same way on every device
        boxes = torch.from_numpy(self.xyxy).double()
        scores = torch.from_numpy(self.scores).double()
        if per_label:
            _, group = np.unique(np.array(self.labels), return_inverse=True)
            keep = batched_nms(boxes, scores, torch.from_numpy(group.reshape(-1)), float(iou))
        else:
            keep = nms(boxes, scores, float(iou))
        return self[keep.numpy()]

    def iou(self, other: Detections) -> np.ndarray:
        """(N, M) intersection-over-union of these boxes with ``other``'s boxes."""
        import torch
        from torchvision.ops import box_iou

        if not isinstance(other, Detections):
            raise ValueError(f"iou compares with other Detections, not {other!r:.60}; wrap boxes "
                             "as Detections(boxes)")
        if len(self) == 0 or len(other) == 0:
            return np.zeros((len(self), len(other)), dtype=np.float32)
        return box_iou(torch.from_numpy(self.xyxy), torch.from_numpy(other.xyxy)).numpy()

    def box_masks(self, image_size: tuple[int, int]) -> np.ndarray:
        """(N, H, W) bool: each box filled, for an image of ``image_size`` = (width, height).

        Boxes are clipped to the image first; a box wholly outside gives an empty mask.
        """
        w, h = _image_size(image_size)
        out = np.zeros((len(self), h, w), dtype=bool)
        for i, (x1, y1, x2, y2) in enumerate(self.clip((w, h)).xyxy.round().astype(int)):
            out[i, y1:y2, x1:x2] = True
        return out

    def to_mask(self, image_size: tuple[int, int], boxes_if_no_masks: bool = False) -> np.ndarray:
        """(H, W) bool: every pixel that a detection covers, for an image of ``image_size``.

        Args:
            image_size: (width, height) of the image the detections belong to.
            boxes_if_no_masks: False (the default) uses the masks only, and no masks at all
                is an error: a box is a much coarser region than the object. True fills the
                box of every detection without a mask (no masks yet, or SAM returned an
                empty one) instead, as blurring a face needs.

        Raises:
            ValueError: no masks (and ``boxes_if_no_masks`` is False), or masks of another
                size than the image.
        """
        w, h = _image_size(image_size)
        if self.masks is None:
            if not boxes_if_no_masks:
                raise ValueError(
                    "these detections have no masks yet; add them with "
                    "Segmenter.segment(detections), or pass boxes_if_no_masks=True to use "
                    "the boxes themselves"
                )
            return np.asarray(self.box_masks((w, h)).any(axis=0))
        if self.masks.shape[1:] != (h, w):
            raise ValueError(
                f"the masks are {self.masks.shape[2]}x{self.masks.shape[1]} but the image is "
                f"{w}x{h}; use the image the detections were made for"
            )
        masks = self.masks
        if boxes_if_no_masks and len(self):
            empty = ~masks.reshape(len(self), -1).any(axis=1)
            if empty.any():
                masks = masks.copy()
                masks[empty] = self[empty].box_masks((w, h))
        return np.asarray(masks.any(axis=0)) if len(self) else np.zeros((h, w), dtype=bool)

    def union_mask(self) -> np.ndarray:
        """(H, W) bool: the pixels covered by any mask; ``to_mask`` when the image size is
        at hand."""
        if self.masks is None:
            raise ValueError(
                "these detections have no masks yet; add them with Segmenter.segment(detections)"
            )
        h, w = self.masks.shape[1:]
        return self.to_mask((w, h))

    def with_masks(self, masks: Any, mask_scores: Any = None) -> Detections:
        """A copy with ``masks`` (N, H, W) and optional ``mask_scores`` (N,) attached."""
        return Detections(self.xyxy.copy(), self.scores.copy(), list(self.labels),
                          masks, mask_scores)

    def clip(self, image_size: tuple[int, int]) -> Detections:
        """Boxes clipped to an image of ``image_size`` = (width, height) pixels."""
        w, h = _image_size(image_size)
        boxes = self.xyxy.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return Detections(boxes, self.scores.copy(), list(self.labels), self.masks,
                          self.mask_scores)

    def to_records(self) -> list[dict[str, Any]]:
        """Plain-Python records (lists and floats), ready for JSON or a tracker."""
        return [
            {"label": lab, "score": float(s), "xyxy": [float(v) for v in box]}
            for box, s, lab in zip(self.xyxy, self.scores, self.labels)
        ]



__getattr__ = compat.moved(__name__, {
    "check_points": "prompts.Prompt(size, points, labels), which checks them"})
