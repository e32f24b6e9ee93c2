"""Bad files and bad settings get one clear error that names them, and change nothing.

A LoRA, a SAM embedding and a picker's prompts are files a learner copies around, so each
may arrive empty, cut off, damaged or of another kind. Each is refused before any heavy
work with a message that names the file and says what to do, and whatever the model or
widget held before stays as it was. Settings that are NumPy scalars are taken as numbers.
"""

from __future__ import annotations

import io
import pickle
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import checks, clip, detect, images, lora, models, sam, widgets
from helpers import tiny as tiny_models
from helpers.widgets import PromptState


def photo(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), np.uint8))


# ---------------------------------------------------------------- LoRA files

@pytest.fixture(scope="module")
def good_lora(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA folder for the tiny SD UNet, as diffusers saves one."""
    folder = tmp_path_factory.mktemp("lora") / "good"
    folder.mkdir()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        tiny_models._build_lcm_lora(folder)
    return folder


@pytest.fixture(scope="module")
def pipe(good_lora: Path) -> Any:
    """A private tiny SD pipeline carrying the good LoRA as 'dreambooth' at weight 0.5."""
    pipeline = models.load("tiny-sd", device="cpu", cached=False).model
    lora.load(pipeline, good_lora, weight=0.5)
    return pipeline


def draw(pipeline: Any) -> np.ndarray:
    return np.asarray(pipeline("a photo of sks cat", num_inference_steps=2, height=64, width=64,
                               generator=torch.Generator().manual_seed(0),
                               output_type="np").images[0])


def state(pipeline: Any) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """The adapters with their weights, and every UNet tensor (the LoRA's included)."""
    return lora.weights(pipeline), {k: v.clone() for k, v in pipeline.unet.state_dict().items()}


def assert_same_state(before: tuple[dict[str, float], dict[str, torch.Tensor]],
                      after: tuple[dict[str, float], dict[str, torch.Tensor]]) -> None:
    assert after[0] == before[0]
    assert after[1].keys() == before[1].keys()
    assert all(torch.equal(after[1][k], before[1][k]) for k in before[1])


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / lora.LORA_FILE))


def _save(tensors: dict[str, torch.Tensor]) -> Callable[[Path, Path], None]:
    def write(good: Path, target: Path) -> None:
        from safetensors.torch import save_file

        save_file(tensors, str(target))
    return write


def _edit(change: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]
          ) -> Callable[[Path, Path], None]:
    def write(good: Path, target: Path) -> None:
        from safetensors.torch import save_file

        save_file(change(_tensors(good)), str(target))
    return write


def _wider(tensors: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """A LoRA for a wider model: the ``part`` layers read 96 features, not the tiny 64."""
    return {k: torch.zeros(v.shape[0], 96) if part in k and "lora_A" in k else v
            for k, v in tensors.items()}


LORA_DAMAGES: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "empty": (lambda good, f: f.write_bytes(b""), r"is empty \(0 bytes\)"),
    "garbage": (lambda good, f: f.write_bytes(b"not a LoRA at all " * 20),
                "is damaged, cut off or not a safetensors file"),
    "truncated": (lambda good, f: f.write_bytes((good / lora.LORA_FILE).read_bytes()[:3000]),
                  "is damaged, cut off or not a safetensors file"),
    "cut in the tensors": (
        lambda good, f: f.write_bytes((good / lora.LORA_FILE).read_bytes()[:-100]),
        "is damaged, cut off or not a safetensors file"),
    "no tensors": (_save({}), r"holds no LoRA weights \(no tensors at all\)"),
    "not a LoRA": (_save({"vae.encoder.weight": torch.zeros(3)}),
                   r"holds no LoRA weights \(tensors such as 'vae.encoder.weight'\)"),
    "torch pickle": (lambda good, f: torch.save(_tensors(good), f),
                     r"is a PyTorch pickle \(torch.save\), not safetensors"),
    "NaN": (_edit(lambda t: {k: v * float("nan") if i == 0 else v
                             for i, (k, v) in enumerate(t.items())}),
            "holds NaN or infinite values"),
    "another base model": (_edit(lambda t: _wider(t, "attn1")),
                           r"does not fit this pipeline's model: .*the LoRA maps 96 -> 64 "
                           "features, the layer 64 -> 64"),
    "other text embeddings": (_edit(lambda t: _wider(t, "attn2.to_k")),
                              "reads text embeddings of size 96, but this pipeline's UNet "
                              "reads 32"),
    "ranks that differ": (_edit(lambda t: {k: torch.zeros(v.shape[0], 8) if "lora_B" in k
                                           else v for k, v in t.items()}),
                          "lora_A has rank 4, lora_B rank 8"),
    "a layer this model lacks": (
        _edit(lambda t: {k.replace("down_blocks.1.", "down_blocks.7."): v
                         for k, v in t.items()}),
        r"unet\.down_blocks\.7\..* \(no such layer here\)"),
    "half a pair": (_edit(lambda t: {k: v for k, v in t.items() if "lora_B" not in k}),
                    "only half of its low-rank pair"),
}


