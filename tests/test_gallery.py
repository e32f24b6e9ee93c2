"""The gallery: each cell drawn with what was logged with it, captions naming the runs, a
static picture, picks that reach an ended run's record and Comet archive, ``tracking.best``."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from helpers import generate, images, tracking, viz, widgets
from helpers.detections import Detections
from helpers.widgets import static
from helpers.widgets.gallery import Panel

PHOTO = (451, 300)


@pytest.fixture(autouse=True)
def _isolated(offline_runs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    monkeypatch.chdir(tmp_path)


def _rect(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros(PHOTO[::-1], bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _found(i: int) -> Detections:
    """A different box and (rectangular, so exactly stored) mask for each i."""
    x0, y0 = 20 + 60 * i, 30 + 30 * i
    return Detections([[x0, y0, x0 + 120, y0 + 90]], [0.9 - 0.1 * i], [f"thing {i}"],
                      _rect(y0, y0 + 90, x0, x0 + 120)[None], [0.8])


def _masks_run(name: str = "masks", n: int = 3, project: str = "drawn") -> tracking.Run:
    run = tracking.start(project, name=name, online=False)
    for i in range(n):
        run.log_image(images.sample("chelsea"), f"mask {i}", metadata={"i": i},
                      detections=_found(i), points=[[200 + 10 * i, 100], [30, 30]],
                      labels=[1, 0])
    return run


def _pixels(picture: Image.Image) -> np.ndarray:
    return np.asarray(picture.convert("RGB"))


def _png(data: bytes) -> np.ndarray:
    return _pixels(Image.open(io.BytesIO(data)))


def _shown(gal: widgets.Gallery, picture: Image.Image) -> np.ndarray:
    """What the view shows of ``picture``: at most twice the cell width."""
    picture = picture.copy()
    picture.thumbnail((2 * gal.cell, 2 * gal.cell), Image.Resampling.LANCZOS)
    return _pixels(picture)


def _messages(archive: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(archive) as z:
        return [json.loads(line) for line in z.read("messages.json").decode().splitlines()]


# ---------------------------------------------------------------- drawing what was logged

def test_masks_come_back_from_their_polygons() -> None:
    rect = _rect(50, 150, 100, 300)
    polygons = tracking.annotations.mask_polygons(rect)
    assert np.array_equal(tracking.mask_from_polygons(polygons, PHOTO), rect)
    yy, xx = np.mgrid[:300, :451]
    disk = (xx - 220) ** 2 + (yy - 150) ** 2 < 80 ** 2
    back = tracking.mask_from_polygons(tracking.annotations.mask_polygons(disk), PHOTO)
    assert (back & disk).sum() / (back | disk).sum() > 0.97
    with pytest.raises(ValueError, match="flat list"):
        tracking.mask_from_polygons([[1, 2, 3]], PHOTO)


def test_each_cell_draws_its_own_annotations() -> None:
    run = _masks_run()
    run.end()
    gal = widgets.gallery(runs=[run.folder])
    bare = [_pixels(e.image()) for e in gal.entries]
    assert all(np.array_equal(bare[0], b) for b in bare)  # the same photo three times
    drawn = [_pixels(gal.drawn(e)) for e in gal.entries]
    assert not any(np.array_equal(a, b) for k, a in enumerate(drawn) for b in drawn[k + 1:])
    for i, (entry, picture) in enumerate(zip(gal.entries, drawn)):
        expected = viz.annotate(images.sample("chelsea"), _found(i),
                                points=[[200 + 10 * i, 100], [30, 30]], labels=[1, 0])
        assert np.array_equal(picture, _pixels(expected))  # the course's own look, exactly
        assert np.array_equal(_pixels(entry.annotated()), picture)
        assert np.array_equal(_pixels(gal.drawn(entry, annotations=False)), bare[i])
    assert gal.problems == {}


def test_the_toggle_switches_every_cell() -> None:
    run = _masks_run(n=2)
    gal = widgets.gallery(runs=[run])
    view = gal.widget
    toggle = gal._toggle
    assert type(toggle).__name__ == "ToggleButton" and toggle.description == "annotations"
    assert toggle.value is True and gal.annotations
    shown = [image for _, image in gal._views]
    assert len(shown) == 2 and type(view).__name__ == "VBox"
    assert not np.array_equal(_png(shown[0].value), _shown(gal, gal.entries[0].image()))
    assert np.array_equal(_png(shown[0].value), _shown(gal, gal.entries[0].annotated()))
    toggle.value = False  # as a click does
    assert gal.annotations is False
    for (entry, image) in gal._views:
        assert np.array_equal(_png(image.value), _shown(gal, entry.image()))
    gal.show_annotations(True)  # from the kernel side: the toggle follows
    assert toggle.value is True
    assert np.array_equal(_png(shown[1].value), _shown(gal, gal.drawn(gal.entries[1])))
    off = widgets.gallery(runs=[run], annotations=False)
    assert np.array_equal(_pixels(off.drawn(off.entries[0])), _pixels(off.entries[0].image()))


def test_captions_name_the_runs() -> None:
    first = _masks_run("first", n=1, project="two-runs")
    first.end()
    second = _masks_run("second", n=2, project="two-runs")
    one = widgets.gallery(runs=[second])
    assert not one.several_runs and "run" not in one.caption(one.entries[0]).split("\n")[-1]
    assert one.heading().startswith("run two-runs / second, started 20")
    both = widgets.gallery("two-runs", by="i")
    assert both.several_runs
    assert [len(m) for _, m in both.groups()] == [2, 1]  # grouping by a setting still works
    lines = both.heading().split("\n")
    assert lines[0] == "2 runs:" and "two-runs / first, started" in lines[1]
    assert "two-runs / second, started" in lines[2]
    captions = [both.caption(e) for e in both.entries]
    assert captions[0].split("\n")[-1].startswith("run first (20")
    assert captions[-1].split("\n")[-1].startswith("run second (20")
    assert captions[0].split("\n")[:2] == ["mask 0", "i = 0"]


def test_a_damaged_record_draws_bare(tmp_path: Path) -> None:
    run = _masks_run(n=2)
    run.end()
    header = json.loads((run.folder / "run.json").read_text())
    del header["images"][0]["annotations"][1]["data"][0]["points"]  # the mask's polygons
    (run.folder / "run.json").write_text(json.dumps(header))
    gal = widgets.gallery(runs=[run.folder])
    damaged, whole = gal.entries
    with pytest.raises(ValueError, match="cannot be read: KeyError"):
        damaged.annotated()
    assert np.array_equal(_pixels(gal.drawn(damaged)), _pixels(damaged.image()))
    from helpers.widgets.gallery import problem_key

    assert "annotations not drawn" in gal.problems[problem_key(damaged)]
    assert not np.array_equal(_pixels(gal.drawn(whole)), _pixels(whole.image()))
    assert problem_key(whole) not in gal.problems
    whole.path.unlink()  # and a missing file: a grey card, not an error
    gal = widgets.gallery(runs=[run.folder])
    assert gal.drawn(gal.entries[1]).width == gal.cell
    assert type(gal.widget).__name__ == "VBox" and gal.picture().width > 0


# ---------------------------------------------------------------- the static picture

def test_picture_is_bounded_and_says_so() -> None:
    run = tracking.start("many", online=False)
    for k in range(11):
        run.log_image(images.sample("coffee").resize((60, 40)), f"c{k}",
                      metadata={"group": k % 2})
    few = widgets.gallery(runs=[run], by="group")
    small = few.picture(cols=3, rows=1)
    big = few.picture(cols=3, rows=4)
    assert small.width == big.width == 12 + 3 * (few.cell + 6) + 6
    assert small.height < big.height
    capped = few.picture(cols=3, rows=4, limit=4)
    assert capped.height < big.height
    empty = widgets.Gallery([])
    assert empty.picture().width > 0


def test_display_carries_the_static_picture(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[dict[str, Any]] = []
    monkeypatch.setattr("IPython.display.display",
                        lambda data, raw=False: shown.append(data))
    run = _masks_run(n=2)
    gal = widgets.gallery(runs=[run], by="i")
    gal._ipython_display_()
    (bundle,) = shown
    assert static.WIDGET_VIEW in bundle and static.PICTURE_CLASS in bundle["text/html"]
    assert "gallery of 2 logged images of drawn / masks" in bundle["text/html"]
    assert bundle["text/plain"] == repr(gal)

    class OnlineRun:  # what panel reads of an online run
        online = True
        folder = run.folder
        record = {"comet_url": "https://www.comet.com/ws/drawn/abc"}

    online = widgets.panel(OnlineRun())
    assert isinstance(online, Panel) and len(online.entries) == 2
    assert online.widget.children[1].value.startswith('<iframe src="https://www.comet.com')
    online._ipython_display_()
    assert static.PICTURE_CLASS in shown[1]["text/html"]
    assert "Comet: https://www.comet.com/ws/drawn/abc" in shown[1]["text/html"]
    offline = widgets.panel(run)
    assert type(offline) is widgets.Gallery


# ---------------------------------------------------------------- picks after the run ended

def test_a_pick_after_the_run_ended_reaches_its_archive() -> None:
    run = _masks_run(n=3)
    run.end()  # Run All: the run ends before anyone clicks
    assert run.archive is not None
    with zipfile.ZipFile(run.archive) as z:
        before = {n: z.read(n) for n in z.namelist()}
    gal = widgets.gallery(runs=[run.folder])
    message = gal.pick(1)
    assert "has ended" in message and "Comet offline archive" in message
    assert f"comet upload {run.archive}" in message
    with zipfile.ZipFile(run.archive) as z:
        assert z.testzip() is None
        after = {n: z.read(n) for n in z.namelist()}
    assert set(after) == set(before)
    for name in set(before) - {"experiment.json", "messages.json"}:
        assert after[name] == before[name]  # the image files, byte for byte
    experiment = json.loads(after["experiment.json"])
    assert experiment["tags"] == ["best:mask 1"]
    assert {k: v for k, v in experiment.items() if k != "tags"} == {
        k: v for k, v in json.loads(before["experiment.json"]).items() if k != "tags"}
    old_lines = before["messages.json"].decode().splitlines()
    new_lines = after["messages.json"].decode().splitlines()
    assert new_lines[:-1] == old_lines
    ids = [json.loads(line)["payload"]["message_id"] for line in old_lines]
    assert json.loads(new_lines[-1]) == {
        "payload": {"key": "best", "message_id": max(ids) + 1, "value": "mask 1"},
        "type": "log_other"}
    from comet_ml.schemas import get_experiment_file_validator, get_log_other_msg_validator

    get_experiment_file_validator().validate(experiment)
    get_log_other_msg_validator().validate(json.loads(new_lines[-1])["payload"])
    assert not list(run.archive.parent.glob("*.tmp"))

    record = tracking.load_record(run.folder)
    assert "best:mask 1" in record["tags"] and record["others"]["best"] == "mask 1"
    assert [(p["image"], p["index"]) for p in record["picks"]] == [("mask 1", 2)]

    gal.pick(2)  # a second pick: both tags, the latest value
    experiment = json.loads(zipfile.ZipFile(run.archive).read("experiment.json"))
    assert experiment["tags"] == ["best:mask 1", "best:mask 2"]
    others = [m["payload"] for m in _messages(run.archive) if m["type"] == "log_other"
              and m["payload"]["key"] == "best"]
    assert [o["value"] for o in others] == ["mask 1", "mask 2"]
    assert others[1]["message_id"] == others[0]["message_id"] + 1
    best = tracking.best(runs=[run.folder])
    assert best is not None and best.name == "mask 2"


def test_a_pick_on_an_open_run_goes_the_normal_way() -> None:
    run = _masks_run(n=2)
    gal = widgets.gallery(runs=[run])
    message = gal.pick(0)
    assert message.startswith("tagged run masks with 'best:mask 0'")
    events = [json.loads(line) for line in (run.folder / "events.jsonl").read_text().splitlines()]
    assert {"type": "tag", "tag": "best:mask 0"} in events
    assert {"type": "other", "key": "best", "value": "mask 0"} in events
    assert any(e["type"] == "pick" and e["pick"]["index"] == 1 for e in events)
    assert tracking.best(runs=[run]).name == "mask 0"  # type: ignore[union-attr]
    run.end()
    assert run.archive is not None
    assert json.loads(zipfile.ZipFile(run.archive).read("experiment.json"))["tags"] == [
        "best:mask 0"]
    assert {"key": "best", "value": "mask 0"}.items() <= next(
        m["payload"] for m in _messages(run.archive)
        if m["type"] == "log_other" and m["payload"]["key"] == "best").items()
    assert tracking.best(runs=[run.folder]).name == "mask 0"  # type: ignore[union-attr]


def _as_online(run: tracking.Run) -> None:
    header = json.loads((run.folder / "run.json").read_text())
    header.update(mode="online", comet_key="abc123", comet_archive=None)
    (run.folder / "run.json").write_text(json.dumps(header))


def test_a_pick_of_an_ended_online_run_goes_to_its_experiment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import comet_ml

    calls: list[tuple[Any, ...]] = []

    class FakeAPIExperiment:
        def __init__(self, api_key: str, previous_experiment: str) -> None:
            calls.append(("open", api_key, previous_experiment))

        def add_tag(self, tag: str) -> None:
            calls.append(("tag", tag))

        def log_other(self, key: str, value: Any) -> None:
            calls.append(("other", key, value))

    monkeypatch.setattr(comet_ml, "APIExperiment", FakeAPIExperiment)
    monkeypatch.setattr(tracking.comet, "api_key", lambda: "FAKEKEY123")
    run = _masks_run(n=1)
    run.end()
    _as_online(run)
    gal = widgets.gallery(runs=[run.folder])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        message = gal.pick(0)
    assert message.endswith("is saved in its local record "
                            f"({run.folder}) and sent to its Comet experiment")
    assert calls == [("open", "FAKEKEY123", "abc123"), ("tag", "best:mask 0"),
                     ("other", "best", "mask 0")]

    class Refusing(FakeAPIExperiment):
        def add_tag(self, tag: str) -> None:
            raise ConnectionError("server said no to FAKEKEY123")

    monkeypatch.setattr(comet_ml, "APIExperiment", Refusing)
    with pytest.warns(UserWarning) as caught:
        message = gal.pick(0)
    (warning,) = caught
    text = str(warning.message)
    assert "\n" not in text and "FAKEKEY123" not in text
    assert "did not reach the Comet record of run masks (ConnectionError" in text
    assert text.endswith(f"it is kept in its local record ({run.folder})")
    assert "saved in its local record" in message and "only" in message
    assert len(tracking.load_record(run.folder)["picks"]) == 2  # both kept locally

    monkeypatch.setattr(tracking.comet, "api_key", lambda: None)
    with pytest.warns(UserWarning, match="no Comet API key is configured"):
        gal.pick(0)


def test_a_missing_archive_keeps_the_pick_locally() -> None:
    run = _masks_run(n=1)
    run.end()
    assert run.archive is not None
    run.archive.unlink()
    with pytest.warns(UserWarning, match=r"offline archive .* is missing\); it is kept"):
        message = widgets.gallery(runs=[run.folder]).pick(0)
    assert "only" in message
    assert tracking.load_record(run.folder)["picks"][0]["image"] == "mask 0"


# ---------------------------------------------------------------- tracking.best

def test_best_is_the_latest_pick_and_reproduces() -> None:
    assert tracking.best("dragons") is None
    first = tracking.start("dragons", name="first", online=False)
    for seed in (1, 2):
        first.log_image(generate.text_to_image("a green dragon", seed=seed, steps=2,
                                               height=64, width=64), f"seed {seed}",
                        metadata={"seed": seed})
    first.end()
    assert tracking.best("dragons") is None  # logged, but nothing picked
    second = tracking.start("dragons", name="second", online=False)
    second.log_image(generate.text_to_image("a red dragon", seed=3, steps=2, height=64,
                                            width=64), "seed 3", metadata={"seed": 3})
    gal = widgets.gallery("dragons")
    gal.pick(2)  # the open run's image
    gal.pick(1)  # then one of the ended run: the latest wins, whatever the runs' order
    second.end()
    best = tracking.best("dragons")
    assert isinstance(best, tracking.LoggedImage)
    assert best.name == "seed 2" and best.run_name == "first"
    assert best == tracking.logged_images("dragons")[1]
    again = tracking.reproduce(best)  # reads like its record
    assert tracking.same_pixels(best, again)
    assert tracking.same_pixels(best.record, tracking.reproduce(best.record))
    assert "'seed 2'" in repr(best) and len(repr(best)) < 120
    assert tracking.best(runs=[second.folder]).name == "seed 3"  # type: ignore[union-attr]
    assert tracking.best(directory=Path("nowhere")) is None


def test_picks_from_two_processes_at_once_are_both_kept() -> None:
    import subprocess
    import sys

    run = _masks_run(n=4)
    run.end()
    assert run.archive is not None
    code = ("import sys\nfrom pathlib import Path\n"
            "from helpers.tracking import comet, picks\n"
            "folder, archive, name, index = sys.argv[1:]\n"
            "for k in range(5):\n"
            "    picks.add_pick(Path(folder), f'{name} {k}', int(index))\n"
            "    comet.add_to_archive(archive, tags=[f'best:{name} {k}'])\n")
    writers = [subprocess.Popen([sys.executable, "-c", code, str(run.folder), str(run.archive),
                                 name, str(i)]) for i, name in enumerate(["a", "b"])]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    tags = json.loads(zipfile.ZipFile(run.archive).read("experiment.json"))["tags"]
    expected = {f"best:{n} {k}" for n in "ab" for k in range(5)}
    assert set(tags) == expected  # no rewrite lost another's tag
    picks = json.loads((run.folder / "run.json").read_text())["picks"]
    assert {p["image"] for p in picks} == {t.removeprefix("best:") for t in expected}
    assert not list(run.archive.parent.glob("*.tmp")) and not list(run.folder.glob("*.tmp"))


def test_damaged_picks_do_not_hide_the_good_one(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _masks_run(n=2)
    run.end()
    widgets.gallery(runs=[run.folder]).pick(1)
    header = json.loads((run.folder / "run.json").read_text())
    header["picks"] = ["junk", {"image": "mask 0", "index": 1, "time": "yesterday"},
                       *header["picks"]]
    (run.folder / "run.json").write_text(json.dumps(header))
    best = tracking.best(runs=[run.folder])
    assert best is not None and best.name == "mask 1"  # the damaged ones count as oldest
    header["picks"] = 5
    (run.folder / "run.json").write_text(json.dumps(header))
    assert tracking.best(runs=[run.folder]) is None
    with pytest.raises(ValueError, match="not None"):
        tracking.pick(None)  # type: ignore[arg-type]


def test_a_failed_pick_is_shown_and_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    run = _masks_run(n=2)
    run.end()
    gal = widgets.gallery(runs=[run.folder])
    assert gal.widget is not None  # shown: a click's error goes under the gallery

    def refuse(entry: Any) -> str:
        raise OSError("the disk is read-only")

    gal.on_pick = refuse
    message = gal.pick(0)
    assert "could not pick" in message and "read-only" in gal._status.value
    assert gal.picked == []


def test_problems_of_images_sharing_a_name_stay_apart() -> None:
    from helpers.widgets.gallery import problem_key

    run = tracking.start("drawn", name="twins", online=False)
    for i in range(2):
        run.log_image(images.sample("chelsea"), "same name", detections=_found(i))
    run.end()
    header = json.loads((run.folder / "run.json").read_text())
    del header["images"][0]["annotations"][1]["data"][0]["points"]
    (run.folder / "run.json").write_text(json.dumps(header))
    gal = widgets.gallery(runs=[run.folder])
    first, second = gal.entries
    assert first.label == second.label and problem_key(first) != problem_key(second)
    gal.picture()
    assert problem_key(first) in gal.problems and problem_key(second) not in gal.problems
