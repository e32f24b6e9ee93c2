"""Clips: the frames of a video, from a file (decoded by PyAV's own FFmpeg), a folder of frames,
a list of images or an array, checked before any model sees them (one size, at least one
frame, at most ``MAX_FRAMES``), and the course's sample clips (``data/clips``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from helpers import checks, images

if TYPE_CHECKING:
    from PIL import Image

MAX_FRAMES = 300
"""The most frames one clip may have (after ``every``): 10 s at 30 fps."""
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class Clip:
    """Frames of one video, all of one size, with their frame rate.

    Attributes:
        frames: RGB ``PIL`` images.
        fps: frames per second (after ``every``), used to play the clip back.
        source: where the frames came from, for messages and records.
    """

    frames: list[Image.Image]
    fps: float = 10.0
    source: str = "frames"

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Image.Image]:
        return iter(self.frames)

    def __getitem__(self, i: int) -> Image.Image:
        return self.frames[i]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of every frame."""
        return self.frames[0].size

    def __repr__(self) -> str:
        w, h = self.size
        return f"Clip({len(self)} frames of {w}x{h} at {self.fps:g} fps from {self.source})"


def _decode(path: Path, every: int, max_frames: int) -> Clip:
    """A video file's frames through PyAV (its own FFmpeg), every ``every``-th one."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError, OSError) as err:
        raise ValueError(f"{str(path)!r} is not a video PyAV can read ({err}); give an MP4, "
                         "WebM, MOV or GIF file, a folder of frames or a list of images"
                         ) from None
    frames: list[Image.Image] = []
    with container:
        if not container.streams.video:
            raise ValueError(f"{str(path)!r} has no video stream (an audio file?); give a "
                             "video, a folder of frames or a list of images")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 0) or 10.0
        try:
            for i, frame in enumerate(container.decode(video=0)):
                if i % every:
                    continue
                if len(frames) == max_frames:
                    raise ValueError(
                        f"{str(path)!r} has more than {max_frames} frames (every={every}): "
                        f"pass every={every * 2} (or more) to keep fewer, or max_frames= up "
                        "to what your memory holds (about 2 MB a frame)")
                if i == 0:
                    images.check_pixels(frame.width, frame.height, f"a frame of {path.name}")
                frames.append(frame.to_image().convert("RGB"))
        except av.error.FFmpegError as err:
            if not frames:
                raise ValueError(f"{str(path)!r} could not be decoded ({err}); is it a "
                                 "video?") from None
    return Clip(frames, rate / every, str(path))


def load_clip(source: Any, *, every: int = 1, max_frames: int = MAX_FRAMES,
              fps: float | None = None) -> Clip:
    """Frames to track, from a video file, a folder of frames, a list of images (anything
    ``images.load`` takes) or a ``Clip``.

    Args:
        every: keep every n-th frame (1: all).
        max_frames: refuse a clip with more frames than this (after ``every``).
        fps: the frame rate of a folder or list (default 10); a file says its own.

    Raises:
        FileNotFoundError: no such file or folder.
        ValueError: not a video, no frames, frames of different sizes, more than
            ``max_frames`` frames, or a frame above the pixel budget; before any model runs.
    """
    every = checks.integer("every", every, 1, 10_000)
    max_frames = checks.integer("max_frames", max_frames, 1, 100_000)
    if fps is not None:
        fps = checks.number("fps", fps, 0.01, 1000)
    if isinstance(source, Clip):
        clip = Clip(source.frames[::every], source.fps / every, source.source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"no video or folder {str(path)!r}")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
            if not files:
                raise ValueError(f"the folder {str(path)!r} holds no frames (files ending in "
                                 f"{', '.join(FRAME_SUFFIXES)})")
            files = files[::every]
            _check_count(len(files), max_frames, every, f"the folder {str(path)!r}")
            clip = Clip([images.load(p) for p in files], fps or 10.0, str(path))
        else:
            clip = _decode(path, every, max_frames)
    elif isinstance(source, np.ndarray) and source.ndim == 4:
        clip = Clip([images.from_array(f) for f in source[::every]], fps or 10.0, "an array")
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        picked = list(source)[::every]
        _check_count(len(picked), max_frames, every, "the list of frames")
        clip = Clip([images.load(f) for f in picked], fps or 10.0, "a list of frames")
    else:
        raise ValueError(f"frames {source!r:.80} must be a video file, a folder of frames, a "
                         "list of images or a (T, H, W, 3) array")
    if not len(clip):
        raise ValueError(f"{clip.source} has no frames; a clip needs at least one")
    _check_count(len(clip), max_frames, every, clip.source)
    sizes = {f.size for f in clip.frames}
    if len(sizes) > 1:
        first, other = clip.frames[0].size, next(s for s in sizes if s != clip.frames[0].size)
        raise ValueError(f"the frames of {clip.source} differ in size ({first[0]}x{first[1]} "
                         f"and {other[0]}x{other[1]}); resize them to one size first")
    return clip


def _check_count(n: int, max_frames: int, every: int, what: str) -> None:
    if n > max_frames:
        raise ValueError(f"{what} has {n} frames (every={every}), more than max_frames="
                         f"{max_frames}: pass every={math.ceil(n * every / max_frames)} to keep "
                         "fewer, or raise max_frames as far as your memory allows "
                         "(about 2 MB a frame)")


def clip_manifest() -> dict[str, dict[str, Any]]:
    """The sample clips' records by name (``data/clips/manifest.json``): file, size, frames,
    fps, licence, SHA-256, and where the cup is in the first frame."""
    import json

    path = images.data_dir() / "clips" / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no clip manifest at {path}; the data/clips folder is "
                                "missing from this checkout")
    return {c["name"]: c for c in json.loads(path.read_text(encoding="utf-8"))["clips"]}


def sample_clip(name: str, *, every: int = 1) -> Clip:
    """One of the course's clips by name (``coffee-pan``, ``coffee-occluded``)."""
    entries = clip_manifest()
    if name not in entries:
        raise ValueError(f"unknown sample clip {name!r}; the clips are "
                         f"{', '.join(map(repr, sorted(entries)))}")
    return load_clip(images.data_dir() / "clips" / entries[name]["file"], every=every)
