"""One damaged run never hides the others: readers skip it and name it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import images, tracking, widgets


@pytest.fixture(autouse=True)
def _isolated(offline_runs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)


def _two_runs() -> tuple[tracking.Run, tracking.Run]:
    made = []
    for name in ("good", "bad"):
        run = tracking.start("damage", name=name, online=False)
        run.log_params({"seed": 1})
        run.log_image(images.sample("coffee").resize((40, 30)), f"{name} cup")
        made.append(run)
    return made[0], made[1]


DAMAGES = {
    "empty run.json": lambda f: (f / "run.json").write_text(""),
    "truncated run.json": lambda f: (f / "run.json").write_text(
        (f / "run.json").read_text()[:40]),
    "run.json not a record": lambda f: (f / "run.json").write_text("[1, 2]"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_run_json_is_named_and_left_out(damage: str) -> None:
    good, bad = _two_runs()
    good.end()
    bad.end()
    DAMAGES[damage](bad.folder)
    with pytest.warns(UserWarning, match=f"left out '{bad.folder}' is a damaged run"):
        records = tracking.runs("damage")
    assert [r["name"] for r in records] == ["good"]
    with pytest.warns(UserWarning, match="damaged run"):
        names = [e.name for e in tracking.logged_images("damage")]
    assert names == ["good cup"]
    with pytest.warns(UserWarning, match="damaged run"):
        assert [e.name for e in widgets.gallery("damage").entries] == ["good cup"]
    with pytest.raises(tracking.DamagedRunError, match="run.json"):
        tracking.load_record(bad.folder)


def test_damaged_event_lines_are_skipped_in_a_running_run() -> None:
    good, bad = _two_runs()
    good.end()  # bad stays "running": its record is folded from events.jsonl
    bad.log_image(images.sample("coffee").resize((40, 30)), "second cup")
    events = bad.folder / "events.jsonl"
    with open(events, "ab") as fh:
        fh.write(b'{"type": "params", "params": {"caf\xe9": 1}}\n')  # not UTF-8
        fh.write(b'{"params": {"lost": 1}}\n')  # no "type"
        fh.write(b'{"type": "image"}\n')  # a type without its fields
        fh.write(b'{"type": "tag", "tag": "kept"}\n')
        fh.write(b'{"type": "image", "image": {"name": "cut')  # a crash mid-line
    record = tracking.load_record(bad.folder)
    assert [i["name"] for i in record["images"]] == ["bad cup", "second cup"]
    assert record["params"] == {"seed": 1} and "kept" in record["tags"]
    names = [e.name for e in tracking.logged_images("damage")]
    assert names == ["good cup", "bad cup", "second cup"]
    bad.end()


@pytest.mark.parametrize("kwargs, message", [
    ({"metadata": "seed=1"}, "metadata 'seed=1' must be a dict"),
    ({"detections": [[1, 2, 3, 4]]}, "detections .* must be a Detections"),
    ({"step": "3"}, "step '3' must be an integer"),
    ({"step": True}, "step True must be an integer"),
    ({"recipe": "abc"}, "recipe 'abc' must be a tracking.Recipe"),
])
def test_bad_log_image_arguments_fail_before_any_file(kwargs: dict[str, object],
                                                      message: str) -> None:
    run = tracking.start("bad-input", online=False)
    with pytest.raises(ValueError, match=message):
        run.log_image(images.sample("coffee").resize((40, 30)), "cup", **kwargs)  # type: ignore[arg-type]
    assert not list((run.folder / "images").glob("*.png"))  # no orphan file
    entry = run.log_image(images.sample("coffee").resize((40, 30)), "cup", step=np.int64(3))
    assert entry["index"] == 1 and entry["step"] == 3 and type(entry["step"]) is int
    run.end()


def test_tags_that_are_not_a_list_are_named() -> None:
    with pytest.raises(ValueError, match="tags 5 must be a list of strings"):
        tracking.start("bad-input", tags=5, online=False)  # type: ignore[arg-type]
