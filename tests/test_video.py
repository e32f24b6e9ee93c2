"""video: one click on a frame -> a mask in every frame, with SAM 2's video model.

The tiny SAM 2 video model is loaded through the real loader. Tracking is checked against
transformers' own offline path (the whole clip in one session, ``propagate_in_video_iterator``),
and the prompts are captured where they enter the model, on landscape and portrait clips.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import models, tiny, video


def moving_square(n: int = 6, width: int = 320, height: int = 200) -> list[Image.Image]:
    """A red square moving right 30 px a frame, on a blue background."""
    frames = []
    for t in range(n):
        a = np.zeros((height, width, 3), np.uint8)
        a[:] = (30, 60, 90)
        x = 40 + 30 * t
        a[height // 2 - 25:height // 2 + 25, x:x + 50] = (250, 50, 50)
        frames.append(Image.fromarray(a))
    return frames


@pytest.fixture(scope="module")
def seg() -> video.VideoSegmenter:
    return video.VideoSegmenter.from_pretrained("tiny", device="cpu")


def test_the_tiny_model_loads_through_the_real_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    found = video.VideoSegmenter.from_pretrained(device="cpu")  # "sam2.1-tiny", swapped
    assert found.name == "tiny-sam2-video" and Path(found.loaded.path) == tiny.folder_for(
        "sam2-video")
    assert type(found.model).__name__ == "Sam2VideoModel" and found.side == 128
    spec = models.REGISTRY["sam2.1-tiny"]
    assert spec.source == "facebook/sam2.1-hiera-tiny" and spec.family == "sam2-video"


@pytest.mark.parametrize(("width", "height"), [(320, 200), (200, 320)])
def test_masks_follow_each_frame_and_equal_transformers_offline(
        seg: video.VideoSegmenter, width: int, height: int) -> None:
    frames = moving_square(6, width, height)
    point = (65.0, height / 2)
    track = seg.track(frames, points=[point])
    assert len(track) == 6 and track.objects == ["object"]
    for d in track:
        assert d.masks is not None and d.masks.shape == (1, height, width)
        assert d.labels == ["object"]
    # transformers alone: the whole clip in one session, propagated offline
    session = seg.processor.init_video_session(video=frames, inference_device="cpu")
    seg.processor.add_inputs_to_inference_session(
        inference_session=session, frame_idx=0, obj_ids=1, input_points=[[[list(point)]]],
        input_labels=[[[1]]])
    with torch.inference_mode():
        for out in seg.model.propagate_in_video_iterator(session, start_frame_idx=0):
            want = seg.processor.post_process_masks(
                [out.pred_masks], original_sizes=[[height, width]], binarize=True)[0][0, 0]
            got = track[out.frame_idx]
            assert np.array_equal(got.masks[0], want.numpy())  # type: ignore[index]
            score = torch.sigmoid(out.object_score_logits.float()).item()
            assert got.scores[0] == pytest.approx(score, abs=1e-6)
    ys, xs = np.nonzero(track[2].masks[0])  # type: ignore[index]
    if len(xs):  # the box is the mask's bounding box, in the frame's pixels
        assert track[2].xyxy[0].tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize(("width", "height"), [(320, 200), (200, 320)])
def test_prompts_reach_the_model_in_its_square(seg: video.VideoSegmenter, width: int,
                                               height: int) -> None:
    got: list[tuple[Any, Any]] = []

    def spy(module: Any, args: Any, kwargs: Any) -> None:
        if kwargs.get("input_points") is not None:
            got.append((kwargs["input_points"].clone(), kwargs["input_labels"].clone()))

    hook = seg.model.prompt_encoder.register_forward_pre_hook(spy, with_kwargs=True)
    try:
        seg.track(moving_square(2, width, height), points=[(100, 50)], box=[10, 20, 110, 60])
    finally:
        hook.remove()
    points, labels = got[0]
    s = seg.side
    sx, sy = s / width, s / height  # each axis on its own: the frame is squashed to a square
    expected = [[10 * sx, 20 * sy], [110 * sx, 60 * sy], [100 * sx, 50 * sy]]  # box corners first
    assert np.allclose(points.reshape(-1, 2).numpy(), expected, atol=1e-4)
    assert labels.flatten().tolist() == [2, 3, 1]


def test_a_correction_changes_later_frames_only(seg: video.VideoSegmenter) -> None:
    frames = moving_square(6)
    track = seg.track(frames, points=[(65, 100)])
    fixed = track.correct(3, points=[(155, 100), (300, 20)], labels=[1, 0])
    assert sorted(fixed.prompts) == [0, 3] and sorted(track.prompts) == [0]
    for i in range(3):
        assert np.array_equal(fixed[i].masks, track[i].masks)  # type: ignore[arg-type]
    assert any(not np.array_equal(fixed[i].masks, track[i].masks)  # type: ignore[arg-type]
               for i in range(3, 6))
    with pytest.raises(ValueError, match="corrected already"):
        track.correct(4, points=[(10, 10)])
    with pytest.raises(ValueError, match=r"frame 1 is before this track's latest prompt"):
        fixed.correct(1, points=[(10, 10)])
    again = fixed.correct(5, points=[(250, 100)])  # forward in time: fine
    assert all(np.array_equal(again[i].masks, fixed[i].masks)  # type: ignore[arg-type]
               for i in range(5))


def test_objects_keep_their_rows_and_labels(seg: video.VideoSegmenter) -> None:
    frames = moving_square(5)
    track = seg.track(frames, objects={"square": {"points": [(65, 100)]},
                                       "background": {"points": [(300, 20)], "labels": [1]}})
    assert track.objects == ["square", "background"]
    assert all(d.labels == ["square", "background"] and d.masks.shape == (2, 200, 320)  # type: ignore[union-attr]
               for d in track)
    assert track.masks("background").shape == (5, 200, 320)
    # a new object on a later frame gets the next row; before it, an empty mask
    more = track.correct(2, points=[(160, 100)], object="late")
    assert more.objects == ["square", "background", "late"]
    assert more[0].masks.shape == (2, 200, 320) and more[4].masks.shape == (3, 200, 320)  # type: ignore[union-attr]
    assert more[2].labels == ["square", "background", "late"]


def test_frames_before_the_prompt_are_empty(seg: video.VideoSegmenter) -> None:
    track = seg.track(moving_square(5), points=[(125, 100)], frame=2)
    assert [int(d.masks.sum()) for d in track[:2]] == [0, 0]  # type: ignore[union-attr]
    assert track[0].scores.tolist() == [0.0] and track[0].xyxy.tolist() == [[0, 0, 0, 0]]
    assert track[2].masks.sum() > 0  # type: ignore[union-attr]


def test_what_the_model_no_longer_reads_is_dropped(seg: video.VideoSegmenter) -> None:
    track = seg.track(moving_square(4), points=[(65, 100)])
    session = track._session
    assert not getattr(session, "processed_frames", None)
    stored = [out for per_object in session.output_dict_per_obj.values()
              for store in per_object.values() for out in store.values()]
    assert len(stored) == 4 and not any("high_res_masks" in out for out in stored)
    assert all("maskmem_features" in out for out in stored)  # the memory stays


# ---------------------------------------------------------------- where frames come from

def write_mp4(frames: list[Image.Image], path: Path, fps: int = 8) -> Path:
    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].size
        stream.pix_fmt = "yuv420p"
        for im in frames:
            for packet in stream.encode(av.VideoFrame.from_image(im)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_frames_from_a_file_a_folder_a_list_and_an_array(tmp_path: Path) -> None:
    frames = moving_square(6)
    clip = video.load_clip(write_mp4(frames, tmp_path / "square.mp4"))
    assert len(clip) == 6 and clip.size == (320, 200) and clip.fps == pytest.approx(8)
    assert np.abs(np.asarray(clip[3], np.int16) - np.asarray(frames[3], np.int16)).mean() < 8
    half = video.load_clip(tmp_path / "square.mp4", every=2)
    assert len(half) == 3 and half.fps == pytest.approx(4)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):
        f.save(folder / f"{i:03d}.png")
    (folder / "notes.txt").write_text("not a frame")
    from_folder = video.load_clip(folder, fps=12)
    assert len(from_folder) == 6 and from_folder.fps == 12
    assert np.array_equal(np.asarray(from_folder[5]), np.asarray(frames[5]))
    assert len(video.load_clip(np.stack([np.asarray(f) for f in frames]))) == 6
    assert len(video.load_clip(video.load_clip(frames), every=3)) == 2


@pytest.mark.parametrize(("make", "error"), [
    (lambda p: p.write_text("just text\n") or p, r"is not a video PyAV can read"),
    (lambda p: p.write_bytes(b"") or p, r"is not a video PyAV can read"),
])
def test_a_file_that_is_not_a_video_is_named(tmp_path: Path, make: Any, error: str) -> None:
    path = tmp_path / "clip.mp4"
    make(path)
    with pytest.raises(ValueError, match=error):
        video.load_clip(path)


@pytest.mark.parametrize(("call", "error"), [
    (lambda s, f: s.track([], points=[(1, 1)]), r"no frames; a clip needs at least one"),
    (lambda s, f: s.track(f, points=[(1, 1)], frame=6), r"frame 6 is past the end: this clip "
                                                        r"has 6 frames \(0..5\)"),
    (lambda s, f: s.track(f, points=[(320, 10)]), r"point 0 \(320, 10\) is outside the "
                                                  r"320x200 frame"),
    (lambda s, f: s.track(f, points=[(10, -1)]), r"is outside the 320x200 frame"),
    (lambda s, f: s.track(f, points=[(10, 10)], labels=[1, 0]), r"2 labels for 1 points"),
    (lambda s, f: s.track(f, points=[(10, 10)], labels=[2]), r"label 0"),
    (lambda s, f: s.track(f, box=[50, 10, 20, 40]), r"box \[50, 10, 20, 40\] must have x1 < x2"),
    (lambda s, f: s.track(f), r"give points=\[\(x, y\)\]"),
    (lambda s, f: s.track(f, points=[(1, 1)], objects={"a": {"points": [(1, 1)]}}),
     r"not both"),
    (lambda s, f: s.track(f, objects={"a": {"point": [(1, 1)]}}), r"object 'a'"),
    (lambda s, f: s.track(f, objects={"a": {"box": [1, 1, 9, 9]}, "b": {"points": [(5, 5)]}}),
     r"give every object a box on this frame, or none"),
    (lambda s, f: s.track(f[:3] + [f[3].resize((100, 100))], points=[(1, 1)]),
     r"differ in size \(320x200 and 100x100\)"),
    (lambda s, f: s.track(f, points=[(1, 1)], max_frames=4), r"has 6 frames \(every=1\), more "
                                                             r"than max_frames=4: pass every=2"),
    (lambda s, f: s.track(f, points=[(1, 1)], every=0), r"every"),
    (lambda s, f: s.track("nowhere.mp4", points=[(1, 1)]), r"no video or folder"),
])
def test_bad_input_is_refused_before_the_model_runs(seg: video.VideoSegmenter, call: Any,
                                                    error: str) -> None:
    frames = moving_square(6)
    before = seg.frames_run
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        call(seg, frames)
    assert seg.frames_run == before  # refused before any frame ran


def test_a_bad_correction_is_refused_before_the_model_runs(seg: video.VideoSegmenter) -> None:
    track = seg.track(moving_square(4), points=[(65, 100)])
    before = seg.frames_run
    for kwargs, error in (({"frame": 9, "points": [(1, 1)]}, r"frame 9 is past the end"),
                          ({"frame": 2, "points": [(400, 1)]}, r"is outside the 320x200"),
                          ({"frame": 2}, r"give points"),
                          ({"frame": 2, "points": [(1, 1)], "object": ""}, r"object ''")):
        with pytest.raises(ValueError, match=error):
            track.correct(**kwargs)
    assert seg.frames_run == before
    assert track.correct(2, points=[(100, 100)])  # the track is still usable


def test_an_empty_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"holds no frames"):
        video.load_clip(tmp_path)
