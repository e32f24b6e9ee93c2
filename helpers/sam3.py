"""A concept (a short text and/or example boxes) -> every instance's mask, in one model: SAM 3.

``ConceptSegmenter.segment(image, "a cup")`` returns ``Detections``: one box, score and mask
per instance of the concept, from Meta's SAM 3 detector (transformers' ``Sam3Model``),
without a separate detector. Example boxes ("exemplars") drawn on the photo add to the text,
or replace it: ``boxes=[[x1, y1, x2, y2]]`` with ``box_labels=[1]`` says "more like this",
``0`` "not like this".

How its answers relate to the photo. ``Sam3Processor`` squashes the photo to a 1008x1008
square (aspect ratio not kept), and normalises example boxes by the photo's own width and
height; SAM 3's boxes come back as fractions of the photo's width and height, its masks as
288x288 maps of the squashed square. transformers' ``post_process_instance_segmentation``,
used here, scales the boxes by (width, height) and resizes the mask probabilities to
(height, width) bilinearly before thresholding, so everything lands in pixels of the
original photo.

SAM 3 is gated (accept Meta's SAM License on the hub first) and heavy: 848M parameters,
about 3.4 GB to download, 5.0 GB of memory at its peak, and on a 2-core CPU about 73 s for
a new photo and 6 s for each further text on it (``benchmarks/sam3_cost.py``).
``ConceptSegmenter.if_available`` loads it where it can be had and otherwise says why in
one line, for a caller with another way to the masks (a detector and SAM). The photo's
encoding is computed once per photo and kept for a few photos, so more concepts on the
same photo cost only the text encoder and the decoders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers import checks, encodings, images, models, runtime, weights
from helpers.detections import Detections

if TYPE_CHECKING:
    from PIL import Image

FAMILIES = ("sam3",)
PEAK_FACTOR = 1.5
"""Peak memory of a load and one photo, as a multiple of the weights' size (measured by
``benchmarks/sam3_cost.py``: 5.0 GB for 3.4 GB of float32 weights on a CPU)."""
EXEMPLAR = "exemplar"
"""The label of instances found from example boxes alone (no text)."""


def _texts(text: Any) -> list[str] | None:
    """``text`` as a list of stripped phrases, None for no text, or a clear error."""
    if text is None:
        return None
    items = [text] if isinstance(text, str) else list(text) \
        if isinstance(text, Iterable) else None
    if items is None:
        raise ValueError(f"text {text!r:.60} must be a short phrase such as 'a cup', a list of "
                         "them, or None (with example boxes)")
    if not items:
        raise ValueError("text is an empty list; give a phrase such as 'a cup', or None with "
                         "example boxes")
    out = []
    for i, t in enumerate(items):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"text {i} {t!r:.60} must be a non-empty phrase such as 'a cup'")
        out.append(t.strip())
    return out


class ConceptSegmenter(encodings.Encoded, models.Pretrained):
    """SAM 3: every instance of a concept, each with its box, score and mask.

    ``ConceptSegmenter.from_pretrained()`` loads ``"sam3"`` (facebook/sam3: gated, about
    3.4 GB), or the tiny random model ``"tiny"``.

    Args:
        loaded: a SAM 3 model from ``models.load`` (``Sam3Model`` with its
            ``Sam3Processor``).
        cache_size: how many photos' encodings to keep (most recently used first).

    Raises:
        ValueError: ``loaded`` is not a SAM 3 model, or ``cache_size`` is not an
            integer >= 1.

    >>> seg3 = ConceptSegmenter.from_pretrained()                    # doctest: +SKIP
    >>> cups = seg3.segment(images.sample("coffee"), "a cup")         # doctest: +SKIP
    """

    families = FAMILIES
    default = "sam3"

    def __init__(self, loaded: models.Loaded, cache_size: int = 4) -> None:
        cache_size = checks.integer("cache_size", cache_size, 1)
        super().__init__(loaded)
        self.model = loaded.model
        self.processor = loaded.processor
        self.max_text_tokens = int(self.model.config.text_config.max_position_embeddings)
        """Tokens the text encoder reads (32 in SAM 3): a longer phrase is refused."""
        self._cache = encodings.Encodings(cache_size)

    @classmethod
    def from_pretrained(cls, name: str | None = None, device: str | None = None,
                        cache_size: int = 4, *, revision: str | None = None
                        ) -> ConceptSegmenter:
        """Load SAM 3 ``name`` (default ``"sam3"``; ``"tiny"`` for the tiny random model)
        on ``device``, keeping the encodings of the last ``cache_size`` photos.

        Raises:
            ValueError: an unknown name or device, before anything is downloaded.
            WeightsUnavailableError: the weights cannot be fetched (for the gated
                facebook/sam3: accept its licence on the hub and log in first).
        """
        cache_size = checks.integer("cache_size", cache_size, 1)  # before the download
        return cls(cls._load(name, device, revision=revision), cache_size)

    @classmethod
    def if_available(cls, name: str | None = None, device: str | None = None,
                     cache_size: int = 4, *, download: bool = True,
                     revision: str | None = None) -> ConceptSegmenter | None:
        """SAM 3 where this machine can have it; otherwise None, after printing one line
        that says why and what would make it available (for a lesson or a script that
        falls back to detector + SAM).

        Checked cheapest first: with ``download=False``, that the weights are already
        in the Hugging Face cache (nothing is downloaded); that the device has about
        ``PEAK_FACTOR`` times the weights' size free; then the load itself, where a gated
        repository without access, a hub out of reach or a load that runs out of memory
        each become the line. A tiny model is always available.

        Raises:
            ValueError: an unknown name or device, or a bad ``cache_size``: those are
                mistakes to fix, not a machine's limits.
        """
        import torch

        cache_size = checks.integer("cache_size", cache_size, 1)
        download = checks.flag("download", download)
        spec = models.resolve(cls.default if name is None else name, cls.families)
        dev = runtime.device(device)
        why = None
        if not spec.is_tiny and not download and not weights.is_cached(spec)[0]:
            why = (f"{spec.name!r} is not on this machine and download=False; fetch it ahead "
                   f"with `python -m helpers.models fetch {spec.name}` (about "
                   f"{(spec.size_bytes or 0) / 1e9:.1f} GB; gated: accept its licence on "
                   f"https://huggingface.co/{spec.source} and log in first)")
        elif not spec.is_tiny and spec.size_bytes:
            need = int(spec.size_bytes * PEAK_FACTOR)
            free, where = runtime.available_memory(dev)
            if free is not None and free < need:
                why = (f"it needs about {need / 1e9:.1f} GB of memory on {dev} and {where} "
                       f"{free / 1e9:.1f} GB free; close other notebooks or free memory "
                       "with models.clear_cache(), then run the cell again")
        if why is None:
            try:
                return cls.from_pretrained(spec.name, dev, cache_size, revision=revision)
            except models.WeightsUnavailableError as err:
                why = str(err).replace("run the cell again", "run this cell again")
            except (MemoryError, torch.OutOfMemoryError):
                models.clear_cache()
                why = f"loading it ran out of memory on {dev}; free some, then run this cell again"
        print(f"SAM 3 is not used here: {why}")
        return None

    def _encode_image(self, img: Image.Image) -> Any:
        """SAM 3's vision features of the photo (squashed to the processor's square),
        cached by the photo's content."""
        def encode() -> Any:
            pixels = self.processor(images=img, return_tensors="pt")["pixel_values"]
            return self.model.get_vision_features(
                pixel_values=pixels.to(self.device, self.model.dtype))

        return self._cache.get(f"{self.name}:{images.digest(img)}", encode)

    def _check_lengths(self, texts: list[str]) -> None:
        for text, ids in zip(texts, self.processor.tokenizer(texts)["input_ids"]):
            if len(ids) > self.max_text_tokens:
                raise ValueError(
                    f"the text {text if len(text) <= 40 else text[:37] + '...'!r} is "
                    f"{len(ids)} tokens long and SAM 3's text encoder reads "
                    f"{self.max_text_tokens}: give a short noun phrase such as 'a red cup'")

    def _exemplars(self, boxes: Any, box_labels: Any, size: tuple[int, int]
                   ) -> tuple[list[list[float]], list[int]]:
        """Example boxes as xyxy pixel lists with their 0/1 labels, checked against the
        photo of ``size`` = (width, height)."""
        xyxy = boxes.xyxy if isinstance(boxes, Detections) else Detections(boxes).xyxy
        if len(xyxy) == 0:
            raise ValueError("boxes is empty: give (N, 4) [x1, y1, x2, y2] pixels, or None")
        inside = Detections(xyxy).clip(size).xyxy
        flat = (inside[:, 2] <= inside[:, 0]) | (inside[:, 3] <= inside[:, 1])
        if flat.any():
            i = int(np.flatnonzero(flat)[0])
            raise ValueError(f"box {i} {xyxy[i].tolist()} has no area inside the "
                             f"{size[0]}x{size[1]} photo")
        if box_labels is None:
            labels = [1] * len(xyxy)
        else:
            given = np.asarray(box_labels).reshape(-1).tolist()
            if len(given) != len(xyxy):
                raise ValueError(f"box_labels has {len(given)} values for {len(xyxy)} boxes; "
                                 "give one per box: 1 = more like this, 0 = not like this")
            labels = [checks.integer(f"box_labels[{i}]", v, 0, 1,
                                     hint="1 = more like this, 0 = not like this")
                      for i, v in enumerate(given)]
        return inside.tolist(), labels

    def segment(self, image: Any, text: str | Sequence[str] | None = None, *,
                boxes: Any = None, box_labels: Any = None, threshold: float = 0.5,
                mask_threshold: float = 0.5) -> Detections:
        """Every instance of a concept in ``image``: ``Detections`` with masks, best first.

        Args:
            image: anything ``images.load`` accepts.
            text: a short noun phrase ("a cup"); a list of phrases runs one pass each and
                joins the results (labelled by phrase); None with ``boxes`` finds instances
                like the example boxes (labelled ``"exemplar"``).
            boxes: optional example boxes, (N, 4) ``[x1, y1, x2, y2]`` pixels of the photo
                (or a ``Detections``), with one text or none.
            box_labels: (N,) 1 = more like this box (the default), 0 = not like this one.
            threshold: an instance is kept when its score (SAM 3's query score times its
                presence score for the concept) is above this, in [0, 1].
            mask_threshold: a pixel is in an instance's mask when its probability is above
                this, in [0, 1].

        Returns:
            ``Detections`` in original pixels: boxes, scores, labels and (N, H, W) bool masks.
            Nothing found is an empty ``Detections`` with a (0, H, W) mask stack.

        Raises:
            ValueError: no text and no boxes, a blank or too long text, boxes with several
                texts, bad boxes or labels, or a threshold outside [0, 1] or NaN; all before
                the model runs.
        """
        import torch

        threshold = checks.number("threshold", threshold, 0.0, 1.0, hint="0.5 is a good start")
        mask_threshold = checks.number("mask_threshold", mask_threshold, 0.0, 1.0,
                                       hint="0.5 is a good start")
        texts = _texts(text)
        if texts is None and boxes is None:
            raise ValueError("give text='a cup', example boxes=[[x1, y1, x2, y2]], or both")
        if boxes is not None and texts is not None and len(texts) > 1:
            raise ValueError(f"example boxes go with one text, not {len(texts)}: call segment "
                             "once per text")
        if box_labels is not None and boxes is None:
            raise ValueError("box_labels were given without boxes")
        if texts is not None:
            self._check_lengths(texts)
        img = images.load(image)
        size = (img.height, img.width)
        prompt: dict[str, Any] = {}
        if boxes is not None:
            xyxy, labels = self._exemplars(boxes, box_labels, img.size)
            prompt = {"input_boxes": [xyxy], "input_boxes_labels": [labels]}
        parts = []
        with torch.inference_mode():
            vision = self._encode_image(img)
            phrases: list[str | None] = list(texts) if texts else [None]
            for phrase in phrases:
                inputs = self.processor(text=phrase, original_sizes=[list(size)],
                                        return_tensors="pt", **prompt)
                inputs.pop("original_sizes", None)
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                if "input_boxes" in inputs:
                    inputs["input_boxes"] = inputs["input_boxes"].to(self.model.dtype)
                outputs = self.model(vision_embeds=vision, **inputs)
                [found] = self.processor.post_process_instance_segmentation(
                    outputs, threshold=threshold, mask_threshold=mask_threshold,
                    target_sizes=[size])
                label = phrase if phrase is not None else EXEMPLAR
                parts.append(Detections(found["boxes"].float().cpu().numpy(),
                                        found["scores"].float().cpu().numpy(),
                                        [label] * len(found["scores"]),
                                        found["masks"].bool().cpu().numpy().reshape(
                                            -1, *size)).clip(img.size))
        dets = Detections.concat(parts)
        return dets.sorted() if len(dets) else Detections.empty(img.size)
