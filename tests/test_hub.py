"""The real loading path, offline: tiny models placed under the registry's real hub ids.

Tiny mode is off here. Each hub name of the registry loads through ``models.load`` and the
model nouns exactly as a learner's real weights would, from a Hugging Face cache laid out by
hand (``tests/hub.py``), and records the commit its files came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import clip, detect, generate, images, inpaint, models, registry, tiny, tracking

from .hub import HubStub, child_env, commit_for, lay_out_cache

HUB_NAMES = [name for name, spec in registry.REGISTRY.items() if spec.is_hub]
PARTS = {registry.LCM_LORA: "lcm-lora", registry.TAESD: "taesd"}
"""Hub ids of the parts some names add (the LCM-LoRA, TAESD) -> their tiny build."""


@pytest.fixture(scope="module")
def commits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """registry name -> the commit its tiny stand-in was laid out at, in the HF cache."""
    import shutil

    from huggingface_hub import constants

    hub_cache = Path(constants.HF_HUB_CACHE)
    laid: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HELPERS_TINY_MODELS", raising=False)
        for name in HUB_NAMES:
            spec = registry.REGISTRY[name]
            laid[name] = lay_out_cache(hub_cache, spec.source, tiny.ensure(tiny.kind_of(spec)))
        for repo, kind in PARTS.items():
            laid[repo] = lay_out_cache(hub_cache, repo, tiny.ensure(kind))
        models.clear_cache()
        yield laid
    models.clear_cache()  # these names must not stay loaded from stand-ins
    for repo in [registry.REGISTRY[name].source for name in HUB_NAMES] + list(PARTS):
        shutil.rmtree(hub_cache / ("models--" + repo.replace("/", "--")), ignore_errors=True)


@pytest.mark.parametrize("name", HUB_NAMES)
def test_every_hub_name_loads_with_its_commit(commits: dict[str, str], name: str) -> None:
    spec = registry.REGISTRY[name]
    loaded = models.load(name, device="cpu")
    assert not loaded.spec.is_tiny and loaded.spec.source == spec.source
    assert loaded.commit == commits[name] and loaded.path == spec.source
    listed = {m["name"]: m for m in models.loaded()}
    assert listed[name]["commit"] == commits[name]


def test_a_few_step_name_is_here_only_with_its_parts(commits: dict[str, str]) -> None:
    from huggingface_hub import constants

    from helpers import weights

    spec = registry.REGISTRY["sd15-inpaint-lcm"]
    assert weights.is_cached(spec) == (True, commits["sd15-inpaint-lcm"])
    assert [p.source for p in weights.parts(spec)] == [registry.LCM_LORA, registry.TAESD]
    painter = inpaint.Inpainter.from_pretrained("sd15-inpaint-lcm", device="cpu")
    assert type(painter.pipe.vae).__name__ == "AutoencoderTiny" and painter.steps == 4
    made = painter.inpaint(images.sample("chelsea"), np.ones((300, 451), bool), "a dragon")[0]
    context = tracking.recipes.of(made).context  # type: ignore[union-attr]
    assert context["adapter"]["source"] == registry.LCM_LORA and context["vae"] == registry.TAESD
    taesd = Path(constants.HF_HUB_CACHE) / ("models--" + registry.TAESD.replace("/", "--"))
    away = taesd.with_name(taesd.name + ".away")
    taesd.rename(away)
    try:
        assert weights.is_cached(spec)[0] is False  # the base alone is not the model
        both = [spec, registry.REGISTRY["sd15-lcm"]]
        assert weights.missing_bytes(both) == registry.PART_BYTES[registry.TAESD]  # once
    finally:
        away.rename(taesd)


def test_the_nouns_run_on_the_real_ids(commits: dict[str, str]) -> None:
    photo = images.sample("chelsea")
    embedder = clip.Embedder.from_pretrained()
    assert embedder.commit == commits["clip-b32"]
    assert embedder.embed_texts(["a cat"]).shape[0] == 1
    for name in ("owlvit-b32", "owlv2-b16", "grounding-dino-tiny"):
        detector = detect.Detector.from_pretrained(name, device="cpu")
        assert detector.commit == commits[name]
        assert len(detector.detect(photo, "a cat", threshold=0.0, top_k=2)) == 2
    from helpers import clipseg

    segmenter = clipseg.TextSegmenter.from_pretrained(device="cpu")  # "clipseg-rd64"
    assert segmenter.commit == commits["clipseg-rd64"]
    assert segmenter.segment(photo, "a cat", threshold=0.0).masks.shape == (1, 300, 451)  # type: ignore[union-attr]


def test_recipes_record_the_commit_and_reproduce_it(commits: dict[str, str],
                                                    offline_runs: Path) -> None:
    painter = inpaint.Inpainter.from_pretrained(device="cpu")  # the default: SD 1.5
    assert painter.name == "sd15-inpaint" and painter.commit == commits["sd15-inpaint"]
    photo = images.sample("coffee").resize((96, 64))
    mask = np.zeros((64, 96), bool)
    mask[16:48, 24:72] = True
    out = painter.inpaint(photo, mask, "a cat", steps=2)[0]
    made = generate.Generator.from_pretrained(device="cpu").generate(
        "a cat", steps=2, height=64, width=64)
    run = tracking.start("hub-path", online=False)
    records = [run.log_image(out, "inpainted"), run.log_image(made, "drawn")]
    run.end()
    assert records[0]["recipe"]["args"]["revision"] == commits["sd15-inpaint"]
    assert records[1]["recipe"]["args"]["revision"] == commits["sd15"]
    for stored in tracking.load_record(run.folder)["images"]:
        assert tracking.same_pixels(stored, tracking.reproduce(stored))


@pytest.fixture(scope="module")
def sam_checkpoint() -> Iterator[Path]:
    """SAM ViT-B with random weights where the checkpoint download leaves it, with the note
    that marks it verified (the real file's hash cannot be had here): the real SAM path."""
    import torch
    from segment_anything import sam_model_registry

    spec = registry.REGISTRY["sam-vit-b"]
    path = registry.cache_dir() / "checkpoints" / spec.source.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), path)
    note = path.with_name(path.name + ".sha256")
    note.write_text(spec.sha256 or "")
    yield path
    path.unlink()
    note.unlink()
    models.clear_cache()


