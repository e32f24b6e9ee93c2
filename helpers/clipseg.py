"""Text (or an example image) -> a mask, in one model: CLIPSeg.

``TextSegmenter.segment(image, "a cup")`` returns ``Detections`` with masks, without a
detector or SAM: CLIPSeg (a small decoder on a frozen CLIP ViT-B/16) predicts, for each
query, one probability per pixel that the pixel belongs to what the query describes. Every
instance of it lies in that one map, so one query gives one mask covering all of them
(``split=True`` cuts it into its connected regions, one detection each).

How the map relates to the photo. ``CLIPSegProcessor`` resizes with a ``ViTImageProcessor``
whose size is ``{"height": 352, "width": 352}``: the photo is *squashed* to a 352x352 square
(aspect ratio not kept, no crop, no padding); the decoder needs a square, since it folds its
tokens back into a square grid. Its 352x352 logit map therefore covers the whole photo,
stretched. Here the logits become probabilities (sigmoid) at 352x352 first, and those are
resized back to the photo's (height, width) with bilinear interpolation (``torch``'s
``interpolate(..., mode="bilinear", align_corners=False)``, the inverse of the squash: each
axis scaled by its own factor). Thresholds and scores are read on that photo-size map, so
masks and boxes are in pixels of the original image, like every ``Detections``.

The image's encoding (the vision encoder, most of the cost) is computed once per image and
kept for a few images, so ``heatmap`` then ``segment`` on the same photo, or more queries
later, cost only the text encoder and the small decoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers import checks, compat, encodings, images, models
from helpers.detections import Detections

if TYPE_CHECKING:
    from PIL import Image

FAMILIES = ("clipseg",)
THRESHOLD = 0.4
"""The default threshold: a starting point, not a measured best. CLIPSeg's probabilities
are soft, so look at the heat map and try a few (a threshold sweep costs little)."""

Query = Any
"""A query: a text (``"a cup"``) or an example image (a PIL image or an (H, W, 3) array)."""


def _is_image(query: Any) -> bool:
    from PIL import Image

    return isinstance(query, (Image.Image, np.ndarray))


def _queries(queries: Any, what: str = "queries") -> list[Any]:
    """``queries`` as a list of stripped texts and example images, or a clear error."""
    hint = "a text such as 'a cup', an example image" + (
        ", or a list of them" if what == "queries" else "")
    if queries is None:
        raise ValueError(f"{what} None: give {hint}")
    if isinstance(queries, str) or _is_image(queries):
        items = [queries]
    elif isinstance(queries, Iterable):
        items = list(queries)
    else:
        raise ValueError(f"{what} {queries!r:.60} must be {hint}")
    if not items:
        raise ValueError(f"{what} is empty; give {hint}")
    cleaned: list[Any] = []
    for i, q in enumerate(items):
        if isinstance(q, str):
            if not q.strip():
                raise ValueError(f"query {i} {q!r} is blank: give a text such as 'a cup'")
            cleaned.append(q.strip())
        elif _is_image(q):
            cleaned.append(images.load(q))  # checked (and made RGB) before any model runs
        else:
            raise ValueError(f"query {i} {q!r:.60} must be a text such as 'a cup' or an "
                             "example image (a PIL image or an (H, W, 3) array; for a file, "
                             "images.load(path))")
    return cleaned


def _labels(queries: list[Any], labels: Any) -> list[str]:
    """One name per query: the text itself, ``"example 1"``, ... for images, or ``labels``."""
    if labels is None:
        count, names = 0, []
        for q in queries:
            if isinstance(q, str):
                names.append(q)
            else:
                count += 1
                names.append(f"example {count}")
        return names
    given = [labels] if isinstance(labels, str) else list(labels) \
        if isinstance(labels, Iterable) else None
    if given is None or len(given) != len(queries):
        raise ValueError(f"labels {labels!r:.60} must be one name per query "
                         f"({len(queries)} of them), or None")
    bad = [lab for lab in given if not isinstance(lab, str) or not lab.strip()]
    if bad:
        raise ValueError(f"label {bad[0]!r} must be a non-empty text")
    return [lab.strip() for lab in given]


def _square_side(processor: Any) -> int:
    """The side of the square the processor squashes photos to (352 for CLIPSeg), or an
    error for a processor that would keep the aspect ratio, crop or pad."""
    ip = getattr(processor, "image_processor", None)
    size = getattr(ip, "size", None)
    height = getattr(size, "height", None) if not isinstance(size, dict) else size.get("height")
    width = getattr(size, "width", None) if not isinstance(size, dict) else size.get("width")
    if ip is None or not getattr(ip, "do_resize", True) or getattr(ip, "do_center_crop", False) \
            or getattr(ip, "do_pad", False) or height is None or height != width:
        raise ValueError(
            f"this CLIPSeg processor resizes to {size!r:.80}: TextSegmenter needs one that "
            "squashes every photo to a square (CIDAS/clipseg-rd64-refined's is 352x352), "
            "since CLIPSeg's decoder reads a square grid and the masks are mapped back by it"
        )
    return int(height)


def _box(mask: np.ndarray) -> list[float]:
    """``[x1, y1, x2, y2]`` pixels around a non-empty (H, W) mask (x2, y2 exclusive)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