@pytest.mark.parametrize("damage", list(LORA_DAMAGES))
def test_a_bad_lora_file_is_named_and_changes_nothing(damage: str, pipe: Any, good_lora: Path,
                                                      tmp_path: Path) -> None:
    make, message = LORA_DAMAGES[damage]
    folder = tmp_path / "my-lora"
    folder.mkdir()
    make(good_lora, folder / lora.LORA_FILE)
    before = state(pipe)
    with pytest.raises(ValueError, match=message) as caught:
        lora.load(pipe, folder)  # under the name of the LoRA it holds: it must stay
    said = str(caught.value)
    assert str(folder) in said  # the file (or its folder) is named
    assert "train it again" in said or "pipeline of the same base model" in said
    assert_same_state(before, state(pipe))


def test_a_failed_lora_load_leaves_the_pictures_as_they_were(pipe: Any, good_lora: Path,
                                                             tmp_path: Path) -> None:
    picture = draw(pipe)
    folder = tmp_path / "cut"
    folder.mkdir()
    LORA_DAMAGES["another base model"][0](good_lora, folder / lora.LORA_FILE)
    for name in ("dreambooth", "second"):
        with pytest.raises(ValueError, match="does not fit"):
            lora.load(pipe, folder, adapter_name=name)
    assert lora.weights(pipe) == {"dreambooth": 0.5}
    assert np.array_equal(draw(pipe), picture)