@pytest.mark.notebook
@pytest.mark.parametrize("lesson", ["01_overview", "03_text_prompted_detection",
                                    "04_inpainting", "06_video_and_speech"])
def test_lessons_run_on_the_real_path(commits: dict[str, str], sam_checkpoint: Path,
                                      tmp_path: Path, lesson: str) -> None:
    import json

    from helpers import lessons, teacher

    path = lessons.NOTEBOOKS / f"{lesson}.ipynb"
    env = {"HELPERS_RUNS_DIR": str(tmp_path / "runs"), "COMET_CONFIG": str(tmp_path / "none"),
           "COMET_API_KEY": ""}
    run = lessons.execute(path, mode="real", timeout=900, out_dir=tmp_path / "out", env=env)
    cells = json.loads(run.executed.read_text())["cells"]  # type: ignore[union-attr]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = json.dumps(outputs)
    assert "'tiny_mode': False" in text and "Loading weights" not in text
    assert "Could not reach the Hub" not in text  # no hub chatter in the notebook
    number = int(lesson[:2])
    recorded = {}
    for record in tracking.runs(directory=tmp_path / "runs"):
        recorded.update({m["name"]: m["commit"] for m in record["models"]})
    used = set(teacher.PRESETS[number]["cpu"])
    optional = set(teacher.OPTIONAL.get(number, ()))  # cached here, so used if memory allows
    assert used <= set(recorded) <= used | optional  # what the teacher's table says
    assert all(recorded[n] == commits[n] for n in used if n in commits)  # hub ones: commits


def test_a_commit_that_cannot_be_had_is_said(commits: dict[str, str],
                                             no_network: list[object]) -> None:
    gone = "0" * 40
    with pytest.raises(models.WeightsUnavailableError,
                       match=f"commit {gone} of 'stable-diffusion-v1-5/stable-diffusion-v1-5' is "
                             "not in this machine's Hugging Face cache"):
        generate.Generator.from_pretrained(device="cpu", revision=gone)
    with pytest.raises(ValueError, match="revision '' must be a commit"):
        models.load("sd15", device="cpu", revision="")
    assert no_network == []


# ---------------------------------------------------------------- a hub on loopback

CHILD = """
import sys
from helpers import models
try:
    loaded = models.load(sys.argv[1], device="cpu", revision=(sys.argv[2:] or [None])[0])
except models.WeightsUnavailableError as err:
    print("ERROR", err)
else:
    print("LOADED", loaded.spec.source, loaded.commit)
"""


