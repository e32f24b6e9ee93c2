"""Bad and odd inputs across the public API, as one table.

Each row is (id, a call, the outcome a learner should get):

- ``Raises(type, words)``: a clear error of that type, before any heavy work, whose message
  holds every word (case-insensitive; a tuple of words means any one of them): usually the
  setting's name and the bad value as written. A raw library error (``KeyError``,
  ``AttributeError``, ``JSONDecodeError``, a torch ``RuntimeError``, ...) or an exception
  class of another library never counts, even where it subclasses the expected type.
  A value of the wrong type may be answered with a TypeError where a ValueError is expected
  (``helpers.checks.WrongType`` is both); the message must still name it.
- ``Works(check)``: an odd but valid input (a NumPy or torch scalar, a 0-d array) gives the
  result the plain Python value gives; ``check`` says how that is seen.
- ``Warns(words)``: it works, and a warning holding the words says what was changed.

Heavy work is guarded: a row that would load a model, generate, train or allocate a huge
picture where it should have refused its input raises ``HeavyWork`` instead (and fails),
and every row runs under a ``signal.alarm`` of ``ROW_SECONDS``. Runs are recorded offline
under a temporary folder, with no Comet key or configuration of the machine's.
"""

from __future__ import annotations

import json
import pickle
import signal
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import (
    clip,
    detect,
    dreambooth,
    generate,
    images,
    inpaint,
    lora,
    models,
    runtime,
    sam,
    tracking,
    viz,
    widgets,
)
from helpers.detections import Detections
from helpers.prompts import Prompt

ROW_SECONDS = 20
MAX_PIXELS = 64_000_000
HUGE = 2**70
HUGE_TEXT = str(HUGE)  # 1180591620717411303424
LONG_PROMPT = " ".join(["a very detailed photo of a small orange cat"] * 20)


# ---------------------------------------------------------------- outcomes and rows

class HeavyWork(Exception):
    """The call went on to heavy work (a model load, a generation, a training step, a huge
    allocation) instead of refusing its input first."""


class RowTimeout(Exception):
    """The row ran past ``ROW_SECONDS``."""


Words = Sequence["str | tuple[str, ...]"]


@dataclass(frozen=True)
class Raises:
    exc: type[BaseException] | tuple[type[BaseException], ...]
    words: Words = ()
    after: Callable[[Ctx], None] | None = None


@dataclass(frozen=True)
class Works:
    check: Callable[[Any, Ctx], None] | None = None


@dataclass(frozen=True)
class Warns:
    words: Words
    check: Callable[[Any, Ctx], None] | None = None


@dataclass(frozen=True)
class Row:
    id: str
    call: Callable[[Ctx], Any]
    outcome: Raises | Works | Warns
    needs: tuple[str, ...] = ()


ROWS: list[Row] = []


def add(id_: str, call: Callable[[Ctx], Any], outcome: Raises | Works | Warns,
        *needs: str) -> None:
    ROWS.append(Row(id_, call, outcome, needs))


VE, TE, FNF = ValueError, TypeError, FileNotFoundError
RAW = (json.JSONDecodeError, UnicodeError, KeyError, IndexError, AttributeError,
       OverflowError, ZeroDivisionError, pickle.UnpicklingError, EOFError, MemoryError,
       RecursionError, NotImplementedError, AssertionError)
"""Errors that are a library's (or Python's) raw failure, not an answer to the learner."""


@dataclass
class Ctx:
    """What a row's call gets: the fixtures it named, a temporary folder, a monkeypatch."""

    tmp: Path
    mp: pytest.MonkeyPatch
    state: dict[str, Any] = field(default_factory=dict)
    seg: Any = None
    painter: Any = None
    detectors: Any = None
    embedder: Any = None
    maker: Any = None
    run: Any = None
    lora_dir: Any = None
    sd_pipe: Any = None

    def no_load(self) -> None:
        """Loading any model is heavy work from here on: ``models.load`` still checks the
        name and the device (its cheap first step), then refuses to go on."""
        refuse = _heavy("a model was loaded")

        def load(name: Any, device: Any = None, dtype: Any = None, family: Any = None,
                 *args: Any, **kwargs: Any) -> Any:
            models.resolve(name, family)
            runtime.device(device)
            return refuse()

        self.mp.setattr(models, "load", load)

    def no_paint(self) -> None:
        """Generating an inpainting is heavy work from here on."""
        self.mp.setattr(inpaint.Inpainter, "_generate", _heavy("an image was inpainted"))

    def no_generate(self) -> None:
        """Running the text-to-image pipeline is heavy work from here on."""
        self.mp.setattr(generate.Generator, "sampling", _heavy("the pipeline was run"))


