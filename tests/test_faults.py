"""Faults a run survives: a process killed mid-run, a full disk, a read-only disk, a last
line cut short. Each test checks what is left on disk afterwards.

The full and read-only disks are a small tmpfs where this machine lets the tests mount one
(root on Linux); elsewhere the read-only case uses a folder made unwritable and the full
disk is simulated by a write that fails with ENOSPC.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import images, tracking, widgets
from helpers.tracking import crashes, record


@pytest.fixture(autouse=True)
def _isolated(offline_runs: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    monkeypatch.chdir(tmp_path)


def _messages(archive: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(archive) as z:
        return [json.loads(line) for line in z.read("messages.json").decode().splitlines()
                if line.strip()]


def _killed_run(tmp_path: Path, project: str = "killed") -> Path:
    """A run in a child process that logs, picks and is then killed with SIGKILL."""
    script = tmp_path / f"{project}.py"
    script.write_text(
        "import time\n"
        "from helpers import tracking, images\n"
        f"run = tracking.start({project!r}, name='crash', tags=['t1'], online=False)\n"
        "run.log_params({'seed': 5, 'prompt': 'a cup'})\n"
        "run.log_metrics({'loss': 0.5}, step=2)\n"
        "run.log_image(images.sample('coffee'), 'cup', metadata={'seed': 5})\n"
        "run.log_image(images.sample('chelsea'), 'cat', points=[[10, 20]], labels=[1])\n"
        "tracking.pick(tracking.logged_images(runs_=[run.folder])[1])\n"
        "print('ready', run.folder, flush=True)\n"
        "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=os.environ.copy())
    try:
        assert proc.stdout is not None
        folder = None
        for line in iter(proc.stdout.readline, ""):
            if line.startswith("ready "):
                folder = Path(line.split(" ", 1)[1].strip())
                break
        assert folder is not None
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    return folder


@pytest.mark.slow
def test_a_killed_run_is_recovered_with_its_archive(tmp_path: Path) -> None:
    folder = _killed_run(tmp_path)
    before = json.loads((folder / "run.json").read_text())
    assert before["status"] == "running"
    (empty,) = (folder / "comet").glob("*.zip")
    assert not crashes.archive_ok(empty)  # Comet writes the archive only when it ends

    message = tracking.recover(folder)
    assert "recovered run crash" in message and "2 image(s)" in message
    record_ = tracking.load_record(folder)
    assert record_["status"] == "finished" and record_["recovered"] >= record_["started"]
    archive = folder / record_["comet_archive"]
    assert archive.name == f"{before['comet_key']}.zip"  # the same Comet experiment
    messages = _messages(archive)
    uploads = [m["payload"] for m in messages if m["type"] == "file_upload"
               and m["payload"]["upload_type"] == "visualization"]
    assert len(uploads) == 2
    with zipfile.ZipFile(archive) as z:
        assert all(u["file_path"] in z.namelist() for u in uploads)
        tags = json.loads(z.read("experiment.json"))["tags"]
    assert "t1" in tags and "best:cat" in tags
    params = json.dumps([m for m in messages if m["type"] == "parameter_msg"])
    assert '"prompt"' in params and "a cup" in params
    assert any(m["type"] == "metric_msg" and m["payload"]["metric"]["metricName"] == "loss"
               for m in messages)
    layers = [[a["name"] for a in (u["metadata"] or {}).get("annotations") or []]
              for u in uploads]
    assert sorted(layers) == [[], ["prompt points"]]
    assert tracking.best(runs=[folder]).name == "cat"  # type: ignore[union-attr]
    assert "already ended" in tracking.recover(folder)


@pytest.mark.slow
def test_comet_reads_a_recovered_archive(tmp_path: Path) -> None:
    folder = _killed_run(tmp_path, "read-back")
    tracking.recover(folder)
    (archive,) = (folder / "comet").glob("*.zip")
    comet = Path(sys.executable).with_name("comet")
    out = subprocess.run([str(comet), "offline", "--csv", str(archive)], capture_output=True,
                         text=True, timeout=120,
                         env=os.environ | {"COMET_DISABLE_AUTO_LOGGING": "1"})
    assert out.returncode == 0, out.stderr
    assert '"param","prompt","a cup"' in out.stdout
    assert out.stdout.count('"file_upload","visualization"') == 2


@pytest.mark.slow
def test_the_next_start_of_the_project_recovers_a_killed_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _killed_run(tmp_path, "again")
    run = tracking.start("again", online=False)
    out = capsys.readouterr().out
    assert "Recovered run crash of project again" in out and "comet upload" in out
    assert tracking.load_record(folder)["status"] == "finished"
    run.end()
    other = tracking.start("again", online=False)  # nothing left to recover: no notice
    assert "Recovered" not in capsys.readouterr().out
    other.end()


def test_a_run_still_alive_is_not_recovered(tmp_path: Path) -> None:
    run = tracking.start("alive", online=False)
    run.log_params({"seed": 1})
    with pytest.raises(RuntimeError, match="still being written by process"):
        tracking.recover(run.folder)
    assert crashes.crashed(run.folder.parent, skip=[run.id]) == []
    assert json.loads((run.folder / "run.json").read_text())["status"] == "running"
    run.end()


def test_a_pick_after_a_cut_last_line_is_kept(tmp_path: Path) -> None:
    run = tracking.start("cut", online=False)
    run.log_image(images.sample("coffee"), "cup")
    run.log_image(images.sample("chelsea"), "cat")
    folder = run.folder
    run._comet_closed = True  # as if the process had died: nothing more from it
    tracking.run._ACTIVE.pop("cut")
    with open(folder / "events.jsonl", "ab") as fh:  # the crash cut its last line short
        fh.write(b'{"type": "metrics", "metrics": [{"name": "lo')
    entry = widgets.gallery(runs=[folder]).entries[0]
    assert "still running elsewhere" in tracking.pick(entry)
    picked = tracking.best(runs=[folder])
    assert picked is not None and picked.name == "cup"
    lines = (folder / "events.jsonl").read_bytes().splitlines()
    assert lines[-4].startswith(b'{"type": "metrics"')  # the cut line stays cut...
    assert json.loads(lines[-3])["type"] == "pick"  # ...and the pick has a line of its own


# ---------------------------------------------------------------- full and read-only disks

@contextlib.contextmanager
def _small_disk(size: str) -> Iterator[Path | None]:
    """A tmpfs of ``size`` mounted for the test, or None where none can be mounted."""
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("mount"):
        yield None
        return
    point = Path("/tmp") / f"helpers-disk-{uuid.uuid4().hex[:8]}"
    point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(point)], capture_output=True).returncode == 0
    try:
        yield point if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(point)], capture_output=True)
        with contextlib.suppress(OSError):
            point.rmdir()


def _remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True)


def _listed_and_on_disk(folder: Path) -> tuple[list[str], list[str]]:
    listed = [i["file"] for i in tracking.load_record(folder)["images"]]
    on_disk = sorted(p.relative_to(folder).as_posix() for p in (folder / "images").iterdir())
    return listed, on_disk


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_full_disk_keeps_what_was_logged_and_end_finishes_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = images.sample("coffee")  # about 0.45 MB as a PNG
    with _small_disk("3m") as disk:
        if disk is None:  # simulate: the third image's write finds the disk full
            real = record.write_bytes
            calls = {"n": 0}

            def full(path: Path, data: bytes) -> None:
                if path.suffix == ".png":
                    calls["n"] += 1
                    if calls["n"] >= 3 and not calls.get("freed"):
                        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                real(path, data)

            monkeypatch.setattr(record, "write_bytes", full)
        run = tracking.start("full", online=False, directory=disk or tmp_path / "runs")
        logged = 0
        with pytest.raises(tracking.RecordWriteError) as err:
            for k in range(20):
                run.log_image(photo, f"cup {k}")
                logged += 1
        text = str(err.value)
        assert "No space left" in text and "Free some space" in text
        assert f"({logged} image(s)" in text and "call it again" in text
        listed, on_disk = _listed_and_on_disk(run.folder)
        assert listed == on_disk and len(listed) == logged >= 2  # no orphan, no 0-byte PNG
        assert all((run.folder / f).stat().st_size > 0 for f in on_disk)
        assert [f.split("-")[0] for f in listed] == [f"images/{i:04d}" for i in
                                                     range(1, logged + 1)]
        if disk is not None:
            with pytest.raises(tracking.RecordWriteError, match="Free some space"):
                run.end()
            assert json.loads((run.folder / "run.json").read_text())["status"] == "running"
            assert not run.ended
            with pytest.raises(RuntimeError, match=r"call run.end\(\) again"):
                run.log_params({"late": 1})
            _remount(disk, "size=40m")  # space freed
        else:
            calls["freed"] = True
            run.log_image(photo, "after")  # the run is still open and numbering goes on
            logged += 1
        run.end()
        final = tracking.load_record(run.folder)
        assert final["status"] == "finished" and len(final["images"]) == logged
        assert crashes.archive_ok(run.folder / final["comet_archive"])
        uploads = [m for m in _messages(run.folder / final["comet_archive"])
                   if m["type"] == "file_upload"]
        assert len(uploads) == logged


def test_a_read_only_disk_is_one_clear_message(tmp_path: Path) -> None:
    photo = images.sample("chelsea")
    with _small_disk("20m") as disk:
        root = disk or tmp_path / "runs"
        run = tracking.start("read-only", online=False, directory=root)
        run.log_image(photo, "first")
        if disk is not None:
            _remount(disk, "ro")
        elif os.geteuid() == 0:
            pytest.skip("root writes to a folder made unwritable; no tmpfs could be mounted")
        else:
            os.chmod(run.folder / "images", 0o555)
            os.chmod(run.folder, 0o555)
        try:
            for call in (lambda: run.log_image(photo, "second"),
                         lambda: run.log_params({"seed": 3}),
                         run.end, run.end):
                with pytest.raises(tracking.RecordWriteError) as err:
                    call()
                assert "writable" in str(err.value) and "(1 image(s)" in str(err.value)
            assert not run.ended
        finally:
            if disk is not None:
                _remount(disk, "rw")
            else:
                os.chmod(run.folder, 0o755)
                os.chmod(run.folder / "images", 0o755)
        listed, on_disk = _listed_and_on_disk(run.folder)
        assert listed == on_disk == ["images/0001-first.png"]
        run.end()
        assert tracking.load_record(run.folder)["status"] == "finished"


def test_a_damaged_run_among_good_ones_is_named_and_the_rest_read(tmp_path: Path) -> None:
    good = []
    for name in ("one", "two"):
        run = tracking.start("mixed", name=name, online=False)
        run.log_image(images.sample("coffee"), name)
        run.end()
        good.append(run.folder)
    bad = tracking.start("mixed", name="bad", online=False)
    bad.log_image(images.sample("chelsea"), "bad")
    bad.end()
    (bad.folder / "run.json").write_bytes(b'{"id": "cut sh')
    with pytest.warns(UserWarning, match=f"left out '{bad.folder}'.*damaged"):
        names = [e.name for e in tracking.logged_images("mixed")]
    assert names == ["one", "two"]
    assert (bad.folder / "images" / "0001-bad.png").is_file()  # nothing deleted


# ---------------------------------------------------------------- recovery's corners

def _as_if_killed(run: tracking.Run) -> Path:
    """``run`` left as a killed process leaves it: Comet never ends, run.json says running."""
    folder = run.folder
    tracking.run._ACTIVE.pop(run.project)
    run.experiment.end()  # Comet's experiment goes (a dead process holds none)...
    for archive in (folder / "comet").glob("*.zip"):
        archive.write_bytes(b"")  # ...and leaves no archive
    crashes.OWN_RUNS.discard(run.id)  # a process with this pid that is not this one
    return folder


def test_recover_refuses_while_this_kernel_has_a_run_open(tmp_path: Path) -> None:
    dead = tracking.start("dead", online=False)
    dead.log_params({"seed": 1})
    folder = _as_if_killed(dead)
    open_run = tracking.start("other", online=False)
    open_run.log_metrics({"loss": 1.0})
    with pytest.raises(RuntimeError, match=r"end that run first \(run.end\(\)\)"):
        tracking.recover(folder)
    open_run.log_metrics({"loss": 0.5})
    open_run.end()
    losses = [m["payload"]["metric"]["metricValue"] for m in _messages(open_run.archive)
              if m["type"] == "metric_msg"]
    assert losses == [1.0, 0.5]  # the open run's archive lost nothing
    assert "recovered run" in tracking.recover(folder)  # and now it works


def test_a_run_of_an_earlier_process_with_this_pid_is_recovered(tmp_path: Path) -> None:
    dead = tracking.start("same-pid", online=False)
    dead.log_image(images.sample("coffee"), "cup")
    folder = _as_if_killed(dead)
    assert json.loads((folder / "run.json").read_text())["process"]["pid"] == os.getpid()
    assert "recovered run" in tracking.recover(folder)
    assert crashes.archive_ok(folder / tracking.load_record(folder)["comet_archive"])


def test_an_unreadable_image_is_left_out_and_a_failed_rebuild_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = tracking.start("partial", online=False)
    dead.log_image(images.sample("coffee"), "cup")
    dead.log_image(images.sample("chelsea"), "cat")
    dead.log_metrics({"loss": 0.25}, step=4)
    folder = _as_if_killed(dead)
    cut = folder / "images" / "0001-cup.png"
    cut.write_bytes(cut.read_bytes()[:200])  # a PNG cut short

    def interrupted(*args: Any, **kwargs: Any) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(crashes, "_replay", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tracking.recover(folder)
    assert sorted(p.name for p in (folder / "comet").iterdir()) == [
        p.name for p in (folder / "comet").glob("*.zip")]  # no staging folder left
    assert not any(crashes.archive_ok(p) for p in (folder / "comet").glob("*.zip"))
    monkeypatch.undo()
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    with pytest.warns(UserWarning, match="lacks 1 logged image"):
        tracking.recover(folder)
    archive = folder / tracking.load_record(folder)["comet_archive"]
    messages = _messages(archive)
    assert sum(m["type"] == "file_upload" and m["payload"]["upload_type"] == "visualization"
               for m in messages) == 1
    assert any(m["type"] == "metric_msg" and m["payload"]["metric"]["step"] == 4
               for m in messages)
    assert list((folder / "comet").glob("*.damaged"))  # the empty one, kept beside it


def test_records_keep_the_usual_file_permissions(tmp_path: Path) -> None:
    if os.name == "nt":
        pytest.skip("POSIX permissions")
    mask = os.umask(0o022)
    try:
        run = tracking.start("modes", online=False)
        run.log_image(images.sample("coffee"), "cup")
        run.end()
    finally:
        os.umask(mask)
    for path in (run.folder / "run.json", run.folder / "images" / "0001-cup.png"):
        assert path.stat().st_mode & 0o777 == 0o644, path
