"""helpers.tiny: every family's tiny model builds offline, loads through the real loader in
helpers.models, and runs a forward pass with the real output shapes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import models, tiny

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache for the whole module, so each family is built once; models that other
    tests loaded are forgotten, so every load here goes through the real loader."""
    models.clear_cache()
    yield tmp_path_factory.mktemp("helpers-cache")
    models.clear_cache()


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, cache_root: Path) -> Path:
    import torch

    torch.set_num_threads(1)
    monkeypatch.setenv(models.CACHE_ENV, str(cache_root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HELPERS_TINY_MODELS", raising=False)
    return cache_root


def _photo(width: int = 64, height: int = 48) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _load(family: str) -> models.Loaded:
    loaded = models.load(f"tiny-{family}", device="cpu")
    assert loaded.spec.is_tiny and loaded.spec.family == family
    assert Path(loaded.path) == models.cache_dir() / "tiny" / f"{family}-v{tiny.VERSION}"
    return loaded


# ---------------------------------------------------------------- one check per family

def check_clip(loaded: models.Loaded) -> None:
    import torch

    model, processor = loaded.model, loaded.processor
    with torch.no_grad():
        image = model.get_image_features(**processor(images=_photo(), return_tensors="pt"))
        text = model.get_text_features(**processor(text=["a photo of a cat", "a dog"],
                                                   padding=True, return_tensors="pt"))
    image = getattr(image, "pooler_output", image)
    text = getattr(text, "pooler_output", text)
    dim = model.config.projection_dim
    assert tuple(image.shape) == (1, dim) and tuple(text.shape) == (2, dim)


def check_align(loaded: models.Loaded) -> None:
    import torch

    model, processor = loaded.model, loaded.processor
    with torch.no_grad():  # CLIP's calls; ALIGN's processor cuts texts at 64 tokens
        image = model.get_image_features(**processor(images=_photo(), return_tensors="pt"))
        text = model.get_text_features(**processor(text=["a photo of a cat", "a dog"],
                                                   padding=True, truncation=True,
                                                   return_tensors="pt"))
    dim = model.config.projection_dim
    assert tuple(image.pooler_output.shape) == (1, dim)
    assert tuple(text.pooler_output.shape) == (2, dim)
    assert type(processor.tokenizer).__name__ == "BertTokenizer"
    assert loaded.model.temperature.item() > 0


def _check_owl(loaded: models.Loaded) -> None:
    import torch

    model, processor = loaded.model, loaded.processor
    photo = _photo()
    inputs = processor(text=[["a cat"]], images=photo, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    vision = model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    assert tuple(outputs.logits.shape) == (1, patches, 1)
    assert tuple(outputs.pred_boxes.shape) == (1, patches, 4)
    size = [(photo.height, photo.width)]
    [result] = processor.post_process_grounded_object_detection(
        outputs, threshold=0.0, target_sizes=size, text_labels=[["a cat"]])
    # Random weights can give logits so low that a score rounds to 0 and is dropped.
    assert result["boxes"].shape[1:] == (4,) and 0 < len(result["boxes"]) <= patches
    assert len(result["scores"]) == len(result["boxes"]) == len(result["text_labels"])
    [plain] = processor.image_processor.post_process_object_detection(
        outputs, threshold=0.0, target_sizes=size)
    assert len(plain["scores"]) == len(plain["boxes"]) <= patches


def check_grounding_dino(loaded: models.Loaded) -> None:
    import torch

    model, processor = loaded.model, loaded.processor
    photo = _photo()
    inputs = processor(images=photo, text="a cat.", return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    assert outputs.logits.shape[:2] == (1, model.config.num_queries)
    [result] = processor.post_process_grounded_object_detection(
        outputs, input_ids=inputs["input_ids"], threshold=0.0, text_threshold=0.0,
        target_sizes=[(photo.height, photo.width)])
    assert tuple(result["boxes"].shape) == (model.config.num_queries, 4)
    assert len(result["text_labels"]) == model.config.num_queries


def check_sam(loaded: models.Loaded) -> None:
    from segment_anything import SamPredictor

    predictor = SamPredictor(loaded.model)
    image = np.asarray(_photo(64, 48))
    predictor.set_image(image)
    masks, scores, low_res = predictor.predict(point_coords=np.array([[10, 20]]),
                                               point_labels=np.array([1]),
                                               multimask_output=True)
    assert masks.shape == (3, 48, 64) and masks.dtype == bool
    assert scores.shape == (3,)


def check_sd_inpaint(loaded: models.Loaded) -> None:
    import torch

    pipe = loaded.model
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))

    def run() -> Any:
        return pipe(prompt="a cat", image=_photo(64, 64), mask_image=mask,
                    num_inference_steps=2, height=64, width=64,
                    generator=torch.Generator().manual_seed(0), output_type="np").images

    first, second = run(), run()
    assert first.shape == (1, 64, 64, 3)
    np.testing.assert_array_equal(first, second)


def check_sd(loaded: models.Loaded) -> None:
    import torch

    images = loaded.model(prompt="an astronaut riding a dragon", height=64, width=64,
                          num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                          output_type="np").images
    assert images.shape == (1, 64, 64, 3)


def check_clipseg(loaded: models.Loaded) -> None:
    import torch

    model, processor = loaded.model, loaded.processor
    inputs = processor(text=["a cat", "a dog"], images=[_photo()] * 2, padding=True,
                       return_tensors="pt")
    side = processor.image_processor.size["height"]
    assert tuple(inputs["pixel_values"].shape) == (2, 3, side, side)  # squashed to a square
    with torch.no_grad():
        logits = model(**inputs).logits
    assert tuple(logits.shape) == (2, side, side)
    assert 0.5 < logits.abs().max() < 30  # probabilities neither all 0.5 nor all 0 or 1


def check_sam3(loaded: models.Loaded) -> None:
    import torch

    model, processor = loaded.model, loaded.processor
    photo = _photo()
    inputs = processor(images=photo, text="a cat", input_boxes=[[[8.0, 8.0, 40.0, 30.0]]],
                       return_tensors="pt")
    inputs.pop("original_sizes")
    with torch.no_grad():
        outputs = model(**inputs)
    queries = model.config.detr_decoder_config.num_queries
    assert tuple(outputs.pred_boxes.shape) == (1, queries, 4)
    [found] = processor.post_process_instance_segmentation(
        outputs, threshold=0.0, target_sizes=[(photo.height, photo.width)])
    assert tuple(found["masks"].shape) == (queries, photo.height, photo.width)


def check_sam2_video(loaded: models.Loaded) -> None:
    import torch

    model, processor = loaded.model, loaded.processor
    frames = [_photo(), _photo().rotate(10)]
    session = processor.init_video_session(video=frames, inference_device="cpu")
    processor.add_inputs_to_inference_session(inference_session=session, frame_idx=0,
                                              obj_ids=1, input_points=[[[[20.0, 20.0]]]],
                                              input_labels=[[[1]]])
    with torch.no_grad():
        outs = list(model.propagate_in_video_iterator(session, start_frame_idx=0))
    side = processor.target_size
    assert [o.frame_idx for o in outs] == [0, 1] and outs[1].object_ids == [1]
    assert tuple(outs[1].pred_masks.shape) == (1, 1, side // 4, side // 4)
    assert outs[1].object_score_logits.item() > 0  # the tiny model "sees" the object


def check_whisper(loaded: models.Loaded) -> None:
    import numpy as np
    import torch

    model, processor = loaded.model, loaded.processor
    assert len(processor.tokenizer) >= 100  # not the offline stub
    sound = (0.3 * np.sin(np.arange(16_000) / 16_000 * 2 * np.pi * 440)).astype(np.float32)
    inputs = processor(sound, sampling_rate=16_000, return_tensors="pt")
    assert tuple(inputs["input_features"].shape) == (1, 80, 3000)  # 30 s of 80 mel bins
    with torch.no_grad():
        ids = model.generate(**inputs, language="en", task="transcribe")
    text = processor.batch_decode(ids, skip_special_tokens=True)[0]
    assert isinstance(text, str) and text.strip() and "\ufffd" not in text


CHECKS = {
    "whisper": check_whisper,
    "sam2-video": check_sam2_video,
    "sam3": check_sam3,
    "clipseg": check_clipseg,
    "sam": check_sam,
    "clip": check_clip,
    "align": check_align,
    "owlvit": _check_owl,
    "owlv2": _check_owl,
    "grounding-dino": check_grounding_dino,
    "sd-inpaint": check_sd_inpaint,
    "sd": check_sd,
}


def test_every_family_has_a_check() -> None:
    assert set(CHECKS) == set(models.FAMILIES)


@pytest.mark.parametrize("family", models.FAMILIES)
def test_tiny_model_loads_and_runs(family: str) -> None:
    CHECKS[family](_load(family))


def test_tiny_mode_swaps_a_real_name_for_the_tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    loaded = models.load("clip-b32", device="cpu")
    assert loaded.spec.name == "tiny-clip"
    assert Path(loaded.path) == tiny.folder_for("clip")


@pytest.mark.parametrize("family", models.FAMILIES)
def test_tiny_folder_is_small(family: str) -> None:
    folder = tiny.ensure(family)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 10_000_000


# ---------------------------------------------------------------- the cache folder

def test_ensure_twice_returns_the_folder_without_rebuilding(cache_root: Path) -> None:
    first = tiny.ensure("clip")
    marker = first / tiny.MARKER
    stamp = marker.stat().st_mtime_ns
    assert tiny.ensure("clip") == first
    assert marker.stat().st_mtime_ns == stamp
    assert [p.name for p in first.parent.iterdir() if p.name.startswith(".")] == []


def test_ensure_uses_the_folder_of_a_process_that_won_the_race(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    final = tiny.folder_for("sam")

    def racing_build(family: str, folder: Path) -> Path:
        (folder / "ours.txt").write_text("ours")
        final.mkdir(parents=True)  # the other process finishes while we build
        (final / "theirs.txt").write_text("theirs")
        (final / tiny.MARKER).write_text("done")
        return folder

    monkeypatch.setattr(tiny, "build", racing_build)
    assert tiny.ensure("sam") == final
    assert (final / "theirs.txt").exists() and not (final / "ours.txt").exists()
    assert sorted(p.name for p in tmp_path.joinpath("tiny").iterdir()) == [final.name]


def test_a_failed_build_leaves_nothing_behind(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))

    def broken_build(family: str, folder: Path) -> Path:
        (folder / "half.bin").write_bytes(b"x")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(tiny, "build", broken_build)
    with pytest.raises(RuntimeError, match="interrupted"):
        tiny.ensure("sam")
    assert list(tmp_path.joinpath("tiny").iterdir()) == []


def test_a_folder_without_the_marker_is_rebuilt(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path))
    folder = tiny.folder_for("sam")
    folder.mkdir(parents=True)
    (folder / "sam.pth").write_bytes(b"truncated")
    assert tiny.ensure("sam") == folder
    assert (folder / tiny.MARKER).exists() and (folder / tiny.SAM_CONFIG).exists()
    assert (folder / "sam.pth").stat().st_size > 1000


@pytest.mark.parametrize("bad", ["clip-b32", "", "SAM", "stable-diffusion"])
def test_unknown_family_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=repr(bad)) as info:
        tiny.ensure(bad)
    assert all(family in str(info.value) for family in models.FAMILIES)
    with pytest.raises(ValueError, match=repr(bad)):
        tiny.build(bad, Path("unused"))


def test_sam_build_is_deterministic_and_leaves_the_global_seed_alone(tmp_path: Path) -> None:
    import torch

    states = []
    for name in ("one", "two"):
        torch.manual_seed(123)
        tiny.build("sam", tmp_path / name)
        after_build = torch.rand(3)
        states.append(torch.load(tmp_path / name / "sam.pth", weights_only=True))
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    torch.manual_seed(123)
    assert torch.equal(after_build, torch.rand(3))


# ---------------------------------------------------------------- tokenizers

def test_clip_tokenizer_marks_both_ends_and_ends_with_the_highest_id() -> None:
    tokenizer = tiny.clip_tokenizer()
    ids = tokenizer("a photo of a cat")["input_ids"]
    assert len(ids) > 2
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.eos_token_id == max(tokenizer.get_vocab().values())
    assert tokenizer.convert_tokens_to_ids("cat</w>") in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == "a photo of a cat"
    assert len(tokenizer) >= 100


def test_clip_tokenizer_keeps_course_words_whole_and_encodes_any_text() -> None:
    tokenizer = tiny.clip_tokenizer()
    split = [w for w in tiny.WORDS if len(tokenizer(w, add_special_tokens=False)["input_ids"]) != 1]
    assert split == []
    ids = tokenizer("Zebra über 42!")["input_ids"]
    assert tokenizer.unk_token_id not in ids[1:-1]


def test_bert_tokenizer_has_the_ids_grounding_dino_hard_codes(tmp_path: Path) -> None:
    tokenizer = tiny.bert_tokenizer(tmp_path)
    expected = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103,
                ".": 1012, "?": 1029}
    assert {t: tokenizer.convert_tokens_to_ids(t) for t in expected} == expected
    ids = tokenizer("a cat. a dog?")["input_ids"]
    assert ids[0] == 101 and ids[-1] == 102 and 1012 in ids and 1029 in ids
    assert tokenizer.unk_token_id not in ids
    lines = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines[1012] == "." and lines[1029] == "?" and len(lines) == len(tokenizer)


def test_importing_tiny_does_not_import_torch() -> None:
    code = ("import sys, helpers.tiny; "
            "print(sorted({'torch', 'transformers', 'diffusers'} & set(sys.modules)))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "[]"
