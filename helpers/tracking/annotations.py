"""Plain values and Comet annotations: what every logged value goes through first.

``plain`` turns NumPy, tuples and tensors into JSON-safe Python (Comet silently drops an
image whose annotations hold NumPy values), ``redact`` keeps a secret out of everything
logged, and ``comet_annotations`` turns detections and point prompts into the annotation
layers Comet's image panel can toggle and filter: boxes as ``[x, y, w, h]``, masks as
polygons, points as small labelled squares.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers.prompts import Prompt

if TYPE_CHECKING:
    from helpers.detections import Detections


def plain(value: Any) -> Any:
    """JSON-safe plain Python: numpy and tuples become lists, floats, ints; NaN becomes None.

    Comet silently drops an image whose annotations hold numpy values, so everything logged
    goes through here first.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and hasattr(value, "tolist"):  # torch tensors, without importing torch
        return plain(value.tolist())
    return str(value)


def redact(value: Any, secret: str | None) -> Any:
    """``value`` with every occurrence of ``secret`` (in strings, keys included) as "***"."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, "***")
    if isinstance(value, list):
        return [redact(v, secret) for v in value]
    if isinstance(value, dict):
        return {redact(k, secret): redact(v, secret) for k, v in value.items()}
    return value


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of a bool mask as flat [x1, y1, x2, y2, ...] pixel lists."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, 0.75, True)
        if len(contour) >= 3:
            polygons.append([float(v) for v in contour.reshape(-1)])
    return polygons


def comet_annotations(size: tuple[int, int], detections: Detections | None = None,
                      points: Any = None, labels: Any = None) -> list[dict[str, Any]]:
    """Comet annotation layers for an image of ``size`` = (width, height).

    Boxes become ``[x, y, w, h]`` (clipped to the image, with a warning), masks become
    polygons, and point prompts small squares labelled "include" or "exclude". All values
    are plain lists and floats; a layer with nothing in it (an empty mask, every box outside
    the image) is left out, since Comet drops an image that has one.

    Raises:
        ValueError: masks of another size than the image, points outside the image, or a
            different number of points and labels.
    """
    w, h = size
    layers: list[dict[str, Any]] = []
    if detections is not None and len(detections):
        clipped = detections.clip((w, h))
        box = clipped.xyxy
        gone = (box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])
        for i in np.flatnonzero(gone):
            warnings.warn(
                f"box {i} {detections.xyxy[i].round(1).tolist()} lies entirely outside the "
                f"{w}x{h} image; it is not logged as an annotation", stacklevel=3)
        for i in np.flatnonzero((clipped.xyxy != detections.xyxy).any(axis=1) & ~gone):
            warnings.warn(
                f"box {i} {detections.xyxy[i].round(1).tolist()} reaches outside the {w}x{h} "
                f"image; it is logged clipped to {clipped.xyxy[i].round(1).tolist()}",
                stacklevel=3,
            )
        boxes = [{"boxes": [[round(float(v), 2) for v in xywh]], "label": label,
                  "score": round(float(score), 4)}
                 for xywh, label, score, out in zip(clipped.xywh, clipped.labels,
                                                    clipped.scores, gone) if not out]
        layers.append({"name": "boxes", "data": boxes})
        if detections.masks is not None:
            if detections.masks.shape[1:] != (h, w):
                raise ValueError(
                    f"masks have size {detections.masks.shape[2]}x{detections.masks.shape[1]} "
                    f"but the image is {w}x{h}; log the image the masks were made for"
                )
            scores = (detections.mask_scores if detections.mask_scores is not None
                      else detections.scores)
            polys = [{"points": mask_polygons(m), "label": label, "score": round(float(s), 4)}
                     for m, label, s in zip(detections.masks, detections.labels, scores)]
            layers.append({"name": "masks", "data": [p for p in polys if p["points"]]})
    if points is not None and np.asarray(points).size:
        prompt = Prompt.of((w, h), points, labels, default_label=1)
        r = max(2.0, max(w, h) / 200)
        data = []
        for (x, y), lab in zip(prompt.points, prompt.labels):  # type: ignore[arg-type]
            x1, y1 = max(0.0, float(x) - r), max(0.0, float(y) - r)
            x2, y2 = min(float(w), float(x) + r), min(float(h), float(y) + r)
            data.append({"boxes": [[x1, y1, x2 - x1, y2 - y1]],
                         "label": "include" if lab == 1 else "exclude", "score": 1.0})
        if data:
            layers.append({"name": "prompt points", "data": data})
    # Comet refuses an image whose layer has no data (and drops it): send only full layers
    return plain([layer for layer in layers if layer["data"]])  # type: ignore[no-any-return]