def _heavy(what: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise HeavyWork(f"{what} instead of refusing the input first")

    return refuse


# ---------------------------------------------------------------- shared inputs

UNSET: Any = object()
"""An argument left out (so that None can be passed as a bad input)."""
_PHOTO = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
W, H = 64, 48


def photo() -> Image.Image:
    """A 64x48 RGB photo of noise."""
    return Image.fromarray(_PHOTO.copy())


def blob() -> np.ndarray:
    """A (48, 64) bool mask of a block in the middle."""
    m = np.zeros((H, W), bool)
    m[12:36, 16:48] = True
    return m


def dets(n: int = 2, masks: bool = False) -> Detections:
    boxes = np.array([[4, 4, 30, 30], [20, 10, 60, 40]], np.float32)[:n]
    out = Detections(boxes, np.array([0.9, 0.4], np.float32)[:n], ["cat", "ear"][:n])
    if masks:
        stack = np.zeros((n, H, W), bool)
        stack[:, 10:20, 10:20] = True
        out = out.with_masks(stack, np.full(n, 0.8, np.float32))
    return out


def same(a: Any, b: Any) -> None:
    assert np.array_equal(np.asarray(a), np.asarray(b)), "differs from the plain-number call"


def plain_float(value: Any, expected: float) -> None:
    assert type(value) is float and value == expected, \
        f"recorded {value!r} ({type(value).__name__}), expected the plain float {expected!r}"


def plain_int(value: Any, expected: int) -> None:
    assert type(value) is int and value == expected, \
        f"recorded {value!r} ({type(value).__name__}), expected the plain int {expected!r}"


def file_of(c: Ctx, name: str, data: bytes) -> Path:
    path = c.tmp / name
    path.write_bytes(data)
    return path


def png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    photo().save(buffer, format="PNG")
    return buffer.getvalue()


# ================================================================ images

add("images-load-4d-array", lambda c: images.load(np.zeros((2, 4, 4, 3), np.uint8)),
    Raises(VE, ["shape", "(2, 4, 4, 3)"]))
add("images-load-float-above-1", lambda c: images.load(np.full((4, 4, 3), 2.0)),
    Raises(VE, ["[0, 1]", "2"]))
add("images-load-float-negative", lambda c: images.load(np.full((4, 4, 3), -0.5)),
    Raises(VE, ["[0, 1]", "-0.5"]))
add("images-load-float-nan", lambda c: images.load(np.full((4, 4, 3), np.nan)),
    Raises(VE, ["nan"]))
add("images-load-empty-array", lambda c: images.load(np.zeros((0, 0, 3), np.uint8)),
    Raises(VE, ["empty"]))
add("images-load-empty-1d-array", lambda c: images.load(np.array([])),
    Raises(VE, ["shape"]))
add("images-load-0d-array", lambda c: images.load(np.array(5)), Raises(VE, ["shape"]))
add("images-load-channels-first", lambda c: images.load(np.zeros((3, 8, 8), np.uint8)),
    Raises(VE, ["transpose"]))
add("images-load-2-channels", lambda c: images.load(np.zeros((4, 4, 2), np.uint8)),
    Raises(VE, ["(4, 4, 2)"]))
add("images-load-int-300", lambda c: images.load(np.full((4, 4, 3), 300)),
    Raises(VE, ["int64"]))
add("images-load-complex", lambda c: images.load(np.zeros((4, 4, 3), complex)),
    Raises(VE, ["complex"]))
add("images-load-object-array", lambda c: images.load(np.array([[None, None]])),
    Raises(VE, ["object"]))
add("images-load-missing-path", lambda c: images.load(c.tmp / "no-such.png"),
    Raises(FNF, ["no-such.png"]))
add("images-load-missing-str-path", lambda c: images.load(str(c.tmp / "gone.jpg")),
    Raises(FNF, ["gone.jpg"]))
add("images-load-zero-byte-file", lambda c: images.load(file_of(c, "empty.png", b"")),
    Raises(VE, ["empty.png"]))
add("images-load-text-file", lambda c: images.load(file_of(c, "notes.txt", b"hello")),
    Raises(VE, ["notes.txt", "not an image"]))
add("images-load-garbage-png", lambda c: images.load(file_of(c, "x.png", b"\x89PNG garbage")),
    Raises(VE, ["x.png"]))
add("images-load-truncated-png",
    lambda c: images.load(file_of(c, "cut.png", png_bytes()[:120])), Raises(VE, ["cut.png"]))
add("images-load-folder", lambda c: images.load(c.tmp), Raises(VE, ["folder"]))
add("images-load-empty-string", lambda c: images.load(""), Raises(VE, [("empty", "''")]))
add("images-load-none", lambda c: images.load(None), Raises(VE, ["None"]))
add("images-load-int", lambda c: images.load(3), Raises(VE, ["int"]))
add("images-load-bytes", lambda c: images.load(png_bytes()), Raises(VE, ["bytes"]))
add("images-load-bool-array-ok", lambda c: images.load(np.ones((4, 5), bool)),
    Works(lambda r, c: same(np.asarray(r), np.full((4, 5, 3), 255, np.uint8))))
add("images-load-float16-ok", lambda c: images.load(np.full((4, 5, 3), 1.0, np.float16)),
    Works(lambda r, c: same(np.asarray(r), np.full((4, 5, 3), 255, np.uint8))))
add("images-load-uint16-ok", lambda c: images.load(np.full((4, 5), 65535, np.uint16)),
    Works(lambda r, c: same(np.asarray(r), np.full((4, 5, 3), 255, np.uint8))))
add("images-sample-unknown", lambda c: images.sample("no-such-photo"),
    Raises(VE, ["'no-such-photo'"]))
add("images-sample-none", lambda c: images.sample(None), Raises(VE, ["None"]))
add("images-sample-int", lambda c: images.sample(3), Raises(VE, ["3"]))
add("images-resize-0", lambda c: images.resize_long_side(photo(), 0),
    Raises(VE, ["long side", "0"]))
add("images-resize-negative", lambda c: images.resize_long_side(photo(), -5),
    Raises(VE, ["-5"]))
add("images-resize-100000", lambda c: images.resize_long_side(photo(), 100000),
    Raises(VE, ["100000"]))
add("images-resize-1.5", lambda c: images.resize_long_side(photo(), 1.5), Raises(VE, ["1.5"]))
add("images-resize-true", lambda c: images.resize_long_side(photo(), True),
    Raises(VE, ["True"]))
add("images-resize-str", lambda c: images.resize_long_side(photo(), "32"),
    Raises(VE, ["'32'"]))
add("images-resize-none", lambda c: images.resize_long_side(photo(), None),
    Raises(VE, ["None"]))
add("images-resize-nan", lambda c: images.resize_long_side(photo(), float("nan")),
    Raises(VE, ["nan"]))
add("images-resize-not-an-image", lambda c: images.resize_long_side(_PHOTO, 32),
    Raises(VE, ["ndarray"]))
add("images-resize-np-int64", lambda c: images.resize_long_side(photo(), np.int64(32)),
    Works(lambda r, c: same(r.size, (32, 24))))
add("images-resize-torch-int", lambda c: images.resize_long_side(photo(), torch.tensor(32)),
    Works(lambda r, c: same(r.size, (32, 24))))
add("images-resize-0d-array", lambda c: images.resize_long_side(photo(), np.array(32)),
    Works(lambda r, c: same(r.size, (32, 24))))
add("images-digest-array", lambda c: images.digest(_PHOTO), Raises(VE, ["ndarray"]))


# ================================================================ runtime

def _seed_is(expected: int) -> Callable[[Any, Ctx], None]:
    def check(result: Any, c: Ctx) -> None:
        plain_int(result, expected)
        assert torch.initial_seed() == expected, "torch was not seeded with it"

    return check


add("runtime-seed-minus-1", lambda c: runtime.seed_everything(-1), Raises(VE, ["seed", "-1"]))
add("runtime-seed-2-70", lambda c: runtime.seed_everything(HUGE),
    Raises(VE, ["seed", HUGE_TEXT]))
add("runtime-seed-1.5", lambda c: runtime.seed_everything(1.5), Raises(VE, ["seed", "1.5"]))
add("runtime-seed-true", lambda c: runtime.seed_everything(True),
    Raises(VE, ["seed", "True"]))
add("runtime-seed-str", lambda c: runtime.seed_everything("3"), Raises(VE, ["seed", "'3'"]))
add("runtime-seed-none", lambda c: runtime.seed_everything(None),
    Raises(VE, ["seed", "None"]))
add("runtime-seed-nan", lambda c: runtime.seed_everything(float("nan")),
    Raises(VE, ["seed", "nan"]))
add("runtime-seed-np-int64", lambda c: runtime.seed_everything(np.int64(3)),
    Works(_seed_is(3)))
add("runtime-seed-np-uint8", lambda c: runtime.seed_everything(np.uint8(5)),
    Works(_seed_is(5)))
add("runtime-seed-torch-int", lambda c: runtime.seed_everything(torch.tensor(4)),
    Works(_seed_is(4)))
add("runtime-generator-minus-1", lambda c: runtime.generator(-1), Raises(VE, ["seed", "-1"]))
add("runtime-generator-2-70", lambda c: runtime.generator(HUGE),
    Raises(VE, ["seed", HUGE_TEXT]))
add("runtime-generator-np-int64", lambda c: runtime.generator(np.int64(3)),
    Works(lambda r, c: plain_int(r.initial_seed(), 3)))
add("runtime-device-tpu", lambda c: runtime.device("tpu"), Raises(VE, ["'tpu'"]))
add("runtime-device-int", lambda c: runtime.device(3), Raises(VE, ["3"]))
add("runtime-device-empty", lambda c: runtime.device(""), Raises(VE, ["''"]))
add("runtime-device-cuda-x", lambda c: runtime.device("cuda:x"), Raises(VE, ["'cuda:x'"]))
add("runtime-threads-0", lambda c: runtime.set_threads(0), Raises(VE, ["thread", "0"]))
add("runtime-threads-negative", lambda c: runtime.set_threads(-2), Raises(VE, ["-2"]))
add("runtime-threads-str", lambda c: runtime.set_threads("4"), Raises(VE, ["'4'"]))
add("runtime-threads-2-70", lambda c: runtime.set_threads(HUGE), Raises(VE, [HUGE_TEXT]))
add("runtime-threads-np-int64", lambda c: runtime.set_threads(np.int64(1)),
    Works(lambda r, c: plain_int(r, 1)))


def _tiny_env(value: str) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        c.mp.setenv(runtime.TINY_ENV, value)
        return runtime.tiny_mode()

    return call


add("runtime-tiny-env-maybe", _tiny_env("maybe"), Raises(VE, ["'maybe'"]))
add("runtime-tiny-env-yes-ok", _tiny_env(" YES "), Works(lambda r, c: same(r, True)))


# ================================================================ detections

BOX = [[4, 4, 30, 30]]
add("dets-score-nan", lambda c: Detections(BOX, [np.nan], ["cat"]),
    Raises(VE, ["score", "nan"]))
add("dets-score-inf", lambda c: Detections(BOX, [np.inf], ["cat"]),
    Raises(VE, ["score", "inf"]))
add("dets-score-above-1", lambda c: Detections(BOX, [1.5], ["cat"]),
    Raises(VE, ["score", "1.5"]))
add("dets-score-negative", lambda c: Detections(BOX, [-0.1], ["cat"]),
    Raises(VE, ["score", "-0.1"]))
add("dets-scores-too-few", lambda c: Detections(BOX * 2, [0.5], ["cat", "dog"]),
    Raises(VE, ["same length", "scores=1"]))
add("dets-labels-too-many", lambda c: Detections(BOX, [0.5], ["cat", "dog"]),
    Raises(VE, ["same length", "labels=2"]))
add("dets-box-nan", lambda c: Detections([[np.nan, 1, 2, 3]]),
    Raises(VE, ["box 0", "nan"]))
add("dets-box-inf", lambda c: Detections([[0, 1, np.inf, 3]]), Raises(VE, ["box 0", "inf"]))
add("dets-box-x2-below-x1", lambda c: Detections([[30, 4, 4, 30]]),
    Raises(VE, ["x2 < x1"]))
add("dets-box-y2-below-y1", lambda c: Detections([[4, 30, 30, 4]]),
    Raises(VE, ["y2 < y1"]))
add("dets-box-3-numbers", lambda c: Detections([[1, 2, 3]]), Raises(VE, ["(N, 4)", "(1, 3)"]))
add("dets-box-5-numbers", lambda c: Detections([[1, 2, 3, 4, 5]]), Raises(VE, ["(N, 4)"]))
add("dets-box-3d", lambda c: Detections(np.zeros((1, 2, 4))), Raises(VE, ["(N, 4)"]))
add("dets-box-strings", lambda c: Detections([["a", "b", "c", "d"]]),
    Raises(VE, ["boxes", "'a'"]))
add("dets-box-none", lambda c: Detections(None), Raises(VE, ["boxes", "None"]))
add("dets-masks-wrong-count", lambda c: Detections(BOX * 2, masks=np.zeros((1, H, W), bool)),
    Raises(VE, ["same length", "masks=1"]))
add("dets-masks-1d", lambda c: Detections(BOX, masks=np.zeros(5, bool)),
    Raises(VE, ["(N, H, W)"]))
add("dets-masks-nan", lambda c: Detections(BOX, masks=np.full((1, H, W), np.nan)),
    Raises(VE, ["mask", "nan"]))
add("dets-mask-scores-without-masks", lambda c: Detections(BOX, mask_scores=[0.5]),
    Raises(VE, ["without masks"]))
add("dets-mask-scores-nan",
    lambda c: Detections(BOX, masks=np.ones((1, H, W), bool), mask_scores=[np.nan]),
    Raises(VE, ["mask_score", "nan"]))
add("dets-scores-float16-ok", lambda c: Detections(BOX, np.array([0.5], np.float16)),
    Works(lambda r, c: same(r.scores, [0.5])))
add("dets-filter-nan", lambda c: dets().filter(float("nan")),
    Raises(VE, ["min_score", "nan"]))
add("dets-filter-1.5", lambda c: dets().filter(1.5), Raises(VE, ["min_score", "1.5"]))
add("dets-filter-str", lambda c: dets().filter("0.5"), Raises(VE, ["min_score", "'0.5'"]))
add("dets-filter-true", lambda c: dets().filter(True), Raises(VE, ["min_score", "True"]))
add("dets-filter-none", lambda c: dets().filter(None), Raises(VE, ["min_score", "None"]))
add("dets-filter-np-float32", lambda c: dets().filter(np.float32(0.5)),
    Works(lambda r, c: same(r.xyxy, dets().filter(0.5).xyxy)))
add("dets-nms-0", lambda c: dets().nms(0), Raises(VE, ["IoU", "0"]))
add("dets-nms-nan", lambda c: dets().nms(float("nan")), Raises(VE, ["IoU", "nan"]))
add("dets-nms-1.5", lambda c: dets().nms(1.5), Raises(VE, ["IoU", "1.5"]))
add("dets-nms-str", lambda c: dets().nms("0.5"), Raises(VE, ["IoU", "'0.5'"]))
add("dets-nms-per-label-str", lambda c: dets().nms(0.5, per_label="no"),
    Raises(VE, ["per_label", "'no'"]))
add("dets-nms-np-float32", lambda c: dets().nms(np.float32(0.5)),
    Works(lambda r, c: same(r.xyxy, dets().nms(0.5).xyxy)))
add("dets-index-out-of-range", lambda c: dets()[5], Raises(IndexError, ["5", "out of range"]))
add("dets-bool-index-wrong-shape", lambda c: dets()[np.array([True])],
    Raises(IndexError, ["(1,)", "(2,)"]))
add("dets-index-float", lambda c: dets()[1.5], Raises((IndexError, TypeError), ["float"]))
add("dets-from-xywh-negative-width", lambda c: Detections.from_xywh([[1, 1, -5, 3]]),
    Raises(VE, ["width"]))
add("dets-from-cxcywh-normalized-no-size",
    lambda c: Detections.from_cxcywh([[0.5, 0.5, 0.2, 0.2]], normalized=True),
    Raises(VE, ["image_size"]))
add("dets-to-mask-wrong-size", lambda c: dets(masks=True).to_mask((10, 10)),
    Raises(VE, ["10x10"]))
add("dets-to-mask-no-masks", lambda c: dets().to_mask((W, H)), Raises(VE, ["no masks"]))
add("dets-box-masks-negative-size", lambda c: dets().box_masks((-5, 10)),
    Raises(VE, ["-5"]))
add("dets-clip-none", lambda c: dets().clip(None), Raises(VE, ["image_size", "None"]))
add("dets-concat-mixed-masks", lambda c: Detections.concat([dets(1), dets(1, masks=True)]),
    Raises(VE, ["masks"]))
add("dets-concat-not-detections", lambda c: Detections.concat([1, 2]),
    Raises(VE, ["Detections"]))
add("dets-iou-not-detections", lambda c: dets().iou([[1, 2, 3, 4]]),
    Raises(VE, ["Detections"]))
add("dets-with-masks-wrong-count", lambda c: dets().with_masks(np.zeros((3, H, W), bool)),
    Raises(VE, ["masks=3"]))


# ================================================================ prompts

SIZE = (W, H)
add("prompt-point-outside", lambda c: Prompt(SIZE, [[100, 5]], [1]),
    Raises(VE, ["(100, 5)", "outside"]))
add("prompt-point-negative", lambda c: Prompt(SIZE, [[-1, 5]], [1]),
    Raises(VE, ["(-1, 5)", "outside"]))
add("prompt-point-at-width", lambda c: Prompt(SIZE, [[W, 5]], [1]),
    Raises(VE, ["(64, 5)", "outside"]))
add("prompt-point-nan", lambda c: Prompt(SIZE, [[np.nan, 5]], [1]),
    Raises(VE, ["points", "nan"]))
add("prompt-points-3-columns", lambda c: Prompt(SIZE, [[1, 2, 3]], [1]),
    Raises(VE, ["(N, 2)", "(1, 3)"]))
add("prompt-points-empty", lambda c: Prompt(SIZE, [], []), Raises(VE, ["points", "empty"]))
add("prompt-points-strings", lambda c: Prompt(SIZE, [["a", "b"]], [1]),
    Raises(VE, ["points", "'a'"]))
add("prompt-label-2", lambda c: Prompt(SIZE, [[5, 5]], [2]), Raises(VE, ["labels", "2"]))
add("prompt-label-minus-1", lambda c: Prompt(SIZE, [[5, 5]], [-1]),
    Raises(VE, ["labels", "-1"]))
add("prompt-label-str", lambda c: Prompt(SIZE, [[5, 5]], ["1"]), Raises(VE, ["labels", "'1'"]))
add("prompt-label-nan", lambda c: Prompt(SIZE, [[5, 5]], [np.nan]),
    Raises(VE, ["labels", "nan"]))
add("prompt-labels-too-many", lambda c: Prompt(SIZE, [[5, 5]], [1, 0]),
    Raises(VE, ["1 points but 2 labels"]))
add("prompt-labels-without-points", lambda c: Prompt(SIZE, None, [1]),
    Raises(VE, ["labels", "without points"]))
add("prompt-points-without-labels", lambda c: Prompt(SIZE, [[5, 5]]),
    Raises(VE, ["no labels"]))
add("prompt-box-x2-below-x1", lambda c: Prompt(SIZE, box=[30, 4, 4, 30]),
    Raises(VE, ["x2 > x1"]))
add("prompt-box-outside", lambda c: Prompt(SIZE, box=[0, 0, 100, 30]),
    Raises(VE, ["outside", "64x48"]))
add("prompt-box-3-numbers", lambda c: Prompt(SIZE, box=[1, 2, 3]),
    Raises(VE, ["box", "[1, 2, 3]"]))
add("prompt-box-nan", lambda c: Prompt(SIZE, box=[1, 2, np.nan, 9]), Raises(VE, ["box", "nan"]))
add("prompt-mask-nan", lambda c: Prompt(SIZE, mask=np.full((1, 64, 64), np.nan)),
    Raises(VE, ["mask", "finite"]))
add("prompt-mask-4d", lambda c: Prompt(SIZE, mask=np.zeros((1, 1, 64, 64))),
    Raises(VE, ["mask", "(1, 1, 64, 64)"]))
add("prompt-size-zero", lambda c: Prompt((0, 10)), Raises(VE, ["size", "(0, 10)"]))
add("prompt-size-none", lambda c: Prompt(None), Raises(VE, ["size", "None"]))
add("prompt-points-float32-ok",
    lambda c: Prompt(SIZE, np.array([[5.5, 6]], np.float32), np.array([1], np.int64)),
    Works(lambda r, c: same(r.points, [[5.5, 6]])))


# ================================================================ viz

add("viz-annotate-point-outside", lambda c: viz.annotate(photo(), points=[[100, 10]], labels=[1]),
    Raises(VE, ["(100, 10)", "outside"]))
add("viz-annotate-label-2", lambda c: viz.annotate(photo(), points=[[10, 10]], labels=[2]),
    Raises(VE, ["label", "2"]))
add("viz-annotate-points-labels-mismatch",
    lambda c: viz.annotate(photo(), points=[[10, 10], [5, 5]], labels=[1]),
    Raises(VE, ["2 points but 1 label"]))
add("viz-annotate-point-nan", lambda c: viz.annotate(photo(), points=[[np.nan, 10]], labels=[1]),
    Raises(VE, ["nan"]))
add("viz-annotate-box-flipped", lambda c: viz.annotate(photo(), box=[30, 4, 4, 30]),
    Raises(VE, ["x2"]))
add("viz-annotate-box-nan", lambda c: viz.annotate(photo(), box=[1, 2, np.nan, 9]),
    Raises(VE, ["box", "nan"]))
add("viz-annotate-masks-wrong-size", lambda c: viz.annotate(photo(), masks=np.ones((10, 10))),
    Raises(VE, ["masks", "(1, 10, 10)"]))
add("viz-annotate-masks-nan", lambda c: viz.annotate(photo(), masks=np.full((H, W), np.nan)),
    Raises(VE, ["mask", "nan"]))
add("viz-annotate-detections-list", lambda c: viz.annotate(photo(), detections=[[1, 2, 3, 4]]),
    Raises(VE, ["detections", "Detections"]))
add("viz-annotate-image-none", lambda c: viz.annotate(None), Raises(VE, ["None"]))
add("viz-draw-points-outside", lambda c: viz.draw_points(photo(), [[10, 500]], [1]),
    Raises(VE, ["(10, 500)", "outside"]))
add("viz-overlay-alpha-nan", lambda c: viz.overlay_masks(photo(), blob(), alpha=float("nan")),
    Raises(VE, ["alpha", "nan"]))
add("viz-overlay-alpha-2", lambda c: viz.overlay_masks(photo(), blob(), alpha=2),
    Raises(VE, ["alpha", "2"]))
add("viz-overlay-alpha-str", lambda c: viz.overlay_masks(photo(), blob(), alpha="0.5"),
    Raises(VE, ["alpha", "'0.5'"]))
add("viz-overlay-alpha-np-float32", lambda c: viz.overlay_masks(photo(), blob(), np.float32(0.5)),
    Works(lambda r, c: same(r, viz.overlay_masks(photo(), blob(), 0.5))))
add("viz-grid-empty", lambda c: viz.grid([]), Raises(VE, ["at least one"]))
add("viz-grid-cols-0", lambda c: viz.grid([photo()], cols=0), Raises(VE, ["cols", "0"]))
add("viz-grid-cols-negative", lambda c: viz.grid([photo()], cols=-1), Raises(VE, ["cols", "-1"]))
add("viz-grid-cols-1.5", lambda c: viz.grid([photo()], cols=1.5), Raises(VE, ["cols", "1.5"]))
add("viz-grid-captions-mismatch", lambda c: viz.grid([photo()], ["a", "b"]),
    Raises(VE, ["1 images but 2 captions"]))
add("viz-grid-cell-0", lambda c: viz.grid([photo()], cell=0), Raises(VE, ["cell", "0"]))
add("viz-grid-cell-100000", lambda c: viz.grid([photo()], cell=100000),
    Raises(VE, ["cell", "100000"]))
add("viz-grid-cell-str", lambda c: viz.grid([photo()], cell="256"), Raises(VE, ["cell", "'256'"]))
add("viz-grid-cols-np-int64", lambda c: viz.grid([photo(), photo()], cols=np.int64(1), cell=32),
    Works(lambda r, c: same(r.size, viz.grid([photo(), photo()], cols=1, cell=32).size)))
add("viz-blur-radius-0", lambda c: viz.blur(photo(), blob(), 0), Raises(VE, ["radius", "0"]))
add("viz-blur-radius-nan", lambda c: viz.blur(photo(), blob(), float("nan")),
    Raises(VE, ["radius", "nan"]))
add("viz-blur-radius-inf", lambda c: viz.blur(photo(), blob(), float("inf")),
    Raises(VE, ["radius", "inf"]))
add("viz-blur-radius-np-float32", lambda c: viz.blur(photo(), blob(), np.float32(3.0)),
    Works(lambda r, c: same(r, viz.blur(photo(), blob(), 3.0))))
add("viz-blur-mask-wrong-size", lambda c: viz.blur(photo(), np.ones((5, 5), bool)),
    Raises(VE, ["mask", "(5, 5)"]))
add("viz-blur-mask-nan", lambda c: viz.blur(photo(), np.full((H, W), np.nan)),
    Raises(VE, ["mask", "nan"]))
add("viz-pixelate-block-0", lambda c: viz.pixelate(photo(), blob(), 0), Raises(VE, ["block", "0"]))
add("viz-pixelate-block-np-int64", lambda c: viz.pixelate(photo(), blob(), np.int64(4)),
    Works(lambda r, c: same(r, viz.pixelate(photo(), blob(), 4))))
add("viz-weights-nan", lambda c: viz.weights(np.full((4, 4), np.nan)), Raises(VE, ["nan"]))
add("viz-weights-3d", lambda c: viz.weights(np.zeros((2, 4, 4))), Raises(VE, ["(2, 4, 4)"]))
add("viz-heatmap-shape-mismatch", lambda c: viz.heatmap(np.zeros((2, 2)), ["a"], ["b", "c"]),
    Raises(VE, ["(2, 2)", "(1, 2)"]))
add("viz-bars-mismatch", lambda c: viz.bars([0.5, 0.5], ["a"]),
    Raises(VE, ["2 values but 1 labels"]))
add("viz-difference-size-mismatch",
    lambda c: viz.difference(photo(), images.resize_long_side(photo(), 32)),
    Raises(VE, ["64x48", "32x24"]))
add("viz-stack-titles-mismatch", lambda c: viz.stack([photo()], ["a", "b"]),
    Raises(VE, ["1 pictures but 2 titles"]))
add("viz-side-by-side-empty", lambda c: viz.side_by_side([]), Raises(VE, ["at least one"]))


# ================================================================ clip

def _texts(texts: Any) -> Callable[[Ctx], Any]:
    return lambda c: c.embedder.embed_texts(texts)


add("clip-embed-texts-none", _texts(None), Raises(VE, ["texts", "None"]), "embedder")
add("clip-embed-texts-empty-list", _texts([]), Raises(VE, [("empty", "at least one")]),
    "embedder")
add("clip-embed-texts-number", _texts([3]), Raises(VE, ["text", "3"]), "embedder")
add("clip-embed-texts-empty-string", _texts(""), Raises(VE, ["''"]), "embedder")
add("clip-embed-texts-list-empty-string", _texts([""]), Raises(VE, ["''"]), "embedder")
add("clip-embed-texts-blank", _texts("   "), Raises(VE, ["'   '"]), "embedder")
add("clip-embed-texts-bytes", _texts(b"a cat"), Raises(VE, ["b'a cat'"]), "embedder")
add("clip-embed-texts-long", _texts(LONG_PROMPT), Warns(["cut off"]), "embedder")
add("clip-embed-texts-np-str", _texts(np.str_("a cat")),
    Works(lambda r, c: same(r, c.embedder.embed_texts("a cat"))), "embedder")
add("clip-embed-texts-tuple", _texts(("a cat", "a dog")),
    Works(lambda r, c: same(r, c.embedder.embed_texts(["a cat", "a dog"]))), "embedder")
add("clip-embed-images-empty", lambda c: c.embedder.embed_images([]),
    Raises(VE, [("empty", "at least one")]), "embedder")
add("clip-embed-images-none", lambda c: c.embedder.embed_images(None),
    Raises(VE, ["None"]), "embedder")
add("clip-embed-images-missing", lambda c: c.embedder.embed_images(c.tmp / "nope.png"),
    Raises(FNF, ["nope.png"]), "embedder")
add("clip-embed-images-4d", lambda c: c.embedder.embed_images(np.zeros((1, 2, 8, 8, 3))),
    Raises(VE, ["shape"]), "embedder")
add("clip-zero-shot-empty-labels", lambda c: c.embedder.zero_shot(photo(), []),
    Raises(VE, ["label"]), "embedder")
add("clip-zero-shot-empty-label", lambda c: c.embedder.zero_shot(photo(), ["cat", ""]),
    Raises(VE, ["label", "''"]), "embedder")
add("clip-zero-shot-no-braces", lambda c: c.embedder.zero_shot(photo(), ["cat"], "a photo"),
    Raises(VE, ["template", "{}"]), "embedder")
add("clip-rank-names-mismatch", lambda c: c.embedder.rank("a cat", [photo()], ["a", "b"]),
    Raises(VE, ["1 candidates but 2 names"]), "embedder")
add("clip-rank-empty", lambda c: c.embedder.rank("a cat", []),
    Raises(VE, ["candidate"]), "embedder")
add("clip-similarity-sizes", lambda c: clip.Embedder.similarity(np.ones((1, 4)), np.ones((1, 5))),
    Raises(VE, ["4 vs 5"]))


# ================================================================ detect

def _det(family: str = "owlvit", queries: Any = "a cat", image: Any = None,
         **settings: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        return c.detectors[family].detect(photo() if image is None else image, queries,
                                          **settings)

    return call


def _same_as(family: str = "owlvit", queries: Any = "a cat",
             **settings: Any) -> Callable[[Any, Ctx], None]:
    def check(result: Any, c: Ctx) -> None:
        expected = c.detectors[family].detect(photo(), queries, **settings)
        assert result == expected, f"{result} differs from {expected}"

    return check


D = "detectors"
for fam in detect.FAMILIES:
    add(f"detect-{fam}-threshold-nan", _det(fam, threshold=float("nan")),
        Raises(VE, ["threshold", "nan"]), D)
    add(f"detect-{fam}-threshold-np-float32", _det(fam, threshold=np.float32(0.1)),
        Works(_same_as(fam, threshold=0.1)), D)
for tag, value, word in [("inf", float("inf"), "inf"), ("minus-1", -1, "-1"),
                         ("1.5", 1.5, "1.5"), ("true", True, "True"), ("str", "0.1", "'0.1'"),
                         ("none", None, "None"), ("huge-1e9", 1e9, "1000000000")]:
    add(f"detect-threshold-{tag}", _det(threshold=value), Raises(VE, ["threshold", word]), D)
add("detect-threshold-torch", _det(threshold=torch.tensor(0.1)),
    Works(_same_as(threshold=0.1)), D)
add("detect-threshold-0d-array", _det(threshold=np.array(0.1)),
    Works(_same_as(threshold=0.1)), D)
add("detect-threshold-np-float64", _det(threshold=np.float64(0.1)),
    Works(_same_as(threshold=0.1)), D)
for tag, value, word in [("0", 0, "0"), ("nan", float("nan"), "nan"), ("1.5", 1.5, "1.5"),
                         ("str", "0.5", "'0.5'")]:
    add(f"detect-nms-iou-{tag}", _det(nms_iou=value), Raises(VE, ["nms_iou", word]), D)
add("detect-nms-iou-np-float32", _det(nms_iou=np.float32(0.5)),
    Works(_same_as(nms_iou=0.5)), D)
for tag, value, word in [("0", 0, "0"), ("minus-1", -1, "-1"), ("1.5", 1.5, "1.5"),
                         ("true", True, "True"), ("str", "2", "'2'")]:
    add(f"detect-top-k-{tag}", _det(top_k=value), Raises(VE, ["top_k", word]), D)
add("detect-top-k-np-int64", _det(top_k=np.int64(2)), Works(_same_as(top_k=2)), D)
add("detect-cross-label-nms-str", _det(cross_label_nms="no"),
    Raises(VE, ["cross_label_nms", "'no'"]), D)
add("detect-queries-none", _det(queries=None), Raises(VE, ["queries", "None"]), D)
add("detect-queries-empty-string", _det(queries=""), Raises(VE, ["''"]), D)
add("detect-queries-list-empty-string", _det(queries=[""]), Raises(VE, ["''"]), D)
add("detect-queries-empty-list", _det(queries=[]), Raises(VE, ["queries", "empty"]), D)
add("detect-queries-number", _det(queries=[3]), Raises(VE, ["query", "3"]), D)
add("detect-queries-blank", _det(queries="   "), Raises(VE, ["'   '"]), D)
add("detect-queries-int", _det(queries=7), Raises(VE, ["queries", "7"]), D)
add("detect-queries-tuple-ok", _det(queries=("a cat", "a dog")),
    Works(_same_as(queries=["a cat", "a dog"])), D)
add("detect-grounding-dino-100-queries",
    _det("grounding-dino", queries=[f"thing number {i}" for i in range(100)]),
    Raises(VE, ["queries", ("fewer", "shorter")]), D)
add("detect-owlvit-long-query", _det(queries=LONG_PROMPT), Warns(["cut off"]), D)
add("detect-image-4d", _det(image=np.zeros((1, 8, 8, 3), np.uint8)), Raises(VE, ["shape"]), D)
add("detect-image-missing", lambda c: c.detectors["owlvit"].detect(c.tmp / "x.jpg", "a cat"),
    Raises(FNF, ["x.jpg"]), D)
add("detect-image-none", lambda c: c.detectors["owlvit"].detect(None, "a cat"),
    Raises(VE, ["None"]), D)
add("detect-from-pretrained-unknown", lambda c: detect.Detector.from_pretrained("owl-9000"),
    Raises(VE, ["'owl-9000'"]))
add("detect-from-pretrained-device", lambda c: detect.Detector.from_pretrained("tiny", "tpu"),
    Raises(VE, ["'tpu'"]))


# ================================================================ sam

def _pred(image: Any = None, **prompt: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        c.seg.set_image(photo() if image is None else image)
        if not any(k in prompt for k in ("points", "box", "mask", "prompt")):
            prompt.setdefault("points", [[10, 10]])
            prompt.setdefault("labels", [1])
        return c.seg.predict(**prompt)

    return call


def _pred_same(**prompt: Any) -> Callable[[Any, Ctx], None]:
    def check(result: Any, c: Ctx) -> None:
        expected = _pred(**prompt)(c)
        same(result.masks, expected.masks)
        same(result.scores, expected.scores)

    return check


S = "seg"
add("sam-predict-point-outside", _pred(points=[[100, 5]], labels=[1]),
    Raises(VE, ["(100, 5)", "outside"]), S)
add("sam-predict-label-2", _pred(points=[[5, 5]], labels=[2]), Raises(VE, ["labels", "2"]), S)
add("sam-predict-labels-mismatch", _pred(points=[[5, 5], [6, 6]], labels=[1]),
    Raises(VE, ["2 points but 1 labels"]), S)
add("sam-predict-no-prompt", lambda c: c.seg.set_image(photo()).predict(),
    Raises(VE, ["at least one prompt"]), S)
add("sam-predict-multimask-str", _pred(multimask="no"), Raises(VE, ["multimask", "'no'"]), S)
add("sam-predict-multimask-none", _pred(multimask=None), Raises(VE, ["multimask", "None"]), S)
add("sam-predict-multimask-2", _pred(multimask=2), Raises(VE, ["multimask", "2"]), S)
add("sam-predict-multimask-np-bool", _pred(multimask=np.bool_(False)),
    Works(_pred_same(multimask=False)), S)
add("sam-predict-multimask-0", _pred(multimask=0), Works(_pred_same(multimask=False)), S)
add("sam-predict-box-flipped", _pred(box=[30, 4, 4, 30]), Raises(VE, ["x2 > x1"]), S)
add("sam-predict-box-outside", _pred(box=[0, 0, 100, 30]), Raises(VE, ["outside"]), S)
add("sam-predict-box-nan", _pred(box=[1, 2, np.nan, 9]), Raises(VE, ["box", "nan"]), S)
add("sam-predict-points-nan", _pred(points=[[np.nan, 5]], labels=[1]),
    Raises(VE, ["points", "nan"]), S)
add("sam-predict-points-3-columns", _pred(points=[[1, 2, 3]], labels=[1]),
    Raises(VE, ["(N, 2)"]), S)
add("sam-predict-mask-wrong-size", _pred(mask=np.zeros((1, 10, 10), np.float32)),
    Raises(VE, ["mask", "(1, 10, 10)"]), S)
add("sam-predict-mask-nan", _pred(mask=np.full((1, 64, 64), np.nan, np.float32)),
    Raises(VE, ["mask", "finite"]), S)
add("sam-predict-prompt-and-points",
    _pred(prompt=Prompt(SIZE, [[5, 5]], [1]), points=[[5, 5]]), Raises(VE, ["not both"]), S)
add("sam-predict-prompt-other-size", _pred(prompt=Prompt((10, 10), [[5, 5]], [1])),
    Raises(VE, ["10x10"]), S)
add("sam-predict-prompt-not-a-prompt", _pred(prompt={"points": [[5, 5]]}),
    Raises(VE, ["prompt", "Prompt"]), S)
add("sam-predict-points-float32", _pred(points=np.array([[10, 10]], np.float32),
                                        labels=np.array([1], np.int64)),
    Works(_pred_same(points=[[10, 10]], labels=[1])), S)
add("sam-predict-points-torch", _pred(points=torch.tensor([[10, 10]]), labels=torch.tensor([1])),
    Works(_pred_same(points=[[10, 10]], labels=[1])), S)
add("sam-predict-no-image", lambda c: sam.Segmenter(c.seg.loaded).predict([[5, 5]], [1]),
    Raises(RuntimeError, ["set_image"]), S)


def _segm(detections: Any = UNSET, **settings: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        c.seg.set_image(photo())
        return c.seg.segment(dets() if detections is UNSET else detections, **settings)

    return call


for tag, value, word in [("0", 0, "0"), ("minus-1", -1, "-1"), ("nan", float("nan"), "nan"),
                         ("str", "2", "'2'"), ("true", True, "True"), ("1.5", 1.5, "1.5")]:
    add(f"sam-segment-batch-size-{tag}", _segm(batch_size=value),
        Raises(VE, ["batch_size", word]), S)
add("sam-segment-batch-size-np-int64", _segm(batch_size=np.int64(2)),
    Works(lambda r, c: same(r.masks, _segm(batch_size=2)(c).masks)), S)
add("sam-segment-list-of-boxes", _segm([[1, 2, 30, 30]]), Raises(VE, ["Detections"]), S)
add("sam-segment-none", _segm(None), Raises(VE, ["Detections"]), S)
add("sam-segment-box-outside", _segm(Detections([[100, 100, 120, 120]])),
    Raises(VE, ["no area", "64x48"]), S)
add("sam-segment-image-4d", _segm(image=np.zeros((1, 8, 8, 3), np.uint8)),
    Raises(VE, ["shape"]), S)
add("sam-set-image-none", lambda c: c.seg.set_image(None), Raises(VE, ["None"]), S)
add("sam-set-image-missing", lambda c: c.seg.set_image(c.tmp / "gone.png"),
    Raises(FNF, ["gone.png"]), S)
add("sam-set-image-zero-byte", lambda c: c.seg.set_image(file_of(c, "e.jpg", b"")),
    Raises(VE, ["e.jpg"]), S)
add("sam-set-image-float-above-1", lambda c: c.seg.set_image(np.full((8, 8, 3), 5.0)),
    Raises(VE, ["[0, 1]"]), S)
add("sam-cache-size-0", lambda c: sam.Segmenter(c.seg.loaded, cache_size=0),
    Raises(VE, ["cache_size", "0"]), S)
add("sam-cache-size-np-int64", lambda c: sam.Segmenter(c.seg.loaded, cache_size=np.int64(2)),
    Works(lambda r, c: plain_int(r.cache_size, 2)), S)
add("sam-load-embedding-missing", lambda c: c.seg.load_embedding(c.tmp / "e.pt"),
    Raises(FNF, ["e.pt"]), S)
add("sam-load-embedding-garbage",
    lambda c: c.seg.load_embedding(file_of(c, "junk.pt", b"not a torch file at all")),
    Raises(VE, ["junk.pt"]), S)
add("sam-load-embedding-zero-byte", lambda c: c.seg.load_embedding(file_of(c, "zero.pt", b"")),
    Raises(VE, ["zero.pt"]), S)
add("sam-load-embedding-json",
    lambda c: c.seg.load_embedding(file_of(c, "e.json", b'{"model": "tiny-sam"}')),
    Raises(VE, ["e.json"]), S)
add("sam-from-pretrained-unknown", lambda c: sam.Segmenter.from_pretrained("sam-vit-q"),
    Raises(VE, ["'sam-vit-q'"]))
add("sam-from-pretrained-cache-size-0",
    lambda c: (c.no_load(), sam.Segmenter.from_pretrained("tiny", "cpu", cache_size=0)),
    Raises(VE, ["cache_size", "0"]))


# ================================================================ inpaint

def paint(c: Ctx, guarded: bool = True, image: Any = UNSET, mask: Any = UNSET,
          **settings: Any) -> Any:
    """Inpaint the shared photo (1 step unless said), refusing generation when guarded."""
    if guarded:
        c.no_paint()
    kwargs = {"prompt": "a cat", "steps": 1, **settings}
    return c.painter.inpaint(photo() if image is UNSET else image,
                             blob() if mask is UNSET else mask, **kwargs)


def _paint(**settings: Any) -> Callable[[Ctx], Any]:
    return lambda c: paint(c, **settings)


def _paint_ok(**settings: Any) -> Callable[[Ctx], Any]:
    return lambda c: paint(c, guarded=False, **settings)


def _recipe(name: str, expected: Any, **plain_settings: Any) -> Callable[[Any, Ctx], None]:
    """The recipe records ``name`` as the plain ``expected``, pixels as the plain call's."""
    def check(result: Any, c: Ctx) -> None:
        args = result[0].info[tracking.RECIPE_KEY].args
        (plain_float if isinstance(expected, float) else plain_int)(args[name], expected)
        same(result[0], paint(c, guarded=False, **plain_settings)[0])

    return check


P = "painter"
for tag, value, word in [("nan", float("nan"), "nan"), ("inf", float("inf"), "inf"),
                         ("huge-1e9", 1e9, "1000000000"), ("minus-1", -1, "-1"),
                         ("str", "7.5", "'7.5'"), ("true", True, "True")]:
    add(f"inpaint-guidance-{tag}", _paint(guidance_scale=value),
        Raises(VE, ["guidance_scale", word]), P)
add("inpaint-guidance-np-float32", _paint_ok(guidance_scale=np.float32(7.5)),
    Works(_recipe("guidance_scale", 7.5, guidance_scale=7.5)), P)
add("inpaint-guidance-torch", _paint_ok(guidance_scale=torch.tensor(2.0)),
    Works(_recipe("guidance_scale", 2.0, guidance_scale=2.0)), P)
for tag, value, word in [("0", 0, "0"), ("1.5", 1.5, "1.5"), ("nan", float("nan"), "nan"),
                         ("minus-0.5", -0.5, "-0.5"), ("str", "1", "'1'"),
                         ("true", True, "True")]:
    add(f"inpaint-strength-{tag}", _paint(strength=value), Raises(VE, ["strength", word]), P)
add("inpaint-strength-np-float32", _paint_ok(strength=np.float32(0.5), steps=2),
    Works(_recipe("strength", 0.5, strength=0.5, steps=2)), P)
for tag, value, word in [("0", 0, "0"), ("minus-1", -1, "-1"), ("1.5", 1.5, "1.5"),
                         ("str", "2", "'2'"), ("true", True, "True"),
                         ("huge-2-70", HUGE, HUGE_TEXT), ("huge-1e9", 1e9, "1000000000"),
                         ("nan", float("nan"), "nan")]:
    add(f"inpaint-steps-{tag}", _paint(steps=value), Raises(VE, ["steps", word]), P)
add("inpaint-steps-np-int64", _paint_ok(steps=np.int64(2)),
    Works(_recipe("steps", 2, steps=2)), P)
for tag, value, word in [("minus-1", -1, "-1"), ("2-70", HUGE, HUGE_TEXT), ("1.5", 1.5, "1.5"),
                         ("str", "1", "'1'"), ("true", True, "True"),
                         ("nan", float("nan"), "nan"), ("2-63", 2**63, str(2**63))]:
    add(f"inpaint-seed-{tag}", _paint(seed=value), Raises(VE, ["seed", word]), P)
add("inpaint-seed-overflows-with-num-images", _paint(seed=2**63 - 1, num_images=2),
    Raises(VE, ["seed", "num_images"]), P)
add("inpaint-seed-np-int64", _paint_ok(seed=np.int64(3)), Works(_recipe("seed", 3, seed=3)), P)
for tag, value, word in [("nan", float("nan"), "nan"), ("minus-1", -1, "-1"),
                         ("str", "0.25", "'0.25'"), ("inf", float("inf"), "inf")]:
    add(f"inpaint-margin-{tag}", _paint(margin=value), Raises(VE, ["margin", word]), P)
add("inpaint-margin-np-float32", _paint_ok(margin=np.float32(0.5)),
    Works(_recipe("margin", 0.5, margin=0.5)), P)
for setting in ("grow", "feather"):
    for tag, value, word in [("minus-1", -1, "-1"), ("1.5", 1.5, "1.5"), ("str", "8", "'8'"),
                             ("huge", 10**6, "1000000")]:
        add(f"inpaint-{setting}-{tag}", _paint(**{setting: value}), Raises(VE, [setting, word]), P)
    add(f"inpaint-{setting}-np-int64", _paint_ok(**{setting: np.int64(4)}),
        Works(_recipe(setting, 4, **{setting: 4})), P)
for tag, value, word in [("0", 0, "0"), ("minus-1", -1, "-1"), ("1.5", 1.5, "1.5"),
                         ("2-70", HUGE, HUGE_TEXT)]:
    add(f"inpaint-num-images-{tag}", _paint(num_images=value), Raises(VE, ["num_images", word]), P)
add("inpaint-num-images-np-int64", _paint_ok(num_images=np.int64(1)),
    Works(lambda r, c: same(len(r), 1)), P)
for tag, value, word in [("0", 0, "0"), ("63", 63, "63"), ("100", 100, "100"),
                         ("100000", 100000, "100000"), ("str", "64", "'64'")]:
    add(f"inpaint-resolution-{tag}", _paint(resolution=value), Raises(VE, ["resolution", word]), P)
add("inpaint-resolution-np-int64", _paint_ok(resolution=np.int64(64)),
    Works(_recipe("resolution", 64, resolution=64)), P)
add("inpaint-prompt-empty", _paint(prompt=""), Raises(VE, ["prompt", "''"]), P)
add("inpaint-prompt-none", _paint(prompt=None), Raises(VE, ["prompt", "None"]), P)
add("inpaint-prompt-number", _paint(prompt=3), Raises(VE, ["prompt", "3"]), P)
add("inpaint-prompt-long", _paint_ok(prompt=LONG_PROMPT), Warns(["cut off"]), P)
add("inpaint-negative-prompt-number", _paint(negative_prompt=3),
    Raises(VE, ["negative_prompt", "3"]), P)
add("inpaint-negative-prompt-long", _paint_ok(negative_prompt=LONG_PROMPT),
    Warns(["negative_prompt", "cut off"]), P)
add("inpaint-crop-str", _paint(crop="no"), Raises(VE, ["crop", "'no'"]), P)
add("inpaint-mask-wrong-size", _paint(mask=np.ones((10, 10), bool)),
    Raises(VE, ["mask", "10x10", "64x48"]), P)
add("inpaint-mask-empty", _paint(mask=np.zeros((H, W), bool)), Raises(VE, ["mask", "empty"]), P)
add("inpaint-mask-nan", _paint(mask=np.where(blob(), np.nan, 0.0)),
    Raises(VE, ["mask", "nan"]), P)
add("inpaint-mask-none", _paint(mask=None), Raises(VE, ["mask", "None"]), P)
add("inpaint-mask-path-string", _paint(mask="mask.png"), Raises(VE, ["mask"]), P)
add("inpaint-mask-4d", _paint(mask=np.ones((1, 1, H, W), bool)), Raises(VE, ["mask"]), P)
add("inpaint-mask-detections-without-masks", _paint(mask=dets()), Raises(VE, ["no masks"]), P)
add("inpaint-mask-uint8-255-ok", _paint_ok(mask=blob().astype(np.uint8) * 255),
    Works(lambda r, c: same(r[0], paint(c, guarded=False)[0])), P)
add("inpaint-image-missing", _paint(image=Path("/no/such/photo.png")),
    Raises(FNF, ["photo.png"]), P)
add("inpaint-image-float-above-1", _paint(image=np.full((H, W, 3), 3.0)),
    Raises(VE, ["[0, 1]"]), P)


def _sweep(param: str, values: Any, **settings: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        c.no_paint()
        c.state["images"] = c.run._counter
        return c.painter.sweep(photo(), blob(), "a cat", param, values, run=c.run,
                               **{"steps": 1, **settings} if param != "steps" else settings)

    return call


def _nothing_logged(c: Ctx) -> None:
    assert c.run._counter == c.state["images"], "an image was logged before the error"


def _sweep_raises(*words: str | tuple[str, ...]) -> Raises:
    return Raises(VE, list(words), after=_nothing_logged)


PR = ("painter", "run")
add("inpaint-sweep-steps-2-then-0", _sweep("steps", [2, 0]), _sweep_raises("steps", "0"), *PR)
add("inpaint-sweep-guidance-then-nan", _sweep("guidance_scale", [1.0, float("nan")]),
    _sweep_raises("guidance_scale", "nan"), *PR)
add("inpaint-sweep-seed-then-minus-1", _sweep("seed", [0, -1]), _sweep_raises("seed", "-1"), *PR)
add("inpaint-sweep-strength-then-0", _sweep("strength", [1.0, 0]),
    _sweep_raises("strength", "0"), *PR)
add("inpaint-sweep-prompt-then-empty", _sweep("prompt", ["a cat", ""]),
    _sweep_raises("prompt", "''"), *PR)
add("inpaint-sweep-values-string", _sweep("prompt", "abc"), _sweep_raises("values", "'abc'"),
    *PR)
add("inpaint-sweep-values-none", _sweep("steps", None), _sweep_raises("values", "None"), *PR)
add("inpaint-sweep-values-empty", _sweep("steps", []), _sweep_raises("values", "empty"), *PR)
add("inpaint-sweep-unknown-param", _sweep("colour", [1]), _sweep_raises("'colour'"), *PR)
add("inpaint-sweep-param-twice", _sweep("grow", [1], grow=2), _sweep_raises("'grow'"), *PR)
add("inpaint-sweep-bad-other-setting", _sweep("seed", [0, 1], margin=float("nan")),
    _sweep_raises("margin", "nan"), *PR)
add("inpaint-sweep-run-not-a-run",
    lambda c: (c.no_paint(), c.painter.sweep(photo(), blob(), "a cat", "seed", [0], run="abc")),
    Raises(VE, ["run", "'abc'"]), P)
add("inpaint-sweep-steps-np-int64",
    lambda c: c.painter.sweep(photo(), blob(), "a cat", "steps", [np.int64(1)]),
    Works(lambda r, c: plain_int(r[0][0].info[tracking.RECIPE_KEY].args["steps"], 1)), P)


def _prepare(**settings: Any) -> Callable[[Ctx], Any]:
    return lambda c: c.painter.prepare(photo(), blob(), **settings)


for setting, tag, value, word in [
        ("grow", "minus-1", -1, "-1"), ("grow", "1.5", 1.5, "1.5"),
        ("feather", "minus-3", -3, "-3"), ("feather", "2.5", 2.5, "2.5"),
        ("margin", "nan", float("nan"), "nan"), ("margin", "minus-1", -1, "-1"),
        ("resolution", "0", 0, "0"), ("resolution", "65", 65, "65"),
        ("crop", "str", "no", "'no'")]:
    add(f"inpaint-prepare-{setting}-{tag}", _prepare(**{setting: value}),
        Raises(VE, [setting, word]), P)
add("inpaint-prepare-grow-np-int64", _prepare(grow=np.int64(4)),
    Works(lambda r, c: same(r[2], c.painter.prepare(photo(), blob(), grow=4)[2])), P)
add("inpaint-difference-sizes",
    lambda c: inpaint.difference(photo(), np.zeros((4, 4, 3), np.uint8)),
    Raises(VE, ["64x48", "4x4"]))
add("inpaint-from-pretrained-scheduler",
    lambda c: inpaint.Inpainter.from_pretrained("tiny", "cpu", scheduler="nope"),
    Raises(VE, ["'nope'"]))
add("inpaint-from-pretrained-unknown", lambda c: inpaint.Inpainter.from_pretrained("sd99"),
    Raises(VE, ["'sd99'"]))


# ================================================================ generate

def _gen(guarded: bool = True, **settings: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        if guarded:
            c.no_generate()
        return c.maker.generate(**{"prompt": "a cat", "steps": 1, "height": 64, "width": 64,
                                   **settings})

    return call


def _t2i(guarded: bool = True, **settings: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        if guarded:
            c.no_load()
        return generate.text_to_image(**{"prompt": "a cat", "model": "tiny", "steps": 1,
                                         "height": 64, "width": 64, "device": "cpu",
                                         **settings})

    return call


def _gen_recipe(name: str, expected: Any, **plain: Any) -> Callable[[Any, Ctx], None]:
    def check(result: Any, c: Ctx) -> None:
        args = result.info[tracking.RECIPE_KEY].args
        (plain_float if isinstance(expected, float) else plain_int)(args[name], expected)
        same(result, _gen(guarded=False, **plain)(c))

    return check


G = "maker"
for tag, value, word in [("4096", 4096, "4096"), ("100", 100, "100"), ("0", 0, "0"),
                         ("minus-8", -8, "-8"), ("1.5", 1.5, "1.5"), ("str", "512", "'512'"),
                         ("true", True, "True")]:
    add(f"t2i-height-{tag}", _t2i(height=value), Raises(VE, ["height", word]))
add("t2i-width-12", _t2i(width=12), Raises(VE, ["width", "12"]))
add("t2i-width-2-70", _t2i(width=HUGE), Raises(VE, ["width", HUGE_TEXT]))
for tag, value, word in [("0", 0, "0"), ("minus-1", -1, "-1"), ("2-70", HUGE, HUGE_TEXT),
                         ("str", "4", "'4'")]:
    add(f"t2i-steps-{tag}", _t2i(steps=value), Raises(VE, ["steps", word]))
for tag, value, word in [("nan", float("nan"), "nan"), ("minus-1", -1, "-1"),
                         ("huge-1e9", 1e9, "1000000000"), ("str", "7", "'7'")]:
    add(f"t2i-guidance-{tag}", _t2i(guidance_scale=value), Raises(VE, ["guidance_scale", word]))
for tag, value, word in [("minus-1", -1, "-1"), ("2-70", HUGE, HUGE_TEXT), ("1.5", 1.5, "1.5")]:
    add(f"t2i-seed-{tag}", _t2i(seed=value), Raises(VE, ["seed", word]))
add("t2i-prompt-empty", _t2i(prompt=""), Raises(VE, ["prompt", "''"]))
add("t2i-prompt-none", _t2i(prompt=None), Raises(VE, ["prompt", "None"]))
add("t2i-negative-prompt-number", _t2i(negative_prompt=3), Raises(VE, ["negative_prompt", "3"]))
add("t2i-model-unknown", _t2i(model="sd99"), Raises(VE, ["'sd99'"]))
add("t2i-device-tpu", _t2i(device="tpu"), Raises(VE, ["'tpu'"]))
add("t2i-height-np-int64", _t2i(guarded=False, height=np.int64(64)),
    Works(lambda r, c: same(r.size, (64, 64))))
add("t2i-seed-np-int64", _t2i(guarded=False, seed=np.int64(7)),
    Works(lambda r, c: plain_int(r.info[tracking.RECIPE_KEY].args["seed"], 7)))
add("generate-steps-0", _gen(steps=0), Raises(VE, ["steps", "0"]), G)
add("generate-height-4096", _gen(height=4096), Raises(VE, ["height", "4096"]), G)
add("generate-seed-2-70", _gen(seed=HUGE), Raises(VE, ["seed", HUGE_TEXT]), G)
add("generate-guidance-inf", _gen(guidance_scale=float("inf")),
    Raises(VE, ["guidance_scale", "inf"]), G)
add("generate-negative-prompt-list", _gen(negative_prompt=["a", "b"]),
    Raises(VE, ["negative_prompt"]), G)
add("generate-prompt-long", _gen(guarded=False, prompt=LONG_PROMPT), Warns(["cut off"]), G)
add("generate-steps-np-int64", _gen(guarded=False, steps=np.int64(1)),
    Works(_gen_recipe("steps", 1, steps=1)), G)
add("generate-seed-np-int64", _gen(guarded=False, seed=np.int64(5)),
    Works(_gen_recipe("seed", 5, seed=5)), G)
add("generate-guidance-np-float32", _gen(guarded=False, guidance_scale=np.float32(7.5)),
    Works(_gen_recipe("guidance_scale", 7.5, guidance_scale=7.5)), G)
add("generate-width-np-int64", _gen(guarded=False, width=np.int64(64)),
    Works(_gen_recipe("width", 64, width=64)), G)


# ================================================================ lora

def _lora_folder(c: Ctx, data: bytes) -> Path:
    folder = c.tmp / "lora"
    folder.mkdir()
    (folder / lora.LORA_FILE).write_bytes(data)
    return folder


LP = "sd_pipe"
add("lora-load-missing-folder", lambda c: lora.load(c.sd_pipe, c.tmp / "no-lora"),
    Raises(FNF, ["no-lora"]), LP)
add("lora-load-zero-byte-file", lambda c: lora.load(c.sd_pipe, _lora_folder(c, b"")),
    Raises(VE, [lora.LORA_FILE]), LP)
add("lora-load-garbage-file",
    lambda c: lora.load(c.sd_pipe, _lora_folder(c, b"\x00garbage" * 100)),
    Raises(VE, [lora.LORA_FILE]), LP)
add("lora-load-json-file",
    lambda c: lora.load(c.sd_pipe, _lora_folder(c, b'{"unet": 1}')),
    Raises(VE, [lora.LORA_FILE]), LP)
add("lora-load-folder-none", lambda c: lora.load(c.sd_pipe, None), Raises(VE, ["None"]), LP)
add("lora-load-target-str", lambda c: lora.load("sd15", c.tmp), Raises(VE, ["str"]))
for tag, value, word in [("nan", float("nan"), "nan"), ("inf", float("inf"), "inf"),
                         ("str", "1", "'1'"), ("true", True, "True")]:
    add(f"lora-load-weight-{tag}", lambda c, v=value: lora.load(c.sd_pipe, c.lora_dir, weight=v),
        Raises(VE, ["weight", word]), LP, "lora_dir")
add("lora-load-adapter-name-empty",
    lambda c: lora.load(c.sd_pipe, c.lora_dir, adapter_name=""),
    Raises(VE, ["adapter_name", "''"]), LP, "lora_dir")
add("lora-load-adapter-name-number",
    lambda c: lora.load(c.sd_pipe, c.lora_dir, adapter_name=3),
    Raises(VE, ["adapter_name", "3"]), LP, "lora_dir")
add("lora-load-weight-np-float32",
    lambda c: lora.load(c.sd_pipe, c.lora_dir, weight=np.float32(0.5)),
    Works(lambda r, c: plain_float(lora.weights(c.sd_pipe)[lora.ADAPTER], 0.5)),
    LP, "lora_dir")
add("lora-load-weight-torch", lambda c: lora.load(c.sd_pipe, c.lora_dir, weight=torch.tensor(0.25)),
    Works(lambda r, c: plain_float(lora.weights(c.sd_pipe)[lora.ADAPTER], 0.25)),
    LP, "lora_dir")
add("lora-set-weight-nothing-loaded", lambda c: lora.set_weight(c.sd_pipe, 0.5),
    Raises(VE, ["'dreambooth'", "lora.load"]), LP)
add("lora-set-weight-nan",
    lambda c: lora.set_weight(lora.load(c.sd_pipe, c.lora_dir), float("nan")),
    Raises(VE, ["weight", "nan"]), LP, "lora_dir")
add("lora-folder-file-path", lambda c: lora.folder(file_of(c, "w.bin", b"x")),
    Raises(FNF, ["w.bin"]))


# ================================================================ tracking

def _start(**kwargs: Any) -> Callable[[Ctx], Any]:
    return lambda c: tracking.start(**{"project": "bad-inputs", "online": False, **kwargs})


add("tracking-start-tags-5", _start(tags=5), Raises(VE, ["tags", "5"]))
add("tracking-start-tags-none", _start(tags=None), Raises(VE, ["tags", "None"]))
add("tracking-start-project-empty", _start(project=""), Raises(VE, ["project", "''"]))
add("tracking-start-project-none", _start(project=None), Raises(VE, ["project", "None"]))
add("tracking-start-project-path", _start(project="../elsewhere"),
    Raises(VE, ["project", "'../elsewhere'"]))
add("tracking-start-project-number", _start(project=3), Raises(VE, ["project", "3"]))
add("tracking-start-name-empty", _start(name=""), Raises(VE, ["run name", "''"]))
add("tracking-start-online-str", _start(online="no"), Raises(VE, ["online", "'no'"]))
add("tracking-start-directory-is-file",
    lambda c: tracking.start("bad-inputs", online=False, directory=file_of(c, "f.txt", b"x")),
    Raises(VE, ["directory", "f.txt"]))
add("tracking-start-online-np-bool", _start(online=np.bool_(False)),
    Works(lambda r, c: same(r.online, False)))

R = "run"


def _image(**kwargs: Any) -> Callable[[Ctx], Any]:
    return lambda c: c.run.log_image(**{"image": photo(), "name": "cat", **kwargs})


add("tracking-log-image-metadata-str", _image(metadata="seed=1"),
    Raises(VE, ["metadata", "'seed=1'"]), R)
add("tracking-log-image-detections-list", _image(detections=[[1, 2, 3, 4]]),
    Raises(VE, ["detections", "Detections"]), R)
add("tracking-log-image-step-str", _image(step="3"), Raises(VE, ["step", "'3'"]), R)
add("tracking-log-image-step-1.5", _image(step=1.5), Raises(VE, ["step", "1.5"]), R)
add("tracking-log-image-step-true", _image(step=True), Raises(VE, ["step", "True"]), R)
add("tracking-log-image-step-nan", _image(step=float("nan")), Raises(VE, ["step", "nan"]), R)
add("tracking-log-image-step-np-int64", _image(step=np.int64(3)),
    Works(lambda r, c: plain_int(r["step"], 3)), R)
add("tracking-log-image-recipe-str", _image(recipe="abc"), Raises(VE, ["recipe", "'abc'"]), R)
add("tracking-log-image-recipe-no-kind", _image(recipe={"args": {}}), Raises(VE, ["kind"]), R)
add("tracking-log-image-name-empty", _image(name=""), Raises(VE, ["name", "''"]), R)
add("tracking-log-image-name-none", _image(name=None), Raises(VE, ["name", "None"]), R)
add("tracking-log-image-image-none", _image(image=None), Raises(VE, ["None"]), R)
add("tracking-log-image-image-missing", lambda c: c.run.log_image(c.tmp / "x.png", "x"),
    Raises(FNF, ["x.png"]), R)
add("tracking-log-image-image-4d", _image(image=np.zeros((1, 4, 4, 3), np.uint8)),
    Raises(VE, ["shape"]), R)
add("tracking-log-image-point-outside", _image(points=[[100, 5]], labels=[1]),
    Raises(VE, ["(100, 5)", "outside"]), R)
add("tracking-log-image-label-2", _image(points=[[5, 5]], labels=[2]),
    Raises(VE, ["labels", "2"]), R)
add("tracking-log-image-masks-wrong-size",
    _image(detections=Detections(BOX, masks=np.ones((1, 5, 5), bool))),
    Raises(VE, ["masks", "5x5", "64x48"]), R)
add("tracking-log-image-box-reaches-outside", _image(detections=Detections([[40, 10, 90, 30]])),
    Warns(["reaches outside"]), R)
add("tracking-log-image-scores-np-float32",
    _image(detections=Detections(BOX, np.array([0.1], np.float32))),
    Works(lambda r, c: same(r["detections"], _image(detections=Detections(BOX, [0.1]))(c)[
        "detections"])), R)


def _ended(call: Callable[[Any], Any]) -> Callable[[Ctx], Any]:
    def go(c: Ctx) -> Any:
        c.run.end()
        return call(c.run)

    return go


ENDED = Raises(RuntimeError, ["ended", "tracking.start"])
add("tracking-log-image-after-end", _ended(lambda r: r.log_image(photo(), "x")), ENDED, R)
add("tracking-log-params-after-end", _ended(lambda r: r.log_params({"a": 1})), ENDED, R)
add("tracking-log-metrics-after-end", _ended(lambda r: r.log_metrics({"a": 1})), ENDED, R)
add("tracking-log-text-after-end", _ended(lambda r: r.log_text("hi")), ENDED, R)


def _params(params: Any) -> Callable[[Ctx], Any]:
    return lambda c: c.run.log_params(params)


def _logged_param(name: str) -> Any:
    def get(c: Ctx) -> Any:
        return tracking.load_record(c.run.folder)["params"][name]

    return get


class _Thing:
    pass


add("tracking-log-params-pil-image", _params({"photo": photo()}), Warns(["photo"]), R)
add("tracking-log-params-lambda", _params({"fn": lambda x: x}), Warns(["fn"]), R)
add("tracking-log-params-object", _params({"thing": _Thing()}), Warns(["thing"]), R)
add("tracking-log-params-list", _params([("a", 1)]), Raises(VE, ["dict", "list"]), R)
add("tracking-log-params-none", _params(None), Raises(VE, ["dict", "NoneType"]), R)
add("tracking-log-params-np-float32", _params({"threshold": np.float32(0.1)}),
    Works(lambda r, c: plain_float(_logged_param("threshold")(c), 0.1)), R)
add("tracking-log-params-np-int64", _params({"seed": np.int64(7)}),
    Works(lambda r, c: plain_int(_logged_param("seed")(c), 7)), R)
add("tracking-log-params-torch", _params({"lr": torch.tensor(0.5)}),
    Works(lambda r, c: plain_float(_logged_param("lr")(c), 0.5)), R)


def _metrics(metrics: Any, step: Any = None) -> Callable[[Ctx], Any]:
    return lambda c: c.run.log_metrics(metrics, step=step)


def _logged_metric(c: Ctx) -> Any:
    return tracking.load_record(c.run.folder)["metrics"][-1]


for tag, value, word in [("nan", float("nan"), "nan"), ("inf", float("inf"), "inf"),
                         ("str", "0.5", "'0.5'"), ("true", True, "True"),
                         ("none", None, "None"), ("list", [1, 2], "[1, 2]")]:
    add(f"tracking-log-metric-{tag}", _metrics({"loss": value}), Raises(VE, ["loss", word]), R)
add("tracking-log-metric-np-float32-nan", _metrics({"loss": np.float32("nan")}),
    Raises(VE, ["loss", "nan"]), R)
add("tracking-log-metric-step-str", _metrics({"loss": 1}, "3"), Raises(VE, ["step", "'3'"]), R)
add("tracking-log-metric-step-1.5", _metrics({"loss": 1}, 1.5), Raises(VE, ["step", "1.5"]), R)
add("tracking-log-metrics-not-a-dict", _metrics([0.5]), Raises(VE, ["dict", "list"]), R)
add("tracking-log-metric-np-float32", _metrics({"loss": np.float32(0.1)}),
    Works(lambda r, c: plain_float(_logged_metric(c)["value"], 0.1)), R)
add("tracking-log-metric-torch", _metrics({"loss": torch.tensor(0.5)}),
    Works(lambda r, c: plain_float(_logged_metric(c)["value"], 0.5)), R)
add("tracking-log-metric-step-np-int64", _metrics({"loss": 1.0}, np.int64(4)),
    Works(lambda r, c: plain_int(_logged_metric(c)["step"], 4)), R)
add("tracking-log-text-none", lambda c: c.run.log_text(None), Raises(VE, ["text", "None"]), R)
add("tracking-log-text-metadata-str", lambda c: c.run.log_text("hi", metadata="x"),
    Raises(VE, ["metadata", "'x'"]), R)
add("tracking-add-tag-none", lambda c: c.run.add_tag(None), Raises(VE, ["tag", "None"]), R)
add("tracking-log-dataset-missing", lambda c: c.run.log_dataset(c.tmp / "nope", "photos"),
    Raises((VE, FNF), ["nope"]), R)
add("tracking-log-dataset-empty", lambda c: c.run.log_dataset(c.tmp, "photos"),
    Raises(VE, ["holds no files"]), R)
add("tracking-log-dataset-name-empty",
    lambda c: c.run.log_dataset(file_of(c, "a.txt", b"x").parent, ""),
    Raises(VE, ["dataset name", "''"]), R)


def _entry(c: Ctx) -> Any:
    c.run.log_image(photo(), "cat", metadata={"seed": 1})
    return tracking.logged_images(runs_=[c.run])[-1]


add("tracking-pick-str", lambda c: tracking.pick("cat"), Raises(VE, ["pick", "'cat'"]))
add("tracking-pick-none", lambda c: tracking.pick(None), Raises(VE, ["pick", "None"]))
add("tracking-pick-pil-image", lambda c: tracking.pick(photo()), Raises(VE, ["pick", "Image"]))
add("tracking-pick-logged-record", lambda c: tracking.pick(c.run.log_image(photo(), "cat")),
    Works(lambda r, c: same(tracking.best(runs=[c.run]).name, "cat")), R)
add("tracking-best-project-empty", lambda c: tracking.best(""), Raises(VE, ["project", "''"]))
add("tracking-best-project-path", lambda c: tracking.best("../x"),
    Raises(VE, ["project", "'../x'"]))
add("tracking-runs-project-number", lambda c: tracking.runs(3), Raises(VE, ["project", "3"]))
add("tracking-runs-missing-directory-ok", lambda c: tracking.runs(directory=c.tmp / "none"),
    Works(lambda r, c: same(len(r), 0)))
add("tracking-logged-images-project-path", lambda c: tracking.logged_images(".."),
    Raises(VE, ["project", "'..'"]))


def _logged_recipe(c: Ctx, args: dict[str, Any], drop_inputs: bool = False,
                   change_inputs: bool = False) -> Any:
    """Log an image with an inpainting recipe (its inputs a photo of this row's own, since
    the run is shared), damage the stored inputs as asked, then reproduce it."""
    mask = Image.fromarray(blob().astype(np.uint8) * 255)
    own = Image.fromarray(np.random.default_rng(abs(hash(str(c.tmp)))).integers(
        0, 255, (H, W, 3), np.uint8))
    made = tracking.Recipe("helpers.inpaint:Inpainter.inpaint", args,
                           {"image": own, "mask": mask})
    entry = c.run.log_image(own, "remade", recipe=made)
    path = Path(entry["folder"]) / entry["recipe"]["inputs"]["image"]["file"]  # this row's
    if drop_inputs:
        path.unlink()
    elif change_inputs:
        Image.new("RGB", (4, 4)).save(path)
    c.no_load()
    return tracking.reproduce(entry)


GOOD_ARGS = {"prompt": "a cat", "model": "tiny", "device": "cpu", "steps": 1}
add("tracking-reproduce-inputs-missing",
    lambda c: _logged_recipe(c, GOOD_ARGS, drop_inputs=True),
    Raises(FNF, ["inputs/", "missing"]), R)
add("tracking-reproduce-inputs-changed",
    lambda c: _logged_recipe(c, GOOD_ARGS, change_inputs=True), Raises(VE, ["changed"]), R)
add("tracking-reproduce-recipe-without-model",
    lambda c: _logged_recipe(c, {"prompt": "a cat"}), Raises(VE, ["model"]), R)
add("tracking-reproduce-unknown-setting",
    lambda c: _logged_recipe(c, {**GOOD_ARGS, "bogus": 1}), Raises(VE, ["bogus"]), R)
add("tracking-reproduce-steps-0", lambda c: _logged_recipe(c, {**GOOD_ARGS, "steps": 0}),
    Raises(VE, ["steps", "0"]), R)
add("tracking-reproduce-none", lambda c: tracking.reproduce(None), Raises(VE, ["record"]))
add("tracking-reproduce-empty-dict", lambda c: tracking.reproduce({}), Raises(VE, ["record"]))
add("tracking-reproduce-no-recipe", lambda c: tracking.reproduce({"name": "x"}),
    Raises(VE, ["'x'", "no recipe"]))
add("tracking-reproduce-foreign-kind",
    lambda c: tracking.reproduce({"name": "x", "recipe": {"kind": "os:system", "args": {}}}),
    Raises(VE, ["'os:system'"]))
add("tracking-reproduce-unknown-module",
    lambda c: tracking.reproduce({"name": "x", "recipe": {"kind": "helpers.nothing:f"}}),
    Raises(VE, ["'helpers.nothing:f'"]))
add("tracking-reproduce-recipe-str", lambda c: tracking.reproduce({"name": "x", "recipe": "abc"}),
    Raises(VE, ["recipe", "'abc'"]))
add("tracking-reproduce-args-list",
    lambda c: tracking.reproduce({"name": "x", "recipe": {
        "kind": "helpers.inpaint:Inpainter.inpaint", "args": [1, 2]}}),
    Raises(VE, ["args", "[1, 2]"]))
add("tracking-recipe-input-array",
    lambda c: c.run.log_image(photo(), "x", recipe=tracking.Recipe(
        "helpers.inpaint:Inpainter.inpaint", {}, {"image": _PHOTO})),
    Raises(VE, ["input", "'image'", "from_array"]), R)


# ================================================================ gallery (widgets + tracking)

add("gallery-by-unknown", lambda c: (_entry(c), widgets.gallery(runs=[c.run], by="colour"))[1],
    Raises(VE, ["'colour'"]), R)
add("gallery-project-empty", lambda c: widgets.gallery(""), Raises(VE, ["project", "''"]))
add("gallery-pick-out-of-range", lambda c: (_entry(c), widgets.gallery(runs=[c.run]).pick(99))[1],
    Raises(IndexError, ["99", "out of range"]), R)
add("gallery-pick-true", lambda c: (_entry(c), widgets.gallery(runs=[c.run]).pick(True))[1],
    Raises(VE, ["pick", "True"]), R)
add("gallery-pick-str", lambda c: (_entry(c), widgets.gallery(runs=[c.run]).pick("0"))[1],
    Raises(VE, ["pick", "'0'"]), R)
add("gallery-pick-np-int64",
    lambda c: (_entry(c), widgets.gallery(runs=[c.run]).pick(np.int64(0)))[1],
    Works(lambda r, c: same(tracking.best(runs=[c.run]).name, "cat")), R)
add("gallery-cell-0", lambda c: widgets.Gallery([_entry(c)], cell=0), Raises(VE, ["cell", "0"]), R)
add("gallery-runs-missing-folder", lambda c: widgets.gallery(runs=[c.tmp / "no-run"]),
    Raises((VE, FNF), ["no-run"]))


# ================================================================ dreambooth

TINY_DB = dict(resolution=64, num_class_images=2, sample_steps=2, learning_rate=3e-2,
               max_steps=1)


def _config(**settings: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        c.no_load()
        config = dreambooth.DreamBoothConfig(**{**TINY_DB, "output_dir": str(c.tmp / "out"),
                                                **settings})
        return config.checked()

    return call


def _train(config: Any = None, **settings: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        c.no_load()
        cfg = config if config is not None else dreambooth.DreamBoothConfig(
            **{**TINY_DB, "output_dir": str(c.tmp / "out"), **settings})
        if callable(cfg):
            cfg = cfg(c)
        return dreambooth.train(cfg)

    return call


def _checked(name: str, expected: Any) -> Callable[[Any, Ctx], None]:
    def check(result: Any, c: Ctx) -> None:
        value = result.to_dict()[name]
        (plain_float if isinstance(expected, float) else plain_int)(value, expected)

    return check


for tag, value, word in [("8192", 8192, "8192"), ("0", 0, "0"), ("513", 513, "513"),
                         ("minus-64", -64, "-64"), ("1.5", 1.5, "1.5"), ("str", "512", "'512'"),
                         ("true", True, "True")]:
    add(f"db-resolution-{tag}", _config(resolution=value), Raises(VE, ["resolution", word]))
add("db-resolution-np-int64", _config(resolution=np.int64(64)),
    Works(_checked("resolution", 64)))
for tag, value, word in [("nan", float("nan"), "nan"), ("inf", float("inf"), "inf"),
                         ("0", 0, "0"), ("1", 1, "1"), ("minus", -1e-4, "-0.0001"),
                         ("str", "1e-4", "'1e-4'")]:
    add(f"db-learning-rate-{tag}", _config(learning_rate=value),
        Raises(VE, ["learning_rate", word]))
add("db-learning-rate-np-float32", _config(learning_rate=np.float32(1e-4)),
    Works(_checked("learning_rate", 1e-4)))
for tag, value, word in [("0", 0, "0"), ("minus-1", -1, "-1"), ("1.5", 1.5, "1.5"),
                         ("2-70", HUGE, HUGE_TEXT), ("str", "10", "'10'")]:
    add(f"db-max-steps-{tag}", _config(max_steps=value), Raises(VE, ["max_steps", word]))
add("db-max-steps-np-int64", _config(max_steps=np.int64(5)), Works(_checked("max_steps", 5)))
add("db-max-train-steps-0",
    lambda c: dreambooth.DreamBoothConfig.from_dict({"max_train_steps": 0}),
    Raises(VE, ["'max_train_steps'", "max_steps"]))
for tag, value, word in [("minus-1", -1, "-1"), ("2-70", HUGE, HUGE_TEXT), ("1.5", 1.5, "1.5")]:
    add(f"db-seed-{tag}", _config(seed=value), Raises(VE, ["seed", word]))
add("db-seed-np-int64", _config(seed=np.int64(3)), Works(_checked("seed", 3)))
for name, tag, value, word in [
        ("rank", "0", 0, "0"), ("batch_size", "0", 0, "0"),
        ("gradient_accumulation", "0", 0, "0"), ("num_class_images", "0", 0, "0"),
        ("sample_steps", "0", 0, "0"), ("validation_every", "minus-1", -1, "-1"),
        ("checkpoint_every", "1.5", 1.5, "1.5"), ("lr_warmup_steps", "minus-1", -1, "-1"),
        ("prior_loss_weight", "nan", float("nan"), "nan"),
        ("max_grad_norm", "minus-1", -1, "-1"), ("guidance_scale", "nan", float("nan"), "nan"),
        ("guidance_scale", "huge-1e9", 1e9, "1000000000"),
        ("lr_scheduler", "unknown", "nope", "'nope'"),
        ("mixed_precision", "fp32", "fp32", "'fp32'"),
        ("validation_prompts", "str", "a photo", "'a photo'"),
        ("validation_prompts", "empty-prompt", [""], "['']"),
        ("identifier", "two-words", "two words", "'two words'"),
        ("identifier", "empty", "", "''"), ("instance_prompt", "none", None, "None"),
        ("base_model", "unknown", "sd99", "'sd99'"), ("device", "tpu", "tpu", "'tpu'"),
        ("with_prior_preservation", "str", "no", "'no'"), ("random_flip", "str", "no", "'no'"),
        ("train_text_encoder", "str", "no", "'no'"),
        ("gradient_checkpointing", "str", "yes", "'yes'"),
        ("use_8bit_adam", "str", "no", "'no'")]:
    add(f"db-{name.replace('_', '-')}-{tag}", _config(**{name: value}),
        Raises(VE, [name, word]))
add("db-instance-prompt-without-identifier", _config(instance_prompt="a photo of a cat"),
    Raises(VE, ["instance_prompt", "'sks'"]))
add("db-class-prompt-with-identifier", _config(class_prompt="a photo of sks cat"),
    Raises(VE, ["class_prompt", "'sks'"]))
add("db-rank-np-int64", _config(rank=np.int64(2)), Works(_checked("rank", 2)))
add("db-guidance-np-float32", _config(guidance_scale=np.float32(7.5)),
    Works(_checked("guidance_scale", 7.5)))


def _file_out(c: Ctx) -> Any:
    target = file_of(c, "out.txt", b"not a folder")
    return dreambooth.DreamBoothConfig(**TINY_DB, output_dir=str(target))


def _empty_dir(c: Ctx) -> Any:
    (c.tmp / "photos").mkdir()
    return dreambooth.DreamBoothConfig(**TINY_DB, instance_dir=str(c.tmp / "photos"),
                                       output_dir=str(c.tmp / "out"))


def _text_dir(c: Ctx) -> Any:
    (c.tmp / "photos").mkdir()
    (c.tmp / "photos" / "a.jpg").write_bytes(b"no jpeg")
    return dreambooth.DreamBoothConfig(**TINY_DB, instance_dir=str(c.tmp / "photos"),
                                       output_dir=str(c.tmp / "out"))


def _photo_as_dir(c: Ctx) -> Any:
    path = c.tmp / "one.png"
    photo().save(path)
    return dreambooth.DreamBoothConfig(**TINY_DB, instance_dir=str(path),
                                       output_dir=str(c.tmp / "out"))


def _no_train_after(c: Ctx) -> None:
    assert not (c.tmp / "out" / "checkpoints").exists(), "training wrote checkpoints"


add("db-train-output-dir-is-file", _train(_file_out), Raises(VE, ["output_dir", "out.txt"]))
add("db-train-instance-dir-missing", _train(instance_dir="/no/such/photos"),
    Raises((VE, FNF), ["instance_dir", "/no/such/photos"]))
add("db-train-instance-dir-empty", _train(_empty_dir), Raises(VE, ["instance_dir", "photos"]))
add("db-train-instance-dir-unreadable", _train(_text_dir),
    Raises(VE, ["instance_dir", "no readable image"], after=_no_train_after))
add("db-train-instance-dir-is-a-photo", _train(_photo_as_dir),
    Raises((VE, NotADirectoryError), ["instance_dir", "one.png"]))
add("db-train-config-dict", _train(lambda c: {"max_steps": 1}),
    Raises(VE, ["DreamBoothConfig"]))
add("db-train-resume-number",
    lambda c: (c.no_load(), dreambooth.train(dreambooth.DreamBoothConfig(
        **TINY_DB, output_dir=str(c.tmp / "out")), resume=3)),
    Raises(VE, ["resume", "3"]))
add("db-train-resume-not-a-checkpoint",
    lambda c: (c.no_load(), dreambooth.train(dreambooth.DreamBoothConfig(
        **TINY_DB, output_dir=str(c.tmp / "out")), resume=str(c.tmp))),
    Raises(VE, ["resume", "checkpoint"]))
add("db-train-resolution-8192", _train(resolution=8192), Raises(VE, ["resolution", "8192"]))
add("db-from-json-missing", lambda c: dreambooth.DreamBoothConfig.from_json(c.tmp / "c.json"),
    Raises(FNF, ["c.json"]))
add("db-from-json-zero-byte",
    lambda c: dreambooth.DreamBoothConfig.from_json(file_of(c, "c.json", b"")),
    Raises(VE, ["c.json", "JSON"]))
add("db-from-json-list",
    lambda c: dreambooth.DreamBoothConfig.from_json(file_of(c, "c.json", b"[1, 2]")),
    Raises(VE, ["c.json", "object"]))
add("db-from-json-binary",
    lambda c: dreambooth.DreamBoothConfig.from_json(file_of(c, "c.json", b"\xff\xfe\x00junk")),
    Raises(VE, ["c.json"]))
add("db-from-dict-unknown", lambda c: dreambooth.DreamBoothConfig.from_dict({"resolutoin": 64}),
    Raises(VE, ["'resolutoin'", "resolution"]))
add("db-from-dict-not-a-dict", lambda c: dreambooth.DreamBoothConfig.from_dict(["rank"]),
    Raises(VE, ["['rank']"]))
add("db-instance-photos-missing", lambda c: dreambooth.instance_photos(c.tmp / "nothing"),
    Raises((VE, FNF), ["nothing"]))
add("db-instance-photos-empty", lambda c: dreambooth.instance_photos(c.tmp),
    Raises(VE, ["no readable image"]))
add("db-collect-photos-none-readable",
    lambda c: dreambooth.collect_photos([c.tmp / "a.png"], c.tmp / "mine"),
    Raises(VE, ["none of the sources"]))
add("db-collect-photos-folder-is-file",
    lambda c: dreambooth.collect_photos([photo()], file_of(c, "mine", b"x")),
    Raises(VE, ["mine"]))


# ================================================================ widgets

def _picker(image: Any = UNSET, **kwargs: Any) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        return widgets.PointPicker(c.seg, photo() if image is UNSET else image, **kwargs)

    return call


def _picked(action: Callable[[Any], Any]) -> Callable[[Ctx], Any]:
    def call(c: Ctx) -> Any:
        picker = widgets.PointPicker(c.seg, photo(), points=[[10, 10]], labels=[1])
        return action(picker)

    return call


for tag, value, word in [("0", 0, "0"), ("nan", float("nan"), "nan"), ("str", "640", "'640'"),
                         ("true", True, "True"), ("minus-1", -1, "-1")]:
    add(f"widgets-picker-display-{tag}", lambda c, v=value: _picker(display=v)(c),
        Raises(VE, ["display", word]), S)
add("widgets-picker-display-np-int64", _picker(display=np.int64(320)),
    Works(lambda r, c: same(r.display_size, (64, 48))), S)
add("widgets-picker-point-outside", _picker(points=[[100, 5]], labels=[1]),
    Raises(VE, ["(100, 5)", "outside"]), S)
add("widgets-picker-label-2", _picker(points=[[5, 5]], labels=[2]), Raises(VE, ["labels", "2"]), S)
add("widgets-picker-label-str", _picker(points=[[5, 5]], labels=["a"]),
    Raises(VE, ["labels", "'a'"]), S)
add("widgets-picker-points-3-columns", _picker(points=[[1, 2, 3]]), Raises(VE, ["points"]), S)
add("widgets-picker-box-flipped", _picker(box=[30, 4, 4, 30]), Raises(VE, ["x2 > x1"]), S)
add("widgets-picker-image-none", _picker(image=None), Raises(VE, ["None"]), S)
add("widgets-picker-multimask-str", _picker(points=[[5, 5]], multimask="no"),
    Raises(VE, ["multimask", "'no'"]), S)
add("widgets-picker-not-a-segmenter", lambda c: widgets.PointPicker("sam", photo()),
    Raises(VE, ["segmenter", "'sam'"]))
add("widgets-picker-mode-unknown", _picked(lambda p: setattr(p, "mode", "boxes")),
    Raises(VE, ["mode", "'boxes'"]), S)
add("widgets-picker-click-nan", _picked(lambda p: p.click(float("nan"), 5)),
    Raises(VE, ["nan"]), S)
add("widgets-picker-click-outside", _picked(lambda p: p.click(500, 5)),
    Raises(VE, ["(500, 5)", "outside"]), S)
add("widgets-picker-click-label-2", _picked(lambda p: p.click(5, 5, label=2)),
    Raises(VE, ["label", "2"]), S)
add("widgets-picker-click-np-float32", _picked(lambda p: p.click(np.float32(5.5), np.int64(6))),
    Works(lambda r, c: same(r is None, True)), S)
add("widgets-picker-drag-no-area", _picked(lambda p: p.drag(5, 5, 5, 5)),
    Raises(VE, ["box", ("x2 > x1", "no area")]), S)
add("widgets-picker-message-bad-x", _picked(lambda p: p.handle_message(
    {"kind": "click", "x": "a", "y": 1})), Raises(VE, ["'x'", "'a'"]), S)
add("widgets-picker-message-unknown-kind",
    _picked(lambda p: p.handle_message({"kind": "zoom"})), Raises(VE, ["'zoom'"]), S)
add("widgets-picker-message-str", _picked(lambda p: p.handle_message("click")),
    Raises(VE, ["'click'"]), S)
add("widgets-picker-message-missing-x", _picked(lambda p: p.handle_message({"kind": "click"})),
    Raises(VE, ["'x'"]), S)
add("widgets-picker-load-missing", lambda c: _picked(lambda p: p.load(c.tmp / "p.json"))(c),
    Raises(FNF, ["p.json"]), S)
add("widgets-picker-load-garbage",
    lambda c: _picked(lambda p: p.load(file_of(c, "p.json", b"{not json")))(c),
    Raises(VE, ["p.json"]), S)
add("widgets-picker-load-zero-byte",
    lambda c: _picked(lambda p: p.load(file_of(c, "p.json", b"")))(c),
    Raises(VE, ["p.json"]), S)


def _slider(dets_: Any = None, **kwargs: Any) -> Callable[[Ctx], Any]:
    return lambda c: widgets.ThresholdSlider(photo(), dets() if dets_ is None else dets_,
                                             **kwargs)


for tag, value, word in [("nan", float("nan"), "nan"), ("str", "0.5", "'0.5'"),
                         ("1.5", 1.5, "1.5"), ("true", True, "True"), ("none", None, "None")]:
    add(f"widgets-slider-threshold-{tag}", _slider(threshold=value),
        Raises(VE, ["threshold", word]))
add("widgets-slider-threshold-np-float32", _slider(threshold=np.float32(0.3)),
    Works(lambda r, c: plain_float(r.threshold, 0.3)))
add("widgets-slider-detections-list", _slider([[1, 2, 3, 4]]), Raises(VE, ["Detections"]))
add("widgets-slider-display-0", _slider(display=0), Raises(VE, ["display", "0"]))
add("widgets-slider-image-missing",
    lambda c: widgets.ThresholdSlider(c.tmp / "s.png", dets()), Raises(FNF, ["s.png"]))
add("widgets-slider-set-threshold-nan", lambda c: _slider()(c).set_threshold(float("nan")),
    Raises(VE, ["threshold", "nan"]))


def _upload(items: Any, folder: str = "up") -> Callable[[Ctx], Any]:
    return lambda c: widgets.PhotoUpload(c.tmp / folder).save(items)


add("widgets-upload-hidden-name", _upload([{"name": ".hidden", "content": b"x"}]),
    Raises(VE, ["'.hidden'"]))
add("widgets-upload-missing-name", _upload([{"content": b"x"}]), Raises(VE, ["name"]))
add("widgets-upload-missing-content", _upload([{"name": "a.png"}]), Raises(VE, ["content"]))
add("widgets-upload-str", _upload("abc"), Raises(VE, ["'abc'"]))
add("widgets-upload-none", _upload(None), Raises(VE, ["None"]))
add("widgets-upload-content-str", _upload([{"name": "a.png", "content": "abc"}]),
    Raises(VE, ["content", "str"]))
add("widgets-upload-folder-none", lambda c: widgets.PhotoUpload(None), Raises(VE, ["None"]))
add("widgets-upload-folder-is-file",
    lambda c: widgets.PhotoUpload(file_of(c, "f", b"x")).save([{"name": "a.png",
                                                                 "content": b"x"}]),
    Raises(VE, ["f"]))
add("widgets-upload-memoryview-ok",
    _upload([{"name": "a.png", "content": memoryview(png_bytes())}]),
    Works(lambda r, c: same(r[0].read_bytes() == png_bytes(), True)))
add("widgets-upload-path-name-ok", _upload([{"name": "../../a.png", "content": b"x"}]),
    Works(lambda r, c: same(r[0] == c.tmp / "up" / "a.png", True)))


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module", autouse=True)
def _offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Tiny mode, and runs recorded offline under a temporary folder with no Comet key or
    configuration of the machine's (``offline_runs``, for the whole module)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HELPERS_TINY_MODELS", "1")
        mp.setenv("HELPERS_RUNS_DIR", str(root / "runs"))
        mp.setenv("COMET_CONFIG", str(root / "no-such.config"))
        mp.delenv("COMET_API_KEY", raising=False)
        mp.delenv("COMET_URL_OVERRIDE", raising=False)
        mp.setenv("HOME", str(root / "home"))
        yield root / "runs"
        for open_run in tracking.active():
            open_run.end()


_SHARED: dict[str, Any] = {}


@pytest.fixture
def run() -> Any:
    """One offline run shared by the rows (started again when a row ended it)."""
    current = _SHARED.get("run")
    if current is None or current.ended:
        current = _SHARED["run"] = tracking.start("bad-inputs", online=False)
    return current


@pytest.fixture(scope="module")
def maker() -> Any:
    return generate.Generator.from_pretrained("tiny", device="cpu")


@pytest.fixture
def sd_pipe() -> Any:
    """A private tiny text-to-image pipeline (a LoRA loaded into it changes no other)."""
    pipe = models.load("tiny-sd", device="cpu", cached=False).model
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (random) LoRA for the tiny UNet, saved as dreambooth.train saves one."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = models.load("tiny-sd", device="cpu", cached=False).model.unet
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    folder = tmp_path_factory.mktemp("lora")
    StableDiffusionPipeline.save_lora_weights(
        str(folder), unet_lora_layers=convert_state_dict_to_diffusers(
            get_peft_model_state_dict(unet)), safe_serialization=True)
    return folder


@pytest.fixture(autouse=True)
def _no_huge_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A picture above ``MAX_PIXELS`` or a morphology kernel wider than 4097 pixels is
    heavy work (and could take the machine's memory)."""
    import cv2

    def check(size: Any) -> None:
        try:
            w, h = (int(v) for v in size)
        except (TypeError, ValueError, OverflowError):
            return
        if w * h > MAX_PIXELS:
            raise HeavyWork(f"a {w}x{h} picture was made instead of refusing the input first")

    real_new, real_resize = Image.new, Image.Image.resize
    real_kernel = cv2.getStructuringElement

    def new(mode: str, size: Any, *args: Any, **kwargs: Any) -> Image.Image:
        check(size)
        return real_new(mode, size, *args, **kwargs)

    def resize(self: Image.Image, size: Any, *args: Any, **kwargs: Any) -> Image.Image:
        check(size)
        return real_resize(self, size, *args, **kwargs)

    def kernel(shape: int, ksize: Any, *args: Any, **kwargs: Any) -> Any:
        if max(ksize) > 4097:
            raise HeavyWork(f"a {ksize} morphology kernel was made instead of refusing the "
                            "input first")
        return real_kernel(shape, ksize, *args, **kwargs)

    monkeypatch.setattr(Image, "new", new)
    monkeypatch.setattr(Image.Image, "resize", resize)
    monkeypatch.setattr(cv2, "getStructuringElement", kernel)


# ---------------------------------------------------------------- the test

def _alternatives(word: str | tuple[str, ...]) -> tuple[str, ...]:
    return (word,) if isinstance(word, str) else word


def _missing(message: str, words: Words) -> list[str | tuple[str, ...]]:
    text = message.lower()
    return [w for w in words if not any(alt.lower() in text for alt in _alternatives(w))]


def _show(err: BaseException | None) -> str:
    if err is None:
        return "no error"
    text = " ".join(str(err).split())
    return f"{type(err).__module__}.{type(err).__name__}: {text[:100]}"


def _expected(outcome: Raises) -> str:
    kinds = outcome.exc if isinstance(outcome.exc, tuple) else (outcome.exc,)
    words = ", ".join("|".join(_alternatives(w)) for w in outcome.words)
    return f"{'/'.join(k.__name__ for k in kinds)} naming [{words}]"


def _clean_type(err: BaseException, outcome: Raises) -> bool:
    kinds = outcome.exc if isinstance(outcome.exc, tuple) else (outcome.exc,)
    if ValueError in kinds and TypeError not in kinds:
        kinds = (*kinds, TypeError)  # a value of the wrong type: Python's own convention
    if not isinstance(err, kinds):
        return False
    if isinstance(err, RAW) and not any(issubclass(k, RAW) for k in kinds):
        return False
    module = type(err).__module__
    return module == "builtins" or module == "helpers" or module.startswith("helpers.")


def _timeout(signum: int, frame: Any) -> None:
    raise RowTimeout(f"the row ran for more than {ROW_SECONDS} s")


def _run_row(row: Row, c: Ctx) -> tuple[Any, BaseException | None, list[str]]:
    result, error = None, None
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(ROW_SECONDS)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = row.call(c)
            except Exception as err:  # noqa: BLE001  (every outcome is judged below)
                error = err
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return result, error, [str(w.message) for w in caught]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row(row: Row, request: pytest.FixtureRequest, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    c = Ctx(tmp_path, monkeypatch)
    for name in row.needs:  # before the alarm: building a tiny model is not the row's time
        setattr(c, name, request.getfixturevalue(name))
    result, err, caught = _run_row(row, c)
    outcome = row.outcome
    if isinstance(outcome, Raises):
        want = _expected(outcome)
        if err is None:
            pytest.fail(f"expected {want}; ACTUAL: no error (returned {result!r:.80})",
                        pytrace=False)
        if not _clean_type(err, outcome):
            pytest.fail(f"expected {want}; ACTUAL: {_show(err)}", pytrace=False)
        missing = _missing(str(err), outcome.words)
        if missing:
            pytest.fail(f"expected {want}; ACTUAL: message lacks {missing}: {_show(err)}",
                        pytrace=False)
        if outcome.after is not None:
            try:
                outcome.after(c)
            except AssertionError as problem:
                pytest.fail(f"raised as expected, but {problem}; ACTUAL: {_show(err)}",
                            pytrace=False)
        return
    if err is not None:
        pytest.fail(f"expected it to work; ACTUAL: {_show(err)}", pytrace=False)
    if isinstance(outcome, Warns) and not any(not _missing(t, outcome.words) for t in caught):
        shown = "; ".join(t[:80] for t in caught) or "none"
        pytest.fail(f"expected a warning naming {list(outcome.words)}; ACTUAL: no such "
                    f"warning (warnings: {shown})", pytrace=False)
    check = outcome.check
    if check is not None:
        try:
            check(result, c)
        except AssertionError as problem:
            pytest.fail(f"worked, but wrong result; ACTUAL: {problem}", pytrace=False)
        except Exception as problem:  # noqa: BLE001
            pytest.fail(f"worked, but checking the result failed; ACTUAL: {_show(problem)}",
                        pytrace=False)


def test_the_table_is_large_and_its_ids_unique() -> None:
    ids = [r.id for r in ROWS]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    assert len(ROWS) >= 220