@pytest.mark.parametrize("adapter_name", ["dreambooth", "second"])
def test_a_load_that_fails_inside_diffusers_is_taken_back(
        adapter_name: str, pipe: Any, good_lora: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file passes every check but diffusers fails after adding part of it: the part
    is removed again and the LoRA held before (same name or not) still acts."""
    picture, before = draw(pipe), state(pipe)
    real = pipe.load_lora_weights

    def half_then_fail(*args: Any, **kwargs: Any) -> None:
        real(*args, **kwargs)
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(pipe, "load_lora_weights", half_then_fail)
    with pytest.raises(ValueError, match=rf"LoRA in {re.escape(repr(str(good_lora)))} could "
                                         r"not be loaded .*the disk went away.*as it was"):
        lora.load(pipe, good_lora, adapter_name=adapter_name)
    monkeypatch.undo()
    assert lora.weights(pipe) == before[0]
    assert np.array_equal(draw(pipe), picture)


def test_a_folder_without_the_lora_file_is_named(tmp_path: Path, pipe: Any,
                                                 good_lora: Path) -> None:
    before = lora.weights(pipe)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no LoRA in .*empty.*pytorch_lora_weights"
                                                r".*\(the folder lacks it\)"):
        lora.load(pipe, tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"no LoRA in .*nowhere.*path does not exist"):
        lora.load(pipe, tmp_path / "nowhere")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match=r"weights\.bin.*it is a file, not a folder"):
        lora.load(pipe, tmp_path / "weights.bin")
    assert lora.weights(pipe) == before


def test_loading_again_under_the_same_name_replaces_it_quietly(pipe: Any,
                                                                good_lora: Path) -> None:
    before, picture = state(pipe), draw(pipe)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no word from peft or diffusers about the swap
        lora.load(pipe, good_lora, weight=0.5)  # a cell run twice
    assert_same_state(before, state(pipe))
    assert np.array_equal(draw(pipe), picture)


def test_the_lora_file_itself_and_numpy_weights_load(pipe: Any, good_lora: Path) -> None:
    lora.load(pipe, good_lora / lora.LORA_FILE, weight=np.float32(0.25), adapter_name="numpy")
    try:
        assert lora.weights(pipe) == {"dreambooth": 0.5, "numpy": 0.25}
        lora.set_weight(pipe, np.float64(0.75), "numpy")
        assert lora.weights(pipe)["numpy"] == 0.75
        for bad, error in ((float("nan"), "weight nan must be a finite number"),
                           (True, "weight True must be a number")):
            with pytest.raises(ValueError, match=error):
                lora.set_weight(pipe, bad, "numpy")
            with pytest.raises(ValueError, match=error):
                lora.load(pipe, good_lora, weight=bad, adapter_name="third")
        assert lora.weights(pipe) == {"dreambooth": 0.5, "numpy": 0.75}
    finally:
        lora.unload(pipe, "numpy")
    assert lora.weights(pipe) == {"dreambooth": 0.5}


# ---------------------------------------------------------------- SAM embedding files

@pytest.fixture
def fresh_seg() -> sam.Segmenter:
    """The tiny SAM (loaded once per kernel) in a segmenter of its own, with an image set."""
    segmenter = sam.Segmenter(models.load("tiny-sam", device="cpu"))
    return segmenter.set_image(photo(60, 40, seed=5))


def _saved(seg: sam.Segmenter, folder: Path) -> dict[str, Any]:
    path = seg.set_image(photo(70, 50)).save_embedding(folder / "saved.pt")
    data: dict[str, Any] = torch.load(path, weights_only=True)
    return data


def _other_png() -> bytes:
    """A PNG of another photo of the same size as the one saved."""
    buffer = io.BytesIO()
    Image.new("RGB", (70, 50)).save(buffer, format="PNG")
    return buffer.getvalue()


EMBEDDING_DAMAGES: dict[str, tuple[Callable[[dict[str, Any], Path, Path], None], str]] = {
    "empty": (lambda d, good, f: f.write_bytes(b""), r"is empty \(0 bytes\)"),
    "garbage": (lambda d, good, f: f.write_bytes(b"\x00 not an embedding " * 30),
                "is damaged, cut off or not one save_embedding wrote"),
    "truncated": (lambda d, good, f: f.write_bytes(good.read_bytes()[:len(good.read_bytes())
                                                                      // 2]),
                  "is damaged, cut off or not one save_embedding wrote"),
    "a numpy pickle": (lambda d, good, f: f.write_bytes(pickle.dumps({"features": np.zeros(3)})),
                       "is damaged, cut off or not one save_embedding wrote"),
    "a tensor": (lambda d, good, f: torch.save(torch.zeros(3), f), "holds a Tensor, not an "
                                                                   "embedding"),
    "parts missing": (lambda d, good, f: torch.save({"model": d["model"]}, f),
                      "holds no features, original_size, input_size, image_png"),
    "sizes of text": (lambda d, good, f: torch.save({**d, "input_size": ["a", "b"]}, f),
                      "is damaged: its parts are not what save_embedding writes"),
    "NaN features": (lambda d, good, f: torch.save({**d, "features": d["features"] * np.nan},
                                                   f), "is damaged: its parts"),
    "another shape": (lambda d, good, f: torch.save({**d, "features": d["features"][:, :8]}, f),
                      r"its embedding has shape \(1, 8, 16, 16\), 'tiny-sam' makes "
                      r"\(1, 32, 16, 16\)"),
    "a broken photo": (lambda d, good, f: torch.save({**d, "image_png": b"not a png"}, f),
                       "its photo cannot be read"),
    "another photo": (lambda d, good, f: torch.save({**d, "image_png": _other_png()}, f),
                      "its photo does not match its embedding"),
}


@pytest.mark.parametrize("damage", list(EMBEDDING_DAMAGES))
def test_a_bad_embedding_file_is_named_and_changes_nothing(damage: str, seg: sam.Segmenter,
                                                           fresh_seg: sam.Segmenter,
                                                           tmp_path: Path) -> None:
    make, message = EMBEDDING_DAMAGES[damage]
    data = _saved(seg, tmp_path)
    path = tmp_path / "my-embedding.pt"
    make(data, tmp_path / "saved.pt", path)
    image, cached = fresh_seg.image, fresh_seg.cached_images
    assert image is not None
    before = fresh_seg.predict(points=[[30, 20]], labels=[1])
    with pytest.raises(ValueError, match=message) as caught:
        fresh_seg.load_embedding(path)
    assert str(path) in str(caught.value) and "save_embedding(path)" in str(caught.value)
    assert fresh_seg.image is image and fresh_seg.cached_images == cached
    after = fresh_seg.predict(points=[[30, 20]], labels=[1])
    assert np.array_equal(before.masks, after.masks)


def test_a_missing_embedding_file_is_named(fresh_seg: sam.Segmenter, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"embedding file .*nothing\.pt' does not "
                                                r"exist; make it again"):
        fresh_seg.load_embedding(tmp_path / "nothing.pt")


def test_segmenter_flags_and_counts_go_through_checks(fresh_seg: sam.Segmenter) -> None:
    with pytest.raises(checks.WrongType, match="multimask 'no' must be True or False"):
        fresh_seg.predict(points=[[30, 20]], labels=[1], multimask="no")  # type: ignore[arg-type]
    assert len(fresh_seg.predict(points=[[30, 20]], labels=[1], multimask=np.bool_(False))) == 1
    assert len(fresh_seg.predict(points=[[30, 20]], labels=[1], multimask=1)) == 3
    from helpers.detections import Detections

    dets = Detections([[5, 5, 40, 30]], [0.9], ["thing"])
    for bad, message in ((0, "batch_size 0 must be >= 1"),
                         (np.float32(2), r"batch_size .*2\.0.* must be an integer")):
        with pytest.raises(ValueError, match=message):
            fresh_seg.segment(dets, batch_size=bad)  # type: ignore[arg-type]
    assert fresh_seg.segment(dets, batch_size=np.int64(1)).masks is not None
    with pytest.raises(ValueError, match="cache_size 0 must be >= 1"):
        sam.Segmenter(models.load("tiny-sam", device="cpu"), cache_size=0)
    assert sam.Segmenter(models.load("tiny-sam", device="cpu"),
                         cache_size=np.int64(2)).cache_size == 2


# ---------------------------------------------------------------- the picker's prompts files

PROMPT_DAMAGES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", r"are not JSON \(Expecting value"),
    "garbage": (b"{points: [1, 2", "are not JSON"),
    "not UTF-8": (b"\xff\xfe\x00\x81", "are not text"),
    "a list": (b"[1, 2, 3]", "are a JSON list, not saved prompts"),
    "keys missing": (b'{"size": [600, 400]}', "are an object without points, labels, box"),
    "a size of text": (b'{"size": ["600", 400], "points": [], "labels": [], "box": null}',
                       r"size \['600', 400\] must be \[width, height\] in whole pixels"),
    "points of text": (b'{"size": [600, 400], "points": [["1", "2"]], "labels": [1], '
                       b'"box": null}', r"points \[\['1', '2'\]\] must be a list of \[x, y\]"),
    "labels of text": (b'{"size": [600, 400], "points": [[1, 2]], "labels": ["yes"], '
                       b'"box": null}', "labels .* must be a list of 1 .include. and 0"),
    "labels true": (b'{"size": [600, 400], "points": [[1, 2]], "labels": [true], '
                    b'"box": null}', "labels .* must be a list of 1 .include. and 0"),
    "a box of three": (b'{"size": [600, 400], "points": [], "labels": [], "box": [1, 2, 3]}',
                       r"box \[1, 2, 3\] must be \[x1, y1, x2, y2\] pixels"),
    "a point outside": (b'{"size": [600, 400], "points": [[900, 2]], "labels": [1], '
                        b'"box": null}', r"point \(900, 2\) is outside the 600x400 image"),
    "another image": (b'{"size": [451, 300], "points": [], "labels": [], "box": null}',
                      "were saved for a 451x300 image, not 600x400"),
}


@pytest.fixture(scope="module")
def picker(seg: sam.Segmenter) -> widgets.PointPicker:
    return widgets.PointPicker(seg, images.sample("coffee"), points=[[290, 150]], labels=[1],
                               box=[170, 15, 410, 310])


@pytest.mark.parametrize("damage", list(PROMPT_DAMAGES))
def test_a_bad_prompts_file_is_named_and_the_prompts_kept(damage: str,
                                                          picker: widgets.PointPicker,
                                                          tmp_path: Path) -> None:
    content, message = PROMPT_DAMAGES[damage]
    path = tmp_path / "my-prompts.json"
    path.write_bytes(content)
    kept = (picker.points, picker.labels, picker.box, picker.state.prompt)
    assert picker.result is not None
    masks = picker.result.masks
    with pytest.raises(ValueError, match=message) as caught:
        picker.load(path)
    assert f"the prompts in {str(path)!r}" in str(caught.value)
    assert (picker.points, picker.labels, picker.box, picker.state.prompt) == kept
    assert np.array_equal(picker.result.masks, masks)


def test_prompts_files_that_are_missing_or_text_that_is_not_json(
        picker: widgets.PointPicker, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"no prompts file .*gone\.json"):
        picker.load(tmp_path / "gone.json")
    with pytest.raises(ValueError, match=r"^these prompts are not JSON"):
        PromptState.from_json("{oops")
    with pytest.raises(ValueError, match=r"^these prompts are a JSON str"):
        PromptState.from_json('"a string"')
    path = picker.save(tmp_path / "good.json")
    assert PromptState.load(path, (600, 400)).prompt == picker.state.prompt


# ---------------------------------------------------------------- detector settings and texts

def test_detector_settings_take_numpy_scalars(detectors: dict[str, detect.Detector]) -> None:
    det, img = detectors["owlvit"], images.sample("coffee")
    plain = det.detect(img, ["a cup", "a cat"], threshold=0.0, nms_iou=0.5, top_k=3)
    numpy = det.detect(img, ["a cup", "a cat"], threshold=np.float32(0.0),
                       nms_iou=np.float32(0.5), top_k=np.int64(3))
    assert len(plain) == 3 and plain == numpy
    nan = np.float32("nan")
    for kwargs, message in (({"threshold": nan}, "threshold .*nan.* must be a finite"),
                            ({"threshold": True}, "threshold True must be a number"),
                            ({"nms_iou": np.inf}, "nms_iou inf must be a finite"),
                            ({"top_k": 2.0}, "top_k 2.0 must be an integer"),
                            ({"cross_label_nms": "yes"}, "cross_label_nms 'yes' must be True")):
        with pytest.raises(ValueError, match=message):
            det.detect(img, "a cup", **kwargs)


@pytest.mark.parametrize("family", ["owlvit", "owlv2"])
def test_a_long_owl_query_is_said_to_be_cut(family: str,
                                            detectors: dict[str, detect.Detector]) -> None:
    det, img = detectors[family], images.sample("coffee")
    long = "a photo of a " + "very " * 30 + "fluffy cat"
    with pytest.warns(UserWarning, match=r"the query 'a photo of a very very very very very\.\.\.' "
                                         r"is \d+ tokens long and the text encoder reads 16: "
                                         "the end is cut off") as said:
        det.detect(img, ["a cup", long])
    assert len(said) == 1 and said[0].filename == __file__  # the learner's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det.detect(img, ["a cup", "a cat"])


def test_too_many_grounding_dino_queries_are_refused_before_the_model(
        detectors: dict[str, detect.Detector], monkeypatch: pytest.MonkeyPatch) -> None:
    det, img = detectors["grounding-dino"], images.sample("coffee")
    queries = [f"thing number {i}" for i in range(100)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(det, "_forward", lambda inputs: pytest.fail("the model ran"))
        with pytest.raises(ValueError, match=r"the 100 queries make \d+ tokens and Grounding "
                                             r"DINO's text encoder reads 256: the first \d+ "
                                             "fit") as caught:
            det.detect(img, queries)
    fit = int(re.search(r"the first (\d+) fit", str(caught.value)).group(1))  # type: ignore[union-attr]
    assert 0 < fit < 100
    det.detect(img, queries[:fit])  # as many as it said fit do
    with pytest.raises(ValueError, match=rf"the {fit + 1} queries make .* the first {fit} fit"):
        det.detect(img, queries[:fit + 1])


# ---------------------------------------------------------------- CLIP texts

@pytest.mark.parametrize(
    ("texts", "error", "message"),
    [
        (None, checks.WrongType, "texts None must be a text"),
        ([], ValueError, "give at least one text"),
        (["a cat", 3], checks.WrongType, r"texts\[1\] 3 is a int, not a text"),
        ([None], checks.WrongType, r"texts\[0\] None is a NoneType, not a text"),
        (7, checks.WrongType, r"texts\[0\] 7 is a int"),
        (["a cat", ""], ValueError, "must not be empty strings"),
    ],
)
def test_embed_texts_refuses_what_is_not_text(embedder: clip.Embedder, texts: Any, error: type,
                                              message: str) -> None:
    with pytest.raises(error, match=message):
        embedder.embed_texts(texts)


def test_zero_shot_labels_must_be_texts(embedder: clip.Embedder) -> None:
    with pytest.raises(ValueError, match="labels None must be a text"):
        embedder.zero_shot(images.sample("coffee"), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"labels\[1\] 2 is a int"):
        embedder.zero_shot(images.sample("coffee"), ["cat", 2])  # type: ignore[list-item]


def test_a_long_text_is_said_to_be_cut(embedder: clip.Embedder) -> None:
    long = "a photo of a " + "very " * 90 + "fluffy cat"
    with pytest.warns(UserWarning, match=r"the text 'a photo of a very very very very very\.\.\.' "
                                         r"is \d+ tokens long and the text encoder reads 77: "
                                         "the end is cut off"):
        cut = embedder.embed_texts(["a cat", long])
    assert cut.shape[0] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.embed_texts(np.array(["a cat", "a dog"]))  # a NumPy array of texts is a list



def test_a_safetensors_file_whose_length_byte_looks_like_a_pickle_is_read(
        tmp_path: Path) -> None:
    import json as _json
    import struct

    header = _json.dumps({"unet.a.lora_A.weight": {"dtype": "F32", "shape": [1],
                                                   "data_offsets": [0, 4]}}).encode()
    header += b" " * (128 - len(header))  # a header of 128 bytes: its length byte is 0x80
    path = tmp_path / "pytorch_lora_weights.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<f", 0.5))
    assert path.read_bytes()[:1] == b"\x80"
    assert lora.check_file(path) == {"unet.a.lora_A.weight": (1,)}
