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

from helpers import images
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
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        f = float(str(value))  # np.float32(0.1) is 0.1, not 0.10000000149...
        return f if math.isfinite(f) else None
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


def odd_values(value: Any, where: str = "") -> list[tuple[str, str]]:
    """(where, type name) of every value inside ``value`` that ``plain`` can only keep as
    its text (a PIL image, a function, an object): what a reader of the record cannot use."""
    if isinstance(value, Mapping):
        return [odd for k, v in value.items() for odd in odd_values(v, f"{where}[{k!r}]")]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [odd for i, v in enumerate(value) for odd in odd_values(v, f"{where}[{i}]")]
    if value is None or isinstance(value, (str, bool, int, float, Path, np.ndarray,
                                           np.generic)):
        return []
    if getattr(value, "dtype", None) is not None and hasattr(value, "tolist"):
        return []
    kind = type(value)
    return [(where, f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins."))]


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


# ------------------------------------------------------------------ reading them back

def mask_from_polygons(polygons: Any, size: tuple[int, int]) -> np.ndarray:
    """The (H, W) bool mask that ``polygons`` fill in an image of ``size`` = (width, height).

    The inverse of ``mask_polygons``: each polygon is a flat ``[x1, y1, x2, y2, ...]`` list
    of pixels (its outline included). A mask's holes are not kept by ``mask_polygons``, so
    they come back filled.
    """
    import cv2

    w, h = size
    canvas = np.zeros((int(h), int(w)), np.uint8)
    shapes = []
    for polygon in polygons:
        flat = np.asarray(polygon, dtype=np.float64).reshape(-1)
        if len(flat) % 2 or not np.isfinite(flat).all():
            raise ValueError(f"polygon {list(flat[:6])}... is not a flat list of x, y pixels")
        if len(flat) >= 6:
            shapes.append(np.round(flat.reshape(-1, 2)).astype(np.int32))
    if shapes:
        cv2.fillPoly(canvas, shapes, 1)
    return canvas.astype(bool)


def _layers(image_record: Mapping[str, Any]) -> dict[str, list[Any]]:
    layers = image_record.get("annotations") or []
    if not isinstance(layers, list):
        raise ValueError(f"annotations {layers!r:.60} are not a list of layers")
    found: dict[str, list[Any]] = {}
    for layer in layers:
        data = layer["data"]
        if not isinstance(data, list):
            raise ValueError(f"annotation layer {layer.get('name')!r} has no list of data")
        found.setdefault(str(layer["name"]), []).extend(data)
    return found


MASK_PIXELS = 2**31
"""The most mask pixels ``decode`` fills in for one record (2 GB of booleans)."""


def decode(image_record: Mapping[str, Any]) -> dict[str, Any]:
    """What was logged with an image, back in its pixel frame: the keyword arguments of
    ``viz.annotate`` (``detections``, ``masks``, ``points``, ``labels``), each None when
    nothing of it was logged.

    The inverse of ``comet_annotations``: boxes come from the "boxes" layer (clipped to the
    image, as Comet got them) or else the record's ``detections``; masks are the "masks"
    layer's polygons filled in again at the record's ``width`` x ``height``; points are the
    record's own ``points`` and ``labels`` (or else the centres of the "prompt points").

    Raises:
        KeyError, TypeError, ValueError: a damaged record (a missing field, a wrong shape).
    """
    from helpers.detections import Detections

    size = (int(image_record["width"]), int(image_record["height"]))
    images.check_pixels(*size, "the image this record describes")
    layers = _layers(image_record)
    if len(layers.get("masks", [])) * size[0] * size[1] > MASK_PIXELS:
        raise ValueError(f"the record holds {len(layers['masks'])} masks of {size[0]}x{size[1]} "
                         "pixels, too many to draw at once")
    boxes, box_labels, box_scores = [], [], []
    for item in layers.get("boxes", []):
        for x, y, bw, bh in item["boxes"]:
            boxes.append([float(x), float(y), float(x) + float(bw), float(y) + float(bh)])
            box_labels.append(str(item.get("label", "")))
            box_scores.append(1.0 if item.get("score") is None else float(item["score"]))
    if not layers.get("boxes") and image_record.get("detections"):
        for item in image_record["detections"]:
            boxes.append([float(v) for v in item["xyxy"]])
            box_labels.append(str(item.get("label", "")))
            box_scores.append(1.0 if item.get("score") is None else float(item["score"]))
    detections = Detections(np.asarray(boxes, np.float32).reshape(-1, 4),
                            np.asarray(box_scores, np.float32), box_labels) if boxes else None
    masks = [mask_from_polygons(item["points"], size) for item in layers.get("masks", [])]
    points, labels = image_record.get("points"), image_record.get("labels")
    if points is None and layers.get("prompt points"):
        centres, kinds = [], []
        for item in layers["prompt points"]:
            for x, y, bw, bh in item["boxes"]:
                centres.append([float(x) + float(bw) / 2, float(y) + float(bh) / 2])
                kinds.append(0 if item.get("label") == "exclude" else 1)
        points, labels = centres, kinds
    if points is not None:
        points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
        labels = (np.ones(len(points), int) if labels is None
                  else np.asarray(labels, dtype=int).reshape(-1))
        if len(labels) != len(points):
            raise ValueError(f"{len(points)} points but {len(labels)} labels in the record")
        if not len(points):
            points = labels = None
    return {"detections": detections, "masks": np.stack(masks) if masks else None,
            "points": points, "labels": labels}