def _load_in_child(name: str, stub: HubStub, tmp_path: Path, *extra: str) -> str:
    import os
    import subprocess
    import sys

    env = child_env(dict(os.environ), HF_ENDPOINT=stub.url, HF_HOME=tmp_path / "hf")
    done = subprocess.run([sys.executable, "-c", CHILD, name, *extra], env=env,
                          capture_output=True,
                          text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_a_gone_repo_gives_way_to_its_mirror(tmp_path: Path) -> None:
    spec = registry.REGISTRY["sd15"]
    mirror = spec.mirrors[0]
    with HubStub(served={mirror: tiny.ensure("sd")}, gone=(spec.source,)) as stub:
        out = _load_in_child("sd15", stub, tmp_path)
    assert f"LOADED {mirror} {commit_for(mirror)}" in out
    assert f"{spec.source} is gone from the hub; loaded the mirror {mirror}" in out
    assert any(r.startswith("GET ") and mirror in r for r in stub.requests)  # really downloaded
    assert "Loading pipeline components" not in out and "Loading weights" not in out


@pytest.mark.slow
@pytest.mark.parametrize(("name", "case", "message"), [
    ("clip-b32", "gated", "'openai/clip-vit-base-patch32' is gated: accept its licence on "
                          "https://huggingface.co/openai/clip-vit-base-patch32, log in with "
                          "`hf auth login`"),
    ("owlvit-b32", "gone", "the hub has no repository 'google/owlvit-base-patch32' any more "
                           "(model 'owlvit-b32'): it was removed or renamed. Use another model "
                           "('owlvit-b16'"),
    ("sd15-inpaint", "gone", "the hub has no repository 'stable-diffusion-v1-5/stable-diffusion-"
                             "inpainting', 'sd-legacy/stable-diffusion-inpainting' any more"),
])
def test_hub_errors_are_told_apart(tmp_path: Path, name: str, case: str, message: str) -> None:
    source = registry.REGISTRY[name].source
    repos = (source, *registry.REGISTRY[name].mirrors)
    with HubStub(gone=repos if case == "gone" else (), gated=repos if case == "gated" else ()
                 ) as stub:
        out = _load_in_child(name, stub, tmp_path)
    assert "ERROR" in out and message in out, out[-2000:]
    assert "internet" not in out.split("ERROR", 1)[1]


@pytest.mark.slow
def test_a_repo_with_only_a_bin_file_asks_for_no_conversion(tmp_path: Path) -> None:
    """CLIPSeg and ALIGN ship only pytorch_model.bin: loading one online must not start
    transformers' background request for a safetensors conversion."""
    import os
    import shutil
    import subprocess
    import sys

    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "bin-only"
    shutil.copytree(tiny.ensure("clip"), folder, ignore=shutil.ignore_patterns(".*"))
    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    script = ("import threading\n"
              "started = []\n"
              "start = threading.Thread.start\n"
              "def spy(self):\n"
              "    started.append(self.name)\n"
              "    return start(self)\n"
              "threading.Thread.start = spy\n"
              "from helpers import models\n"
              "loaded = models.load('clip-b32', device='cpu')\n"
              "print('LOADED', loaded.commit)\n"
              "print('THREADS', [n for n in started if 'conversion' in n])\n")
    source = registry.REGISTRY["clip-b32"].source
    with HubStub(served={source: folder}) as stub:
        env = child_env(dict(os.environ), HF_ENDPOINT=stub.url, HF_HOME=tmp_path / "hf")
        env.pop("DISABLE_SAFETENSORS_CONVERSION", None)
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"LOADED {commit_for(source)}" in done.stdout
    assert "THREADS []" in done.stdout, done.stdout


@pytest.mark.slow
def test_sam3_without_access_is_one_line_and_no_error(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = ("from helpers import sam3\n"
              "print('FOUND', sam3.ConceptSegmenter.if_available(device='cpu'))\n")
    with HubStub(gated=(registry.REGISTRY["sam3"].source,)) as stub:
        env = child_env(dict(os.environ), HF_ENDPOINT=stub.url, HF_HOME=tmp_path / "hf")
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                              text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[-1] == "FOUND None" and len(lines) == 2, done.stdout
    assert lines[0].startswith("SAM 3 is not used here: 'facebook/sam3' is gated: accept its "
                               "licence on https://huggingface.co/facebook/sam3")
    assert any("facebook/sam3" in r for r in stub.requests)  # it asked the hub


def test_one_stable_diffusion_at_a_time_on_a_cpu(commits: dict[str, str],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    models.clear_cache()
    drawing = models.load("sd15", device="cpu")
    models.load("clip-b32", device="cpu")
    models.load("sd15-inpaint", device="cpu")
    assert "Released sd15 from this kernel's models" in capsys.readouterr().out
    assert [m["name"] for m in models.loaded()] == ["clip-b32", "sd15-inpaint"]
    assert models.load("sd15", device="cpu") is not drawing  # loaded afresh when asked again
    assert [m["name"] for m in models.loaded()] == ["clip-b32", "sd15"]


@pytest.mark.slow
def test_a_recorded_commit_the_hub_no_longer_has(tmp_path: Path) -> None:
    from helpers import tiny

    source = registry.REGISTRY["clip-b32"].source
    with HubStub(served={source: tiny.ensure("clip")}) as stub:
        out = _load_in_child("clip-b32", stub, tmp_path, "f" * 40)
    assert f"'{source}' has no commit or branch '{'f' * 40}' on the hub" in out, out[-2000:]
    assert "cannot be made again exactly" in out
