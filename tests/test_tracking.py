"""tracking: offline Comet archives and local records, read back; secrets; crashes; bad input."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import generate, images, tracking, widgets
from helpers.detections import Detections

from .conftest import all_text

FAKE_KEY = "FAKEkey0123456789abcdefPLANTED"


@pytest.fixture(autouse=True)
def _isolated(offline_runs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    monkeypatch.chdir(tmp_path)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _archive_messages(run: tracking.Run) -> list[dict[str, Any]]:
    assert run.archive is not None and run.archive.exists()
    with zipfile.ZipFile(run.archive) as z:
        return [json.loads(line) for line in z.read("messages.json").decode().splitlines()]


def _detections() -> Detections:
    masks = np.zeros((2, 300, 451), bool)
    masks[0, 50:150, 100:300] = True
    masks[1, 200:260, 20:80] = True
    return Detections(np.array([[100, 50, 300, 150], [20, 200, 80, 260]], np.float32),
                      np.array([0.91, 0.42], np.float32), ["cat", "ear"], masks,
                      np.array([0.8, 0.7], np.float32))


def _everything_logged(tmp_path: Path) -> tracking.Run:
    run = tracking.start("round-trip", name="all", tags=["test"], online=False)
    run.log_params({"seed": np.int64(7), "prompt": "a cat", "sizes": np.array([1, 2])})
    run.log_metrics({"loss": np.float32(0.25)}, step=3)
    run.log_text("the prompt was 'a cat'", metadata={"kind": "prompt"})
    run.log_image(images.sample("chelsea"), "cat", metadata={"threshold": 0.1},
                  detections=_detections(), points=[[200, 100], [30, 30]], labels=[1, 0])
    data = tmp_path / "photos"
    data.mkdir()
    (data / "a.txt").write_text("one")
    run.log_dataset(data, "photos")
    return run


def test_offline_round_trip(tmp_path: Path, no_network: list[object]) -> None:
    run = _everything_logged(tmp_path)
    run.end()
    messages = _archive_messages(run)
    logged = [m["payload"].get("param") or m["payload"]["params"]
              for m in messages if m["type"] == "parameter_msg"]
    params = {p["paramName"]: p["paramValue"] for p in logged}
    assert params["seed"] == 7 and params["prompt"] == "a cat" and params["sizes"] == [1, 2]
    assert len(params["dataset/photos"]) == 64
    metrics = [m["payload"]["metric"] for m in messages if m["type"] == "metric_msg"]
    assert {"metricName": "loss", "metricValue": 0.25, "step": 3}.items() <= next(
        m for m in metrics if m["metricName"] == "loss").items()
    uploads = [m["payload"] for m in messages if m["type"] == "file_upload"]
    image = next(u for u in uploads if u["upload_type"] == "visualization")
    layers = {layer["name"]: layer["data"] for layer in image["metadata"]["annotations"]}
    assert layers["boxes"][0] == {"boxes": [[100.0, 50.0, 200.0, 100.0]], "label": "cat",
                                  "score": 0.91}
    assert len(layers["masks"]) == 2 and len(layers["masks"][0]["points"][0]) >= 8
    assert [p["label"] for p in layers["prompt points"]] == ["include", "exclude"]
    assert any(u["upload_type"] == "asset" for u in uploads)
    assert any(u["upload_type"] == "text-sample" for u in uploads)
    with zipfile.ZipFile(run.archive) as z:  # type: ignore[arg-type]
        assert image["file_path"] in z.namelist()

    record = tracking.load_record(run.folder)
    assert record["status"] == "finished" and record["mode"] == "offline"
    assert record["params"]["seed"] == 7 and record["metrics"][0]["value"] == 0.25
    assert record["images"][0]["detections"][0]["label"] == "cat"
    assert (run.folder / record["images"][0]["file"]).exists()
    assert record["datasets"][0]["digest"] == params["dataset/photos"]
    assert record["environment"]["libraries"]["comet_ml"]
    assert record["comet_archive"].endswith(".zip")
    assert no_network == []


@pytest.mark.slow
def test_comet_command_line_reads_the_archive(tmp_path: Path) -> None:
    run = _everything_logged(tmp_path)
    run.end()
    comet = Path(sys.executable).with_name("comet")
    out = subprocess.run([str(comet), "offline", "--csv", str(run.archive)],
                         capture_output=True, text=True, timeout=120,
                         env=os.environ | {"COMET_DISABLE_AUTO_LOGGING": "1"})
    assert out.returncode == 0, out.stderr
    assert '"param","prompt","a cat"' in out.stdout
    assert '"metric","loss","0.25"' in out.stdout
    assert out.stdout.count('"file_upload","visualization"') == 1


@pytest.mark.slow
def test_comet_command_line_reads_an_archive_with_a_late_pick(tmp_path: Path) -> None:
    run = _everything_logged(tmp_path)
    run.end()
    message = widgets.gallery(runs=[run.folder]).pick(0)
    assert "Comet offline archive" in message
    comet = Path(sys.executable).with_name("comet")
    out = subprocess.run([str(comet), "offline", "--csv", str(run.archive)],
                         capture_output=True, text=True, timeout=120,
                         env=os.environ | {"COMET_DISABLE_AUTO_LOGGING": "1"})
    assert out.returncode == 0, out.stderr
    assert '"data","key","best"' in out.stdout and '"data","value","cat"' in out.stdout
    assert '"param","prompt","a cat"' in out.stdout
    assert out.stdout.count('"file_upload","visualization"') == 1


def test_an_archive_rewrite_that_fails_leaves_the_old_archive(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import shutil

    run = tracking.start("rewrite", online=False)
    run.log_image(images.sample("coffee").resize((40, 30)), "cup")
    run.end()
    assert run.archive is not None
    before = run.archive.read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(shutil, "copyfileobj", crash)  # dies half-way through the copy
        with pytest.raises(OSError, match="disk full"):
            tracking.comet.add_to_archive(run.archive, ["best:cup"], {"best": "cup"})
        assert run.archive.read_bytes() == before
        assert sorted(p.name for p in run.archive.parent.iterdir()) == [run.archive.name]
        with pytest.warns(UserWarning, match="did not reach the Comet record.*disk full.*kept"):
            message = widgets.gallery(runs=[run.folder]).pick(0)
        assert "only" in message and run.archive.read_bytes() == before
    assert tracking.load_record(run.folder)["picks"][0]["image"] == "cup"
    not_comet = tmp_path / "other.zip"
    with zipfile.ZipFile(not_comet, "w") as z:
        z.writestr("a.txt", "a")
    with pytest.raises(ValueError, match="not a Comet offline archive"):
        tracking.comet.add_to_archive(not_comet, ["x"])


def test_api_key_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COMET_API_KEY", FAKE_KEY)
    monkeypatch.setenv("COMET_URL_OVERRIDE", f"http://127.0.0.1:{_closed_port()}/clientlib/")
    start = time.perf_counter()
    run = tracking.start("secrets")  # decides by itself: a key, but no server
    assert time.perf_counter() - start < tracking.PROBE_TIMEOUT + 20
    assert run.record["mode"] == "offline" and "did not answer" in run.record["mode_reason"]
    run.log_params({"note": f"key is {FAKE_KEY}"})
    run.log_text(f"oops {FAKE_KEY}", metadata={FAKE_KEY: FAKE_KEY})
    run.log_image(images.sample("coffee"), f"cup {FAKE_KEY}", metadata={"k": FAKE_KEY})
    run.log_metrics({FAKE_KEY: 1.0})
    run.log_other(FAKE_KEY, FAKE_KEY)
    run.add_tag(FAKE_KEY)
    run.end()
    assert FAKE_KEY not in all_text(run.folder)
    captured = capfd.readouterr()
    assert FAKE_KEY not in captured.out + captured.err
    assert "***" in json.dumps(tracking.load_record(run.folder)["params"])


def test_server_probe_is_bounded(serve: tuple[str, Path]) -> None:
    url, _ = serve
    assert tracking.server_answers(url + "/clientlib/", timeout=2)
    start = time.perf_counter()
    assert not tracking.server_answers(f"http://127.0.0.1:{_closed_port()}/", timeout=1)
    assert time.perf_counter() - start < 3


def test_online_without_key_falls_back(capsys: pytest.CaptureFixture[str]) -> None:
    run = tracking.start("fallback", online=True)
    assert run.record["mode"] == "offline"
    assert "no Comet API key" in capsys.readouterr().out


def test_network_guard_works() -> None:
    with pytest.raises(OSError, match="only loopback"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


@pytest.mark.slow
def test_interrupted_script_leaves_complete_records(tmp_path: Path) -> None:
    script = tmp_path / "crash.py"
    script.write_text(
        "from helpers import tracking, images\n"
        "run = tracking.start('crash', online=False)\n"
        "run.log_params({'seed': 1})\n"
        "run.log_image(images.sample('rocket'), 'rocket')\n"
        "raise RuntimeError('the lesson broke here')\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=os.environ.copy())
    assert out.returncode == 1 and "the lesson broke here" in out.stderr
    (folder,) = (tmp_path / "runs" / "crash").iterdir()
    record = tracking.load_record(folder)
    assert record["status"] == "finished" and record["params"] == {"seed": 1}
    assert [i["name"] for i in record["images"]] == ["rocket"]
    (archive,) = (folder / "comet").glob("*.zip")
    with zipfile.ZipFile(archive) as z:
        messages = z.read("messages.json").decode()
    assert '"paramName": "seed"' in messages or '"paramName":"seed"' in messages
    assert "visualization" in messages


def test_exception_mid_lesson_then_rerun_start(tmp_path: Path) -> None:
    first = tracking.start("lesson", online=False)
    first.log_params({"step": "before the error"})
    with pytest.raises(ZeroDivisionError):
        first.log_metrics({"ratio": 1 / 0})
    second = tracking.start("lesson", online=False)  # re-running the start cell
    assert first.ended and first.archive is not None and first.archive.exists()
    assert tracking.load_record(first.folder)["params"] == {"step": "before the error"}
    assert tracking.active("lesson") == [second]


def test_annotations_are_plain_python() -> None:
    layers = tracking.comet_annotations((451, 300), _detections(), points=np.array([[10, 20]]),
                                  labels=np.array([0]))

    def walk(value: Any) -> None:
        assert type(value) in (list, dict, str, float, int, bool, type(None)), type(value)
        for child in value.values() if isinstance(value, dict) else (
                value if isinstance(value, list) else []):
            walk(child)

    walk(layers)
    json.dumps(layers)


def test_boxes_outside_are_clipped_and_said() -> None:
    d = Detections([[400, 250, 500, 330]], [0.5], ["tail"])
    with pytest.warns(UserWarning, match=r"box 0 .*outside the 451x300 image.*clipped"):
        layers = tracking.comet_annotations((451, 300), d)
    assert layers[0]["data"][0]["boxes"] == [[400.0, 250.0, 51.0, 50.0]]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"points": [[500, 10]]}, ValueError, r"point \(500, 10\) is outside the 451x300"),
        ({"points": [[5, 10]], "labels": [1, 0]}, ValueError, "1 points but 2 labels"),
        ({"detections": Detections([[0, 0, 5, 5]], masks=np.zeros((1, 4, 4), bool))},
         ValueError, "masks have size 4x4 but the image is 451x300"),
    ],
)
def test_bad_prompts(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        tracking.comet_annotations((451, 300), **kwargs)


@pytest.mark.parametrize("project", ["a/b", "../up", "", "x\\y", "..", "/abs", 7])
def test_project_names_that_are_paths(project: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a path"):
        tracking.start(project, online=False)
    assert not (tmp_path / "runs").exists()


def test_bad_images_lose_nothing(tmp_path: Path) -> None:
    run = tracking.start("bad-images", online=False)
    run.log_params({"kept": True})
    (tmp_path / "notes.png").write_text("not pixels")
    with pytest.raises(ValueError, match="not an image"):
        run.log_image(tmp_path / "notes.png", "notes")
    with pytest.raises(TypeError, match="cannot load an image"):
        run.log_image({"pixels": 1}, "dict")
    with pytest.raises(ValueError, match="image name"):
        run.log_image(images.sample("coffee"), "")
    run.log_image(images.sample("coffee"), "good")
    run.end()
    record = tracking.load_record(run.folder)
    assert record["params"] == {"kept": True} and [i["name"] for i in record["images"]] == ["good"]


def test_log_after_end_is_a_clear_error() -> None:
    run = tracking.start("ended", online=False)
    run.log_params({"a": 1})
    run.end()
    run.end()  # idempotent
    for call in (lambda: run.log_params({"b": 2}), lambda: run.log_metrics({"m": 1.0}),
                 lambda: run.log_image(images.sample("coffee"), "late"),
                 lambda: run.log_text("late"), lambda: run.add_tag("late"),
                 lambda: run.log_dataset(images.data_dir(), "late")):
        with pytest.raises(RuntimeError, match=r"has ended.*kept in"):
            call()
    assert tracking.load_record(run.folder)["params"] == {"a": 1}


@pytest.mark.parametrize(("metrics", "message"), [({"loss": "low"}, "not a finite number"),
                                                  ({"loss": float("nan")}, "not a finite"),
                                                  ({"ok": True}, "not a finite")])
def test_bad_metrics(metrics: dict[str, Any], message: str) -> None:
    run = tracking.start("metrics", online=False)
    with pytest.raises(ValueError, match=message):
        run.log_metrics(metrics)
    with pytest.raises(ValueError, match="step"):
        run.log_metrics({"loss": 1.0}, step=1.5)  # type: ignore[arg-type]


def test_malformed_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "comet.config"
    bad.write_text("[comet\napi_key = 123\n")
    monkeypatch.setenv("COMET_CONFIG", str(bad))
    with pytest.raises(ValueError, match=r"comet\.config.*cannot be read.*comet init"):
        tracking.start("config", online=False)
    assert not (tmp_path / "runs").exists()


def test_dataset_versions_follow_content(tmp_path: Path) -> None:
    data = tmp_path / "subject"
    data.mkdir()
    (data / "1.txt").write_text("a")
    run = tracking.start("data", online=False)
    first = run.log_dataset(data, "subject")
    assert run.log_dataset(data, "subject") == first
    (data / "1.txt").write_text("b")
    second = run.log_dataset(data, "subject")
    assert second != first
    kept = sorted(p.name for p in (run.folder / "datasets").iterdir())
    assert kept == sorted({f"subject-{first[:12]}.json", f"subject-{second[:12]}.json"})
    for bad, message in ((tmp_path / "missing", "does not exist"),):
        with pytest.raises(ValueError, match=message):
            run.log_dataset(bad, "subject")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no files"):
        run.log_dataset(tmp_path / "empty", "subject")
    with pytest.raises(ValueError, match="not a path"):
        run.log_dataset(data, "../subject")


def test_reproduce_gives_identical_pixels() -> None:
    run = tracking.start("repro", online=False)
    made = generate.text_to_image("a green dragon", seed=5, steps=2, height=64, width=64)
    record = run.log_image(made, "dragon", metadata={"seed": 5})
    again = tracking.reproduce(record)
    assert tracking.same_pixels(record, again)
    other = generate.text_to_image("a green dragon", seed=6, steps=2, height=64, width=64)
    assert not tracking.same_pixels(record, other)
    run.end()
    stored = tracking.load_record(run.folder)["images"][0]  # from disk, after the run
    assert tracking.same_pixels(stored, tracking.reproduce(stored))


def test_reproduce_needs_a_recipe() -> None:
    run = tracking.start("no-recipe", online=False)
    record = run.log_image(images.sample("coffee"), "plain")
    with pytest.raises(ValueError, match="no recipe"):
        tracking.reproduce(record)
    for kind, message in (("magic.wand", "must be a tracking.Recipe or a dict with a 'kind'"),
                          ("os:system", "does not name a helpers function"),
                          ("helpers.nowhere:make", "names a module that does not exist"),
                          ("helpers.viz:grid", "no recipe of kind 'helpers.viz:grid'")):
        with pytest.raises(ValueError, match=message):
            tracking.reproduce(record | {"recipe": {"kind": kind, "args": {}}})


@pytest.mark.parametrize("recipe", ["abc", {"args": {}}, {"kind": "x:y", "args": [1]}, 5])
def test_a_bad_recipe_is_refused_before_anything_is_written(recipe: Any) -> None:
    run = tracking.start("bad-recipe", online=False)
    with pytest.raises(ValueError, match="recipe"):
        run.log_image(images.sample("coffee"), "cup", recipe=recipe)
    assert list((run.folder / "images").iterdir()) == []
    assert tracking.load_record(run.folder)["images"] == []


def test_recipes_name_what_made_the_image() -> None:
    made = generate.text_to_image("a green dragon", seed=5, steps=2, height=64, width=64)
    recipe = made.info[tracking.RECIPE_KEY]
    assert recipe.kind == "helpers.generate:Generator.generate"
    assert recipe.kind == tracking.kind_of(generate.Generator.generate)
    assert recipe.args["seed"] == 5 and recipe.args["model"] == "tiny-sd"


def test_gallery_groups_and_picks() -> None:
    run = tracking.start("sweep", online=False)
    for g in (7.5, 1.0, 7.5, 3.0):
        run.log_image(images.sample("coffee").resize((40, 30)), f"g{g}",
                      metadata={"guidance_scale": g})
    gal = widgets.gallery("sweep", by="guidance_scale")
    assert [value for value, _ in gal.groups()] == [1.0, 3.0, 7.5]
    assert [len(members) for _, members in gal.groups()] == [1, 1, 2]
    assert "guidance_scale = 7.5" in gal.caption(gal.groups()[2][1][0])
    view = gal.widget
    assert type(view).__name__ == "VBox"
    message = gal.pick(1)
    assert "tagged" in message
    run.end()
    record = tracking.load_record(run.folder)
    assert "best:g1.0" in record["tags"]
    with zipfile.ZipFile(run.archive) as z:  # type: ignore[arg-type]
        assert json.loads(z.read("experiment.json"))["tags"] == ["best:g1.0"]
    later = widgets.gallery(runs=[run.folder])
    message = later.pick(0)
    assert "has ended" in message and "and in its Comet offline archive" in message
    assert "best:g7.5" in tracking.load_record(run.folder)["tags"]
    with zipfile.ZipFile(run.archive) as z:  # type: ignore[arg-type]
        assert json.loads(z.read("experiment.json"))["tags"] == ["best:g1.0", "best:g7.5"]
    with pytest.raises(ValueError, match="no logged image has a setting called 'seed'"):
        widgets.gallery("sweep", by="seed")


def test_panel_offline_is_the_gallery() -> None:
    run = tracking.start("panel", online=False)
    run.log_image(images.sample("rocket").resize((32, 21)), "r")
    assert len(widgets.panel(run).entries) == 1


def test_key_from_dotenv_is_found_and_kept_out(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"COMET_API_KEY={FAKE_KEY}\n")
    assert tracking.api_key() == FAKE_KEY
    run = tracking.start("dotenv", online=False, tags=[FAKE_KEY])
    run.log_params({"leak": FAKE_KEY})
    run.end()
    assert FAKE_KEY not in all_text(run.folder)


def test_probe_gives_up_on_a_silent_server() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.perf_counter()
        assert not tracking.server_answers(f"http://127.0.0.1:{silent.getsockname()[1]}/",
                                           timeout=1)
        assert time.perf_counter() - start < 2.5


@pytest.mark.slow
def test_online_start_refused_falls_back_offline(monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    import http.server
    import threading

    class Refuse(http.server.BaseHTTPRequestHandler):
        def _refuse(self) -> None:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"msg": "Invalid api key", "code": 401}')

        do_GET = do_POST = do_HEAD = _refuse

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("COMET_API_KEY", FAKE_KEY)
        monkeypatch.setenv("COMET_URL_OVERRIDE",
                           f"http://127.0.0.1:{server.server_address[1]}/clientlib/")
        monkeypatch.setattr(tracking.comet, "ONLINE_START_TIMEOUT", 8.0)
        start = time.perf_counter()
        run = tracking.start("refused")  # key present, server answers, but refuses the run
        assert time.perf_counter() - start < 8.0 + 15
        assert run.record["mode"] == "offline" and not run.online
        assert "did not start the run" in run.record["mode_reason"]
        run.log_params({"still": "logged"})
        run.end()
        assert run.archive is not None and run.archive.exists()
        assert tracking.load_record(run.folder)["params"] == {"still": "logged"}
        captured = capfd.readouterr()
        assert FAKE_KEY not in captured.out + captured.err + all_text(run.folder)
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_sigterm_still_leaves_a_complete_archive(tmp_path: Path) -> None:
    import signal

    script = tmp_path / "stopped.py"
    script.write_text(
        "import sys, time\n"
        "from helpers import tracking, images\n"
        "run = tracking.start('stopped', online=False)\n"
        "run.log_params({'seed': 2})\n"
        "run.log_image(images.sample('coffee'), 'cup')\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=os.environ.copy())
    try:
        assert proc.stdout is not None
        lines = iter(proc.stdout.readline, "")
        assert any(line.strip() == "ready" for line in lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    (folder,) = (tmp_path / "runs" / "stopped").iterdir()
    record = tracking.load_record(folder)
    assert record["status"] == "finished" and [i["name"] for i in record["images"]] == ["cup"]
    (archive,) = (folder / "comet").glob("*.zip")
    with zipfile.ZipFile(archive) as z:
        assert "visualization" in z.read("messages.json").decode()


def test_empty_layers_are_never_sent_and_a_refused_image_is_said(
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = tracking.start("layers", online=False)
    empty_mask = Detections([[10, 10, 50, 50]], [0.9], ["cat"],
                            np.zeros((1, 300, 451), bool), [0.5])
    entry = run.log_image(images.sample("chelsea"), "nothing segmented", detections=empty_mask)
    assert [layer["name"] for layer in entry["annotations"]] == ["boxes"] and entry["comet"]
    with pytest.warns(UserWarning, match="outside"):
        outside = run.log_image(images.sample("chelsea"), "all outside",
                                detections=Detections([[500, 400, 600, 450]]))
    assert outside["annotations"] == [] and outside["comet"]
    monkeypatch.setattr(run.experiment, "log_image", lambda *a, **k: None)  # Comet refuses
    with pytest.warns(UserWarning, match="Comet refused image 'refused'.*kept in the local"):
        refused = run.log_image(images.sample("coffee"), "refused")
    assert refused["comet"] is False
    run.end()
    names = [i["name"] for i in tracking.load_record(run.folder)["images"]]
    assert names == ["nothing segmented", "all outside", "refused"]  # the record keeps all
    messages = _archive_messages(run)
    assert sum(m["type"] == "file_upload" and m["payload"]["upload_type"] == "visualization"
               for m in messages) == 2


def test_a_new_run_ends_the_one_before_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    first = tracking.start("lesson-a", online=False)
    first.log_params({"a": 1})
    second = tracking.start("lesson-b", online=False)
    assert first.ended and tracking.active() == [second]
    out = capsys.readouterr().out
    assert f"Ended the earlier run {first.name} of project lesson-a" in out
    second.log_params({"b": 2})
    second.end()
    for run, params in ((first, {"a": 1}), (second, {"b": 2})):
        record = tracking.load_record(run.folder)
        assert record["status"] == "finished" and record["params"] == params
        assert run.archive is not None and run.archive.exists()


def test_an_artifact_failure_logs_the_manifest_instead(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "photos"
    data.mkdir()
    (data / "a.txt").write_text("one")
    run = tracking.start("artifacts", online=False)
    run.online = True  # as if online: this offline experiment refuses artifacts
    digest = run.log_dataset(data, "photos")
    run.end()
    assert "did not take dataset 'photos' as an artifact (NotImplementedError" in \
        capsys.readouterr().out
    (logged,) = tracking.load_record(run.folder)["datasets"]
    assert logged["digest"] == digest and logged["artifact_version"] is None
    assert logged["artifact_error"].startswith("NotImplementedError")
    uploads = [m["payload"] for m in _archive_messages(run) if m["type"] == "file_upload"]
    assert any(u["upload_type"] == "asset" for u in uploads)


def test_an_image_record_shows_in_one_line(offline_runs: Path) -> None:
    run = tracking.start("one-line", online=False)
    mask = np.zeros((60, 90), bool)
    mask[10:50, 20:70] = True
    found = Detections([[20, 10, 70, 50]], [0.9], ["cup"], mask[None])
    logged = run.log_image(np.zeros((60, 90, 3), np.uint8), "cup", detections=found)
    run.end()
    assert len(repr(logged)) < 200 and "'cup'" in repr(logged) and "annotation" in repr(logged)
    assert isinstance(logged, dict) and logged["detections"]  # still the whole record
    shown = tracking.load_record(run.folder)["images"][0]
    assert repr(shown) == repr(logged) and dict(shown) == {**logged, "folder": shown["folder"]}
    import IPython.lib.pretty as pretty

    assert pretty.pretty(logged) == repr(logged)  # what a notebook cell displays
