"""Prompted detection: words or example images in, boxes out (OWL-ViT, OWLv2, Grounding DINO).

``Detector.detect(image, "a cat")`` returns ``Detections`` in pixels of the original image,
each labelled with the query that found it. OWL-ViT and OWLv2 also take an example image as
a query, "find every object like this one": ``detect(image, detect.Example(photo,
box=[x1, y1, x2, y2], label="cup"))`` (see ``helpers.examples``). The three families differ
in how their boxes relate to the photo, and this module owns that difference:

- OWL-ViT squashes the photo to a square: its boxes are fractions of the photo's width and
  height.
- OWLv2 pads the photo to a square (at the bottom or right) first: its boxes are fractions
  of that square, so they scale by the photo's *long* side.
- Grounding DINO keeps the aspect ratio: fractions of width and height again, and its
  scores come per text token, so each query's score is the best over its own tokens.

Duplicates are removed with torchvision's NMS, per label (or across labels on request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from helpers import checks, compat, examples, images, models
from helpers.detections import Detections
from helpers.examples import Example

FAMILIES = ("owlvit", "owlv2", "grounding-dino")
EXAMPLE_FAMILIES = ("owlvit", "owlv2")
"""The families that take an example image as a query (image-guided detection)."""



def _check_settings(threshold: Any, nms_iou: Any, top_k: Any
                    ) -> tuple[float, float | None, int | None]:
    """The settings as plain Python numbers (NumPy scalars welcome), or a clear error."""
    threshold = checks.number("threshold", threshold, 0.0, 1.0, hint="0.1 is a good start")
    if nms_iou is not None:
        nms_iou = checks.number("nms_iou", nms_iou, 0.0, 1.0, low_open=True,
                                hint="or None for no NMS")
    if top_k is not None:
        top_k = checks.integer("top_k", top_k, 1, hint="a positive integer, or None for all")
    return threshold, nms_iou, top_k


@dataclass
class RawBoxes:
    """One image's boxes before thresholding, in the model's own terms.

    Attributes:
        boxes: (N, 4) normalised ``[cx, cy, w, h]``.
        scores: (N,) confidence of each box's best query.
        query: (N,) index of that query.
        square: True when the boxes are fractions of a padded square (OWLv2), False when
            they are fractions of the photo's width and height.
    """

    boxes: np.ndarray
    scores: np.ndarray
    query: np.ndarray
    square: bool

    @classmethod
    def join(cls, parts: Sequence[tuple[RawBoxes, Sequence[int]]]) -> RawBoxes:
        """Several passes' boxes as one, each part's query ``i`` renumbered ``at[i]``."""
        return cls(np.concatenate([raw.boxes for raw, _ in parts]),
                   np.concatenate([raw.scores for raw, _ in parts]),
                   np.concatenate([np.asarray(at, dtype=np.int64)[raw.query]
                                   for raw, at in parts]),
                   parts[0][0].square)


def to_detections(raw: RawBoxes, size: tuple[int, int], queries: Sequence[str],
                  threshold: float = 0.1, nms_iou: float | None = 0.5,
                  cross_label_nms: bool = False, top_k: int | None = None) -> Detections:
    """Raw normalised boxes → ``Detections`` in original pixels, thresholded, NMS'd, best first.

    Args:
        size: (width, height) of the original photo.
    """
    w, h = size
    keep = raw.scores >= threshold
    if not keep.any():
        return Detections.empty()
    scale = (max(w, h), max(w, h)) if raw.square else (w, h)
    dets = Detections.from_cxcywh(np.clip(raw.boxes[keep], 0, None), raw.scores[keep],
                                  [queries[int(i)] for i in raw.query[keep]],
                                  normalized=True, image_size=scale).clip((w, h))
    area = (dets.xyxy[:, 2] - dets.xyxy[:, 0]) * (dets.xyxy[:, 3] - dets.xyxy[:, 1])
    dets = dets[area > 0]  # boxes that lay wholly in OWLv2's padding
    if nms_iou is None:
        dets = dets.sorted()
    else:
        dets = dets.nms(nms_iou, per_label=not cross_label_nms)
    return dets[:top_k] if top_k is not None else dets


def owl_raw(logits: Any, pred_boxes: Any, square: bool) -> RawBoxes:
    """OWL-ViT / OWLv2 outputs for one image: logits (P, Q), boxes (P, 4) → ``RawBoxes``."""
    import torch

    probs = torch.sigmoid(torch.as_tensor(logits).float())
    scores, query = probs.max(dim=-1)
    return RawBoxes(torch.as_tensor(pred_boxes).float().cpu().numpy(),
                    scores.cpu().numpy(), query.cpu().numpy(), square)


def query_token_spans(input_ids: Sequence[int], tokenizer: Any,
                      queries: Sequence[str]) -> list[tuple[int, int]]:
    """Where each query's tokens sit in Grounding DINO's "q1. q2. q3." text."""
    spans, position = [], 1  # after [CLS]
    for q in queries:
        n = len(tokenizer(q.lower(), add_special_tokens=False)["input_ids"])
        spans.append((position, position + n))
        position += n + 1  # the query's tokens, then "."
    if position > len(input_ids):
        raise ValueError(
            f"the queries are too long for the text encoder ({position} of "
            f"{len(input_ids)} tokens); use fewer or shorter queries"
        )
    return spans


def grounding_raw(logits: Any, pred_boxes: Any,
                  spans: Sequence[tuple[int, int]]) -> RawBoxes:
    """Grounding DINO outputs for one image: logits (Q, T tokens), boxes (Q, 4) → ``RawBoxes``.

    A box's score for a query is the highest token probability inside that query's span.
    """
    import torch

    probs = torch.sigmoid(torch.as_tensor(logits).float())
    per_query = torch.stack([probs[:, a:b].max(dim=-1).values for a, b in spans], dim=-1)
    scores, query = per_query.max(dim=-1)
    return RawBoxes(torch.as_tensor(pred_boxes).float().cpu().numpy(),
                    scores.cpu().numpy(), query.cpu().numpy(), square=False)


class Detector(models.Pretrained):
    """A prompted detector: ``detect(image, queries)`` → ``Detections``; queries are texts,
    or for OWL-ViT and OWLv2 also example images (``Example``).

    ``Detector.from_pretrained(name)`` takes ``"owlvit-b32"`` (the default),
    ``"owlvit-b16"``, ``"owlv2-b16"``, ``"grounding-dino-tiny"``, ``"grounding-dino-base"``,
    or a tiny random model: ``"tiny"`` (OWL-ViT), ``"tiny-owlv2"``, ``"tiny-grounding-dino"``.
    """

    families = FAMILIES
    default = "owlvit-b32"

    def __init__(self, loaded: models.Loaded) -> None:
        super().__init__(loaded)
        self.model = loaded.model
        self.processor = loaded.processor
        self.family = loaded.spec.family
        config = self.model.config
        self.max_text_tokens = int(config.max_text_len) if self.family == "grounding-dino" \
            else min(int(self.processor.tokenizer.model_max_length),
                     int(config.text_config.max_position_embeddings))
        """Tokens the text encoder reads: per query (OWL), or all queries joined (Grounding
        DINO, whose queries go in as one text "q1. q2.")."""

    def raw(self, image: Any, queries: Any) -> tuple[RawBoxes, tuple[int, int]]:
        """Every box the model proposes with its best query's score (no threshold), and the
        photo's (width, height). ``detect`` is this plus ``to_detections``.

        ``RawBoxes.query`` indexes ``queries`` in the order given. With both texts and
        examples, the boxes come twice: once scored by the best text, once by the best
        example (see ``detect``).
        """
        items = examples.parse(queries)
        texts = [q for q in items if isinstance(q, str)]
        shown = [q for q in items if isinstance(q, Example)]
        if shown and self.family not in EXAMPLE_FAMILIES:
            raise ValueError(
                f"{self.name!r} is a Grounding DINO model: Grounding DINO takes text queries "
                "only; use OWL-ViT or OWLv2 ('owlvit-b32', 'owlv2-b16') for an example image")
        if texts:
            self._check_lengths(texts)
        crops = [q.crop() for q in shown]
        img = images.load(image)
        parts = []
        if texts:
            parts.append((self._text_raw(img, texts),
                          [i for i, q in enumerate(items) if isinstance(q, str)]))
        if crops:
            parts.append((self._example_raw(img, crops, examples.labels(shown)),
                          [i for i, q in enumerate(items) if isinstance(q, Example)]))
        return RawBoxes.join(parts), img.size

    def _text_raw(self, img: Any, texts: list[str]) -> RawBoxes:
        if self.family == "grounding-dino":
            text = " ".join(f"{q.lower()}." for q in texts)
            inputs = self.processor(images=img, text=text, return_tensors="pt")
        else:
            inputs = self.processor(text=[texts], images=img, return_tensors="pt",
                                    padding=True, truncation=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        outputs = self._forward(inputs)
        if self.family == "grounding-dino":
            spans = query_token_spans(inputs["input_ids"][0].tolist(), self.processor.tokenizer,
                                      texts)
            return grounding_raw(outputs.logits[0], outputs.pred_boxes[0], spans)
        return owl_raw(outputs.logits[0], outputs.pred_boxes[0], square=self.family == "owlv2")

    def _example_raw(self, img: Any, crops: list[Any], labels: list[str]) -> RawBoxes:
        """One image-guided pass per example; the target's boxes are the same in each, so
        the examples' logits stand side by side as the columns of one (P, E) table."""
        import torch

        columns, boxes = [], None
        for crop, label in zip(crops, labels):
            inputs = self.processor(images=img, query_images=crop, return_tensors="pt")
            inputs = {k: v.to(self.device, self.model.dtype) for k, v in inputs.items()}
            outputs = self._forward_example(inputs)
            logits = outputs.logits[0]  # (P, 1): one query, the example's best box
            if logits.shape[-1] != 1:  # OWL-ViT found no box in the example to match with
                raise ValueError(f"the model found no object in the example {label!r} to "
                                 "look for: crop it closer around one object")
            columns.append(logits[:, 0])
            if boxes is None:
                boxes = outputs.target_pred_boxes[0]  # (P, 4) cxcywh, like the text pass
        return owl_raw(torch.stack(columns, dim=-1), boxes, square=self.family == "owlv2")

    def _check_lengths(self, texts: list[str]) -> None:
        """Warn for an OWL query its text encoder cuts short; refuse Grounding DINO queries
        whose joined text is longer than its text encoder reads (before the image is read)."""
        tokenizer, limit = self.processor.tokenizer, self.max_text_tokens
        if self.family != "grounding-dino":
            for text, ids in zip(texts, tokenizer(texts, verbose=False)["input_ids"]):
                if len(ids) > limit:
                    short = text if len(text) <= 40 else f"{text[:37]}..."
                    compat.warn(f"the query {short!r} is {len(ids)} tokens long and the "
                                f"text encoder reads {limit}: the end is cut off. Shorten it "
                                "to keep every word.")
            return
        joined = " ".join(f"{q.lower()}." for q in texts)
        total = len(tokenizer(joined, verbose=False)["input_ids"])
        if total <= limit:
            return
        used, fit = 2, 0  # [CLS] and [SEP]
        for ids in tokenizer([q.lower() for q in texts], add_special_tokens=False,
                             verbose=False)["input_ids"]:
            used += len(ids) + 1  # the query's tokens, then "."
            if used > limit:
                break
            fit += 1
        raise ValueError(
            f"the {len(texts)} {'query makes' if len(texts) == 1 else 'queries make'} "
            f"{total} tokens and Grounding DINO's text encoder "
            f"reads {limit}: the first {fit} fit. Use fewer or shorter queries, or detect "
            "in several calls and join the results."
        )

    def _forward(self, inputs: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode():
            return self.model(**inputs)

    def _forward_example(self, inputs: dict[str, Any]) -> Any:
        import torch

        with torch.inference_mode():
            return self.model.image_guided_detection(**inputs)

    def detect(self, image: Any, queries: Any, threshold: float = 0.1,
               nms_iou: float | None = 0.5, top_k: int | None = None,
               cross_label_nms: bool = False) -> Detections:
        """Find what ``queries`` describe, or look like, in ``image``.

        Args:
            image: the photo searched: anything ``images.load`` accepts.
            queries: one query or a list. A query is a text ("a cat") or, for OWL-ViT and
                OWLv2, an example image: a PIL image, an (H, W, 3) array or a
                ``pathlib.Path`` (the whole picture is the example; a ``str`` is always a
                text), or ``detect.Example(photo, box=[x1, y1, x2, y2], label="cup")``, a
                crop of that photo (the same photo as ``image`` or another) with its box in
                *that* photo's pixels. Each box is labelled with the query that scored it
                highest; an example's label defaults to "example 1", "example 2", ... by
                its place among the examples.
            threshold: the lowest score kept, in [0, 1].
            nms_iou: boxes overlapping a better box of the same label by more than this
                IoU are duplicates and dropped; None keeps them.
            top_k: keep only the best k boxes.
            cross_label_nms: also drop duplicates across labels.

        Texts and examples mix in one call. The texts are scored in one pass (as without
        examples) and the examples in one pass each; texts compete with texts and examples
        with examples, so adding an example never changes what the texts find, and one
        object may come back twice, under a text's label and an example's (the two kinds'
        scores are not calibrated against each other). ``cross_label_nms=True`` keeps only
        the better of the two. Threshold, NMS, ``top_k`` and sorting apply to all boxes
        together. Scores are sigmoid probabilities, as for texts (transformers'
        ``post_process_image_guided_detection`` rescales them so the best box scores 1).

        Returns:
            ``Detections`` in pixels (xyxy) of ``image``, best first. No box found is not an
            error: an empty ``Detections`` flows through every later step.

        Raises:
            ValueError: a bad setting or query, an example that is not an image, a crop box
                outside its photo or smaller than ``examples.MIN_SIDE`` pixels a side, or an
                example given to Grounding DINO, each before the model runs.
        """
        threshold, nms_iou, top_k = _check_settings(threshold, nms_iou, top_k)
        cross_label_nms = checks.flag("cross_label_nms", cross_label_nms)
        items = examples.parse(queries)
        raw, size = self.raw(image, items)
        return to_detections(raw, size, examples.labels(items), threshold, nms_iou,
                             cross_label_nms, top_k)


__getattr__ = compat.moved(__name__, {
    "NAMES": "registry.aliases(detect.FAMILIES) (names and aliases live in helpers.registry)"})
