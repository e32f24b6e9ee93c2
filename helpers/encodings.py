"""The photo encodings a model noun keeps: the expensive half of SAM, CLIPSeg and SAM 3.

Each of these nouns runs a big image encoder once per photo and a small decoder once per
prompt. ``Encodings`` keeps the last few photos' encodings, by the photo's content and the
model's name, most recently used last, and counts how often the encoder really ran
(``computed``), which the tests and benchmarks read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from helpers import checks


class Encodings:
    """The encodings of the last ``size`` photos (an integer >= 1).

    Raises:
        ValueError: ``size`` is not an integer >= 1 (named as ``cache_size``).
    """

    def __init__(self, size: int) -> None:
        self.size = checks.integer("cache_size", size, 1)
        self.computed = 0
        """How many times ``get`` had to compute an encoding."""
        self._items: OrderedDict[str, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The encoding kept under ``key``, or ``compute()``'s, kept from now on."""
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        found = compute()
        self.computed += 1
        self.put(key, found)
        return found

    def put(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` as the most recent, forgetting the oldest past ``size``."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def clear(self) -> None:
        """Forget every encoding (the next photo runs the encoder again)."""
        self._items.clear()


class Encoded:
    """What a noun that keeps its photos' encodings in ``self._cache`` (an ``Encodings``)
    tells about them: SAM's ``Segmenter``, CLIPSeg's ``TextSegmenter``, SAM 3's
    ``ConceptSegmenter``."""

    _cache: Encodings

    @property
    def cache_size(self) -> int:
        """How many photos' encodings are kept."""
        return self._cache.size

    @property
    def encoder_calls(self) -> int:
        """How many times the image encoder ran (a photo found in the cache does not count)."""
        return self._cache.computed

    @property
    def cached_images(self) -> int:
        """How many photos' encodings the cache holds."""
        return len(self._cache)