class TextSegmenter(encodings.Encoded, models.Pretrained):
    """CLIPSeg: a text or an example image in, a mask of everything it describes out.

    ``TextSegmenter.from_pretrained()`` loads ``"clipseg-rd64"`` (also ``"clipseg"``:
    CIDAS/clipseg-rd64-refined, about 0.6 GB), or the tiny random model ``"tiny"``. Unlike
    "detector + SAM" there are no boxes first: one model makes one probability map per
    query (``heatmap``), and a threshold turns it into a mask (``segment``).

    Args:
        loaded: a CLIPSeg model from ``models.load`` (``CLIPSegForImageSegmentation``
            with its ``CLIPSegProcessor``).
        cache_size: how many images' encodings to keep (most recently used first).

    Raises:
        ValueError: ``loaded`` is not a CLIPSeg model, its processor does not squash
            photos to a square, or ``cache_size`` is not an integer >= 1.

    >>> seg = TextSegmenter.from_pretrained()                       # doctest: +SKIP
    >>> found = seg.segment(images.sample("coffee"), ["a cup", "a spoon"])  # doctest: +SKIP
    >>> found.masks.shape                                           # doctest: +SKIP
    (2, 400, 600)
    """

    families = FAMILIES
    default = "clipseg-rd64"

    def __init__(self, loaded: models.Loaded, cache_size: int = 4) -> None:
        cache_size = checks.integer("cache_size", cache_size, 1)
        super().__init__(loaded)
        self.model = loaded.model
        self.processor = loaded.processor
        self.side = _square_side(self.processor)
        """The side of the square every photo is squashed to before the model (352)."""
        self.max_text_tokens = min(int(self.processor.tokenizer.model_max_length),
                                   int(self.model.config.text_config.max_position_embeddings))
        """Tokens the text encoder reads per query; a longer one is cut, with a warning."""
        self._cache = encodings.Encodings(cache_size)

    @classmethod
    def from_pretrained(cls, name: str | None = None, device: str | None = None,
                        cache_size: int = 4, *, revision: str | None = None) -> TextSegmenter:
        """Load CLIPSeg ``name`` (default ``"clipseg-rd64"``; ``"tiny"`` for the tiny random
        model; or a hub id / folder of another CLIPSeg checkpoint) on ``device``, keeping the
        encodings of the last ``cache_size`` images.

        Raises:
            ValueError: an unknown name or device, before anything is downloaded.
            WeightsUnavailableError: the weights cannot be fetched; the message says what
                to do.
        """
        cache_size = checks.integer("cache_size", cache_size, 1)  # before the download
        return cls(cls._load(name, device, revision=revision), cache_size)

    # ------------------------------------------------------------ the model's two halves
    def _encode_image(self, img: Image.Image) -> list[Any]:
        """The vision encoder's activations that the decoder reads, each (1, T, D), for the
        photo squashed to ``side`` x ``side`` (cached by the photo's content)."""
        def encode() -> list[Any]:
            pixels = self.processor(images=img, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.device, self.model.dtype)  # (1, 3, side, side)
            vision = self.model.clip.get_image_features(pixel_values=pixels,
                                                        interpolate_pos_encoding=True,
                                                        output_hidden_states=True)
            # hidden_states[0] is the embedding layer, so layer i's output is at i + 1
            return [vision.hidden_states[i + 1] for i in self.model.extract_layers]

        found: list[Any] = self._cache.get(f"{self.name}:{images.digest(img)}", encode)
        return found

    def _embed_queries(self, queries: list[Any]) -> Any:
        """(Q, projection_dim): each query's conditional embedding, as the model makes it
        (CLIP's projected text features, or projected image features of an example)."""
        import torch

        rows: list[Any] = [None] * len(queries)
        texts = [i for i, q in enumerate(queries) if isinstance(q, str)]
        examples = [i for i, q in enumerate(queries) if not isinstance(q, str)]
        if texts:
            tokens = self.processor.tokenizer([queries[i] for i in texts], padding=True,
                                              truncation=True, max_length=self.max_text_tokens,
                                              return_tensors="pt")
            features = self.model.clip.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device)).pooler_output
            for row, i in enumerate(texts):
                rows[i] = features[row]
        if examples:
            pixels = self.processor(images=[queries[i] for i in examples],
                                    return_tensors="pt")["pixel_values"]
            features = self.model.clip.get_image_features(
                pixel_values=pixels.to(self.device, self.model.dtype)).pooler_output
            for row, i in enumerate(examples):
                rows[i] = features[row]
        return torch.stack(rows)

    def _warn_long(self, queries: list[Any]) -> None:
        texts = [q for q in queries if isinstance(q, str)]
        if not texts:
            return
        ids = self.processor.tokenizer(texts, verbose=False)["input_ids"]
        for text, row in zip(texts, ids):
            if len(row) > self.max_text_tokens:
                short = text if len(text) <= 40 else f"{text[:37]}..."
                compat.warn(f"the query {short!r} is {len(row)} tokens long and the text "
                            f"encoder reads {self.max_text_tokens}: the end is cut off. "
                            "Shorten it to keep every word.")

    def _probabilities(self, img: Image.Image, queries: list[Any]) -> Any:
        """(Q, H, W) float32 torch probabilities at the photo's size (see the module's
        docstring: sigmoid at ``side`` x ``side``, then bilinear back to (H, W))."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            conditions = self._embed_queries(queries)  # (Q, P)
            taps = [a.expand(len(queries), -1, -1) for a in self._encode_image(img)]
            logits = self.model.decoder(taps, conditions).logits  # (Q, side, side)
            logits = logits.reshape(len(queries), 1, *logits.shape[-2:]).float()
            probs = F.interpolate(torch.sigmoid(logits), size=(img.height, img.width),
                                  mode="bilinear", align_corners=False)
        return probs[:, 0]

    # ------------------------------------------------------------ the public calls
    def heatmap(self, image: Any, query: Query) -> np.ndarray:
        """(H, W) float32: the probability, in [0, 1], that each pixel of ``image`` belongs
        to what ``query`` describes, at the photo's size (row ``y``, column ``x``).

        ``segment(image, query, threshold=t)`` keeps the pixels whose probability is at
        least ``t``: a low threshold grows the mask into the background, a high one keeps
        only the model's surest pixels. Show the map with ``viz.weights(map)``.

        Args:
            image: anything ``images.load`` accepts.
            query: one text ("a cup") or one example image.

        Raises:
            ValueError: no query, several queries, or a blank text (before the model runs).
        """
        if not isinstance(query, str) and not _is_image(query) and isinstance(query, Iterable):
            raise ValueError("heatmap takes one query (a text or an example image); for "
                             "several, call it once per query or use segment(image, queries)")
        [q] = _queries(query, "query")
        self._warn_long([q])
        img = images.load(image)
        return self._probabilities(img, [q])[0].cpu().numpy()

    def segment(self, image: Any, queries: Query | Sequence[Query],
                threshold: float = THRESHOLD, *, labels: Sequence[str] | None = None,
                split: bool = False, min_area: int = 1) -> Detections:
        """Mask everything each query describes: ``Detections`` with masks, best first.

        Each query's probability map (``heatmap``) is thresholded: a pixel is in the mask
        when its probability is at least ``threshold`` (0 keeps every pixel; 1 keeps only
        pixels the model is certain of to float32 precision, in practice none).

        Args:
            image: anything ``images.load`` accepts.
            queries: one query or several; a query is a text ("a cup") or an example image
                of the thing (a PIL image or an array: CLIPSeg's visual prompt). A string is
                always a text: for an example photo on disk pass ``images.load(path)``.
            threshold: the lowest probability kept, in [0, 1].
            labels: a name per query (default: the text itself, ``"example 1"``, ... for
                example images).
            split: False gives one detection per query, whose mask covers every instance;
                True gives one per connected region (8-connected) of that mask.
            min_area: masks (regions, with ``split``) of fewer pixels are dropped.

        Returns:
            ``Detections`` in original pixels: ``masks`` (N, H, W) bool; ``xyxy`` the box
            around each mask; ``scores`` the highest probability inside the mask (for one
            mask per query, the peak of its heat map); ``mask_scores`` the mean probability
            inside it. A query whose mask is empty (or smaller than ``min_area``) gives no
            detection; none at all is an empty ``Detections`` with a (0, H, W) mask stack.

        Raises:
            ValueError: no queries, a blank or unusable query, labels that do not match, or
                a threshold outside [0, 1] or NaN; all before the model runs.
        """
        threshold = checks.number("threshold", threshold, 0.0, 1.0,
                                  hint=f"{THRESHOLD} is a good start")
        split = checks.flag("split", split)
        min_area = checks.integer("min_area", min_area, 1, hint="a number of pixels")
        items = _queries(queries)
        names = _labels(items, labels)
        self._warn_long(items)
        img = images.load(image)
        probs = self._probabilities(img, items)  # (Q, H, W)
        boxes: list[list[float]] = []
        scores: list[float] = []
        found: list[str] = []
        masks: list[np.ndarray] = []
        means: list[float] = []
        for prob, name in zip(probs, names):
            mask = (prob >= threshold).cpu().numpy()  # (H, W) bool
            p = prob.cpu().numpy()
            for region in self._regions(mask, split, min_area):
                inside = p[region]
                boxes.append(_box(region))
                scores.append(float(inside.max()))
                means.append(float(inside.mean()))
                found.append(name)
                masks.append(region)
        if not masks:
            return Detections.empty(img.size)
        order = np.argsort(-np.asarray(scores), kind="stable")
        dets = Detections(np.asarray(boxes, np.float32), np.asarray(scores, np.float32),
                          found, np.stack(masks), np.asarray(means, np.float32))
        return dets[order]

    @staticmethod
    def _regions(mask: np.ndarray, split: bool, min_area: int) -> list[np.ndarray]:
        """The (H, W) bool masks a query's mask gives: itself, or its connected regions."""
        if not split:
            return [mask] if int(mask.sum()) >= min_area else []
        import cv2

        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8),
                                                                    connectivity=8)
        return [labels == k for k in range(1, count)
                if int(stats[k, cv2.CC_STAT_AREA]) >= min_area]
