"""CLIP and ALIGN embeddings: texts and images in one space, so an image can be a prompt.

``Embedder`` wraps a dual-encoder model from the registry: CLIP (``clip-b32``, the default;
a ViT image encoder and a transformer text encoder) or ALIGN (``align-base``; EfficientNet
and BERT). Texts and images become unit-length vectors; their dot product is the cosine
similarity that the lessons plot, use for zero-shot labels, and use to rank photos against a
query photo. Labels go into prompt templates (``helpers.templates``); several templates are
averaged per label (``embed_labels``), and ``accuracy`` measures what a template set is
worth on a labelled set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from helpers import compat, images, models
from helpers import templates as tpl

DEFAULT_TEMPLATE = "a photo of {}."
"""The template ``zero_shot`` uses when given none (kept from the first version)."""
BATCH = 16
"""Images embedded per forward pass (a larger list is cut into batches of this many)."""


def _as_list(items: Any, what: str) -> list[Any]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        items = [items]
    items = list(items)
    if not items:
        raise ValueError(f"give at least one {what}")
    return items


def _texts(texts: Any, what: str = "texts") -> list[str]:
    return tpl.check_texts(texts, what)


class Embedder(models.Pretrained):
    """Text and image embeddings from a CLIP or an ALIGN model, with the same calls.

    Build it with ``Embedder.from_pretrained("clip-b32")`` (or ``"align-base"``); the model
    is loaded once per kernel and shared by every ``Embedder`` of the same name and device.
    """

    families = ("clip", "align")
    default = "clip-b32"

    def __init__(self, loaded: models.Loaded) -> None:
        super().__init__(loaded)
        self.model = loaded.model
        self.processor = loaded.processor
        self.family: str = loaded.spec.family
        """"clip" or "align": which encoders the vectors come from."""
        # ALIGN's processor pads and cuts texts at 64 tokens unless told otherwise
        own = getattr(self.processor, "text_kwargs", None)
        own_limit = own.get("max_length") if isinstance(own, dict) else None
        self.max_text_tokens = min(int(self.processor.tokenizer.model_max_length),
                                   int(self.model.config.text_config.max_position_embeddings),
                                   int(own_limit or 10**9))
        """Tokens the text encoder reads (77 for CLIP, 64 for ALIGN); a longer text loses
        its end."""

    def embed_texts(self, texts: str | Sequence[str]) -> np.ndarray:
        """(N, D) float32 unit vectors for N texts (a text longer than ``max_text_tokens``
        is cut to that, with a warning).

        Raises:
            ValueError: no text, an empty text, or something that is not a text (None, a
                number); ``checks.WrongType``, also a TypeError, for the latter.
        """
        import torch

        items = _texts(texts)
        limit = self.max_text_tokens
        for text, ids in zip(items, self.processor.tokenizer(items, verbose=False)["input_ids"]):
            if len(ids) > limit:
                short = text if len(text) <= 40 else f"{text[:37]}..."
                compat.warn(f"the text {short!r} is {len(ids)} tokens long and the text "
                            f"encoder reads {limit}: the end is cut off. Shorten it to keep "
                            "every word.")
        batch = self.processor(text=items, return_tensors="pt", padding=True, truncation=True,
                               max_length=limit)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            out = self.model.get_text_features(**batch)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return self._normalise(feats)

    def embed_images(self, imgs: Any) -> np.ndarray:
        """(N, D) float32 unit vectors for N images (anything ``images.load`` accepts),
        embedded ``BATCH`` at a time."""
        import torch

        pictures = [images.load(im) for im in _as_list(imgs, "image")]
        parts = []
        for i in range(0, len(pictures), BATCH):
            batch = self.processor(images=pictures[i:i + BATCH], return_tensors="pt")
            pixels = batch["pixel_values"].to(self.device, self.model.dtype)
            with torch.inference_mode():
                out = self.model.get_image_features(pixel_values=pixels)
            feats = out if isinstance(out, torch.Tensor) else out.pooler_output
            parts.append(self._normalise(feats))
        return np.concatenate(parts)

    def embed_labels(self, labels: str | Sequence[str],
                     templates: str | Sequence[str]) -> np.ndarray:
        """(L, D) float32 unit vectors for L labels, each the prompt ensemble of its
        templates: every label is written into every template, each text embedded (unit
        length), the T vectors of a label averaged and the mean scaled back to unit length.
        With one template this is ``embed_texts`` of the filled texts.

        Args:
            labels: one label or several ("cat", "cup of coffee").
            templates: one template or several, each with one ``{}``
                (``helpers.templates.ENSEMBLE``, ``("a photo of a {}.",)``).

        Raises:
            ValueError, checks.WrongType: a template without exactly one ``{}``, an empty
                list, or labels or templates that are not strings (``templates.check``).
        """
        names = _texts(labels, "labels")
        chosen = tpl.check(templates)
        texts = [text for t in chosen for text in tpl.fill(t, names)]  # template-major
        vecs = self.embed_texts(texts).astype(np.float64)
        mean = vecs.reshape(len(chosen), len(names), -1).mean(axis=0)  # (L, D)
        return (mean / np.linalg.norm(mean, axis=-1, keepdims=True).clip(1e-12)).astype(
            np.float32)

    @staticmethod
    def _normalise(feats: Any) -> np.ndarray:
        vecs = feats.float().cpu().numpy()
        return (vecs / np.linalg.norm(vecs, axis=-1, keepdims=True).clip(1e-12)).astype(
            np.float32
        )

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(N, M) cosine similarities between the rows of two embedding arrays."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        if a.shape[1] != b.shape[1]:
            raise ValueError(
                f"embeddings have different sizes ({a.shape[1]} vs {b.shape[1]}); "
                "embed both with the same model"
            )
        return np.asarray(a @ b.T, dtype=np.float32)

    @property
    def logit_scale(self) -> float:
        """What cosine similarities are multiplied by before a softmax: CLIP's learned
        ``exp(logit_scale)`` (about 100 for the released models), ALIGN's
        ``1 / temperature``."""
        if hasattr(self.model, "logit_scale"):
            return float(self.model.logit_scale.exp().item())
        return float(1.0 / self.model.temperature.item())

    def _probabilities(self, image_vecs: np.ndarray, label_vecs: np.ndarray) -> np.ndarray:
        """(N, L) softmax over labels of the scaled similarities."""
        logits = self.logit_scale * self.similarity(image_vecs, label_vecs).astype(np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return probs / probs.sum(axis=1, keepdims=True)

    def zero_shot(self, image: Any, labels: Sequence[str], template: str | None = None, *,
                  templates: str | Sequence[str] | None = None) -> dict[str, float]:
        """Probabilities that ``image`` shows each label, from text prompts alone.

        Each label is written into ``template`` (default ``"a photo of {}."``), or into
        every one of ``templates`` and the embeddings averaged (``embed_labels``); the
        cosine similarities are scaled by the model's temperature and passed through a
        softmax.

        Returns:
            {label: probability}, highest first; the probabilities sum to 1.

        Raises:
            ValueError: a template without exactly one ``{}``, an empty label, or both
                ``template`` and ``templates`` given.
        """
        names = _texts(labels, "labels")
        if template is not None and templates is not None:
            raise ValueError("give template='...' or templates=[...], not both")
        chosen = templates if templates is not None else (
            DEFAULT_TEMPLATE if template is None else template)
        label_vecs = self.embed_labels(names, chosen)
        probs = self._probabilities(self.embed_images(image), label_vecs)[0]
        order = np.argsort(-probs, kind="stable")
        return {names[i]: float(probs[i]) for i in order}

    def accuracy(self, pairs: Sequence[tuple[Any, str]],
                 template_sets: Mapping[str, Any] | None = None,
                 labels: Sequence[str] | None = None) -> dict[str, float]:
        """Zero-shot accuracy of each template set on labelled images.

        Every image is classified among ``labels`` (default: the labels of ``pairs``) with
        each set's ensembled label embeddings; the images are embedded once.

        Args:
            pairs: (image, label) pairs, e.g. ``templates.labelled_set()``.
            template_sets: {name: templates}; None for ``templates.SETS`` (the label alone,
                one photo template, a drawing template, an ensemble).

        Returns:
            {set name: fraction of images whose most probable label is theirs}, in the
            order of ``template_sets``.

        Raises:
            ValueError: no pairs, a label of ``pairs`` missing from ``labels``, or a bad
                template set.
        """
        items = list(pairs)
        if not items or not all(isinstance(p, tuple) and len(p) == 2 for p in items):
            raise ValueError("pairs must be a non-empty list of (image, label) tuples, e.g. "
                             "templates.labelled_set()")
        truth = _texts([label for _, label in items], "labels")
        names = _texts(labels, "labels") if labels is not None else tpl.labels_of(items)
        missing = sorted(set(truth) - set(names))
        if missing:
            raise ValueError(f"labels {missing} of the images are not among the labels to "
                             f"choose from ({', '.join(names)})")
        sets = tpl.check_sets(template_sets)
        image_vecs = self.embed_images([image for image, _ in items])
        target = np.array([names.index(label) for label in truth])
        table = {}
        for name, chosen in sets.items():
            guess = self.similarity(image_vecs, self.embed_labels(names, chosen)).argmax(axis=1)
            table[name] = float(np.mean(guess == target))
        return table

    def rank(self, query: Any, candidates: Sequence[Any],
             names: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """Rank candidate images by similarity to a query (an image or a text).

        Returns:
            [(name, cosine similarity)], most similar first; names default to "0", "1", ...
        """
        items = _as_list(candidates, "candidate image")
        labels = [str(n) for n in (names if names is not None else range(len(items)))]
        if len(labels) != len(items):
            raise ValueError(f"{len(items)} candidates but {len(labels)} names")
        q = self.embed_texts(query) if isinstance(query, str) else self.embed_images(query)
        sims = self.similarity(q, self.embed_images(items))[0]
        order = np.argsort(-sims, kind="stable")
        return [(labels[i], float(sims[i])) for i in order]
