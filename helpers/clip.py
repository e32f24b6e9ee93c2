"""CLIP embeddings: texts and images in one space, so an image can be a prompt.

``Embedder`` wraps a CLIP model from the registry (``clip-b32`` by default). Texts and
images become unit-length vectors; their dot product is the cosine similarity that the
lessons plot, use for zero-shot labels, and use to rank photos against a query photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers import checks, compat, images, models


def _as_list(items: Any, what: str) -> list[Any]:
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        items = [items]
    items = list(items)
    if not items:
        raise ValueError(f"give at least one {what}")
    return items


def _texts(texts: Any, what: str = "texts") -> list[str]:
    """``texts`` (one text or a list of them) as a list of non-empty strings, or a clear
    error naming the item that is not one."""
    if texts is None:
        raise checks.WrongType(f"{what} None must be a text such as 'a photo of a cat', or a "
                               "list of texts")
    if isinstance(texts, np.ndarray):
        texts = texts.tolist()
    items = _as_list(texts, what.rstrip("s"))
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise checks.WrongType(f"{what}[{i}] {item!r} is a {type(item).__name__}, not a "
                                   "text; give strings such as 'a photo of a cat'")
    if any(not t.strip() for t in items):
        raise ValueError(f"{what} must not be empty strings; got {items!r}")
    return items


class Embedder(models.Pretrained):
    """Text and image embeddings from a CLIP model.

    Build it with ``Embedder.from_pretrained("clip-b32")``; the model is loaded once per
    kernel and shared by every ``Embedder`` of the same name and device.
    """

    families = ("clip",)
    default = "clip-b32"

    def __init__(self, loaded: models.Loaded) -> None:
        super().__init__(loaded)
        self.model = loaded.model
        self.processor = loaded.processor
        self.max_text_tokens = min(int(self.processor.tokenizer.model_max_length),
                                   int(self.model.config.text_config.max_position_embeddings))
        """Tokens the text encoder reads (77 for CLIP); a longer text loses its end."""

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
        batch = self.processor(text=items, return_tensors="pt", padding=True, truncation=True)
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.inference_mode():
            out = self.model.get_text_features(**batch)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return self._normalise(feats)

    def embed_images(self, imgs: Any) -> np.ndarray:
        """(N, D) float32 unit vectors for N images (anything ``images.load`` accepts)."""
        import torch

        pictures = [images.load(im) for im in _as_list(imgs, "image")]
        batch = self.processor(images=pictures, return_tensors="pt")
        pixels = batch["pixel_values"].to(self.device, self.model.dtype)
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=pixels)
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return self._normalise(feats)

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
        """CLIP's learned temperature (about 100 for the released models)."""
        return float(self.model.logit_scale.exp().item())

    def zero_shot(self, image: Any, labels: Sequence[str],
                  template: str = "a photo of {}.") -> dict[str, float]:
        """Probabilities that ``image`` shows each label, from text prompts alone.

        Each label is written into ``template`` (e.g. "a photo of a cat."), the cosine
        similarities are scaled by CLIP's temperature and passed through a softmax.

        Returns:
            {label: probability}, highest first; the probabilities sum to 1.
        """
        names = _texts(labels, "labels")
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"template {template!r} must contain {{}} where the label goes")
        text = self.embed_texts([template.format(n) for n in names])
        logits = self.logit_scale * self.similarity(self.embed_images(image), text)[0]
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        order = np.argsort(-probs, kind="stable")
        return {names[i]: float(probs[i]) for i in order}

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
