"""A video as the prompt's canvas: click once on a frame, and SAM 2 follows the object.

``VideoSegmenter.track(clip, points=[(x, y)])`` returns a ``Track``: one ``Detections`` per
frame, each with one row per object (in the order the objects were first prompted, so an
object keeps its row and its label in every frame), its box (the mask's bounding box), its
score (SAM 2's "the object is visible" probability) and its mask in that frame's pixels.
``track.correct(frame, points=...)`` adds a click on a later frame where the mask drifted;
frames before it stay exactly as they were.

How prompts reach the model. SAM 2's processor squashes every frame to a square (1024x1024
in the released models, without keeping the aspect ratio) and scales a point's x by
side / width and its y by side / height; the masks come back as low-resolution logits of
that square, which ``post_process_masks`` resizes to each frame's size. Points and boxes are
given here in pixels of the original frames, as everywhere in the course.

Memory. Frames are fed to the model one at a time ("streaming"), each squashed just before
its turn, and what the model no longer reads (the squashed frame, the full-size mask
logits) is dropped after it. What stays per frame and object is the model's memory of it
(about 1.75 MB with the released models), and the decoded frames themselves. A clip is
refused beyond ``MAX_FRAMES`` frames (``every=`` keeps every n-th frame).

Corrections follow SAM 2's own recipe: the click is added on its frame, and tracking runs
again from there. They go forward in time: a correction before an earlier one needs a new
``track`` (SAM 2 would otherwise recompute the later corrected frame without its click).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from helpers import checks, models
from helpers.clips import (  # noqa: F401  (re-exported: a clip is what video tracks)
    MAX_FRAMES,
    Clip,
    clip_manifest,
    load_clip,
    sample_clip,
)
from helpers.detections import Detections

FAMILIES = ("sam2-video",)

# ---------------------------------------------------------------- prompts

@dataclass
class _Prompt:
    """One object's prompts on one frame, in original pixels."""

    points: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: list[float] | None = None


def _prompt(points: Any, labels: Any, box: Any, size: tuple[int, int], where: str) -> _Prompt:
    """``points``/``labels``/``box`` checked against a frame of ``size`` (width, height)."""
    w, h = size
    pts: list[list[float]] = []
    if points is not None:
        arr = np.asarray(points, dtype=object)
        rows = [points] if arr.ndim == 1 and len(arr) == 2 and not isinstance(
            points[0], (list, tuple, np.ndarray)) else list(points)
        for i, p in enumerate(rows):
            if not isinstance(p, (list, tuple, np.ndarray)) or len(p) != 2:
                raise ValueError(f"{where}: point {i} {p!r:.40} must be (x, y) pixels")
            x = checks.number(f"{where}: point {i} x", p[0])
            y = checks.number(f"{where}: point {i} y", p[1])
            if not (0 <= x < w and 0 <= y < h):
                raise ValueError(f"{where}: point {i} ({x:g}, {y:g}) is outside the {w}x{h} "
                                 f"frame; x must be in [0, {w}) and y in [0, {h})")
            pts.append([x, y])
    if labels is None:
        labs = [1] * len(pts)
    else:
        given = list(np.asarray(labels).reshape(-1))
        if len(given) != len(pts):
            raise ValueError(f"{where}: {len(given)} labels for {len(pts)} points; give one "
                             "per point: 1 = this object, 0 = not this object")
        labs = [checks.integer(f"{where}: label {i}", v, 0, 1, hint="1 include, 0 exclude")
                for i, v in enumerate(given)]
    bx = None
    if box is not None:
        values = list(np.asarray(box, dtype=object).reshape(-1))
        if len(values) != 4:
            raise ValueError(f"{where}: box {box!r:.60} must be [x1, y1, x2, y2] pixels")
        x1, y1, x2, y2 = (checks.number(f"{where}: box", v) for v in values)
        if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
            raise ValueError(f"{where}: box [{x1:g}, {y1:g}, {x2:g}, {y2:g}] must have x1 < x2 "
                             f"and y1 < y2 inside the {w}x{h} frame")
        bx = [x1, y1, x2, y2]
    if not pts and bx is None:
        raise ValueError(f"{where}: give points=[(x, y)] (with labels) or a box=[x1, y1, x2, y2]")
    return _Prompt(pts, labs, bx)


def _objects(points: Any, labels: Any, box: Any, objects: Any, size: tuple[int, int],
             frame: int) -> dict[str, _Prompt]:
    """label -> prompt, from one object's ``points``/``labels``/``box`` or from ``objects``
    (a dict label -> {"points": ..., "labels": ..., "box": ...})."""
    if objects is None:
        return {"object": _prompt(points, labels, box, size, f"frame {frame}")}
    if points is not None or labels is not None or box is not None:
        raise ValueError("give either points/labels/box for one object or objects={...} for "
                         "several, not both")
    if not isinstance(objects, Mapping) or not objects:
        raise ValueError(f"objects {objects!r:.60} must be a non-empty dict: label -> "
                         "{'points': [(x, y)], 'labels': [1], 'box': [x1, y1, x2, y2]}")
    found = {}
    for label, spec in objects.items():
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"object label {label!r} must be a non-empty string such as 'cup'")
        if not isinstance(spec, Mapping) or set(spec) - {"points", "labels", "box"}:
            raise ValueError(f"object {label!r}: {spec!r:.60} must be a dict with points, "
                             "labels and/or box")
        found[label] = _prompt(spec.get("points"), spec.get("labels"), spec.get("box"), size,
                               f"frame {frame}, object {label!r}")
    return found


def _check_boxes(frame: int, prompts: Mapping[str, _Prompt]) -> list[bool]:
    """Which objects of one frame have a box: all of them or none, as SAM 2 takes them."""
    with_box = [p.box is not None for p in prompts.values()]
    if any(with_box) and not all(with_box):
        raise ValueError(f"frame {frame}: give every object a box on this frame, or none "
                         "(SAM 2 takes boxes for all the objects of a frame or for none)")
    return with_box


# ---------------------------------------------------------------- tracking

class Track(Sequence[Detections]):
    """What ``VideoSegmenter.track`` found: one ``Detections`` per frame of ``clip``.

    Row i of every frame's ``Detections`` is object ``objects[i]`` (its label), in the order
    the objects were first prompted. A frame before an object's first prompt, or where
    SAM 2 lost it, has an empty mask (box [0, 0, 0, 0]) for it and a low score.

    Attributes:
        clip: the frames tracked.
        objects: the objects' labels, in row order.
        prompts: frame -> {label: the prompts given on it}, in original pixels.
    """

    def __init__(self, segmenter: VideoSegmenter, clip: Clip, objects: list[str],
                 prompts: dict[int, dict[str, _Prompt]], frames: list[Detections],
                 session: Any) -> None:
        self.segmenter = segmenter
        self.clip = clip
        self.objects = objects
        self.prompts = prompts
        self._frames = frames
        self._session = session

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, i: Any) -> Any:
        return self._frames[i]

    def masks(self, label: str | None = None) -> np.ndarray:
        """(T, H, W) bool: one object's mask in every frame (default: the first object)."""
        label = self.objects[0] if label is None else label
        if label not in self.objects:
            raise ValueError(f"no object {label!r} in this track; it has "
                             f"{', '.join(map(repr, self.objects))}")
        row = self.objects.index(label)
        return np.stack([d.masks[row] for d in self._frames])  # type: ignore[index]

    def correct(self, frame: int, points: Any = None, labels: Any = None, box: Any = None, *,
                object: str | None = None) -> Track:
        """A new ``Track`` with a correction on ``frame``: the click(s) or box are added to
        ``object``'s prompts there (default: the first object; a new label starts a new
        object), and tracking runs again from ``frame`` to the end. Frames before it are
        the same as in this track.

        Raises:
            ValueError: a bad frame, point or box, before the model runs; or a frame before
                this track's latest prompt (track again, with the corrections in time
                order); or a track that was corrected already (correct the newest one).
        """
        frame = checks.integer("frame", frame, 0, hint=f"a frame index of 0..{len(self) - 1}")
        if frame >= len(self):
            raise ValueError(f"frame {frame} is past the end: this clip has {len(self)} frames "
                             f"(0..{len(self) - 1})")
        if self._session is None:
            raise ValueError("this track was corrected already; correct the track that "
                             "correct() returned")
        last = max(self.prompts)
        if frame < last:
            raise ValueError(f"frame {frame} is before this track's latest prompt (frame "
                             f"{last}): SAM 2 corrects forward in time. Track again and give "
                             "the corrections in time order")
        label = self.objects[0] if object is None else object
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"object {label!r} must be a label such as 'cup'")
        new = _prompt(points, labels, box, self.clip.size, f"frame {frame}, object {label!r}")
        prompts = {k: dict(v) for k, v in self.prompts.items()}
        given = prompts.setdefault(frame, {})
        if label in given:  # more clicks on a frame that already has some for this object
            old = given[label]
            new = _Prompt(old.points + new.points, old.labels + new.labels,
                          new.box if new.box is not None else old.box)
        given[label] = new
        _check_boxes(frame, given)
        objects = self.objects + ([label] if label not in self.objects else [])
        session, self._session = self._session, None
        frames = self.segmenter._run(self.clip, objects, prompts, session, start=frame,
                                     done=self._frames[:frame])
        return Track(self.segmenter, self.clip, objects, prompts, frames, session)

    def __repr__(self) -> str:
        return (f"Track({len(self)} frames, objects {self.objects}, prompts on frames "
                f"{sorted(self.prompts)})")


class VideoSegmenter(models.Pretrained):
    """SAM 2's video tracker: prompts on a frame, masks in every frame after it.

    ``VideoSegmenter.from_pretrained()`` loads ``"sam2.1-tiny"`` (facebook/sam2.1-hiera-tiny,
    39M parameters), or the tiny random model ``"tiny"``.

    >>> video = VideoSegmenter.from_pretrained()                          # doctest: +SKIP
    >>> track = video.track("data/clips/coffee.mp4", points=[(300, 160)])  # doctest: +SKIP
    """

    families = FAMILIES
    default = "sam2.1-tiny"

    def __init__(self, loaded: models.Loaded) -> None:
        super().__init__(loaded)
        self.model = loaded.model
        self.processor = loaded.processor
        self.side = int(self.processor.target_size)
        """The side of the square every frame is squashed to (1024 in the released models)."""
        self.frames_run = 0
        """How many frames the model has run (a correction runs its frames again)."""

    def track(self, frames: Any, points: Any = None, labels: Any = None, box: Any = None,
              frame: int = 0, *, objects: Mapping[str, Any] | None = None, every: int = 1,
              max_frames: int = MAX_FRAMES) -> Track:
        """Follow what the prompts on ``frame`` select through ``frames``.

        Args:
            frames: a video file, a folder of frames, a list of images or a ``Clip``
                (``load_clip``).
            points: [(x, y), ...] in pixels of the frames, with ``labels`` (1 this object,
                0 not it; default all 1); and/or ``box`` [x1, y1, x2, y2]: one object,
                labelled "object".
            frame: the frame the prompts are on; frames before it are not tracked.
            objects: several objects instead: label -> {"points": ..., "labels": ...,
                "box": ...} (every object, or none, with a box).
            every, max_frames: as in ``load_clip``.

        Returns:
            A ``Track``: one ``Detections`` per frame, rows in ``track.objects`` order.

        Raises:
            ValueError: no frames, a frame index past the end, a point outside the frame, a
                bad box or label, before the model runs.
        """
        clip = load_clip(frames, every=every, max_frames=max_frames)
        frame = checks.integer("frame", frame, 0, hint=f"a frame index of 0..{len(clip) - 1}")
        if frame >= len(clip):
            raise ValueError(f"frame {frame} is past the end: this clip has {len(clip)} frames "
                             f"(0..{len(clip) - 1})")
        given = _objects(points, labels, box, objects, clip.size, frame)
        _check_boxes(frame, given)
        prompts = {frame: given}
        session = self.processor.init_video_session(inference_device=self.device,
                                                    dtype=self.model.dtype)
        empty = self._empty(clip, list(given))
        result = self._run(clip, list(given), prompts, session, start=frame,
                           done=[empty] * frame)
        return Track(self, clip, list(given), prompts, result, session)

    # ------------------------------------------------------------ the model, frame by frame
    @staticmethod
    def _empty(clip: Clip, objects: list[str]) -> Detections:
        w, h = clip.size
        n = len(objects)
        return Detections(np.zeros((n, 4), np.float32), np.zeros(n, np.float32), objects,
                          np.zeros((n, h, w), bool))

    def _add(self, session: Any, frame: int, objects: list[str],
             prompts: dict[str, _Prompt], size: tuple[int, int]) -> None:
        """The prompts of one frame, every object in one call (two calls on one frame make
        SAM 2 forget the first)."""
        ids = [objects.index(label) + 1 for label in prompts]
        chosen = list(prompts.values())
        with_box = _check_boxes(frame, prompts)
        kwargs: dict[str, Any] = {}
        if any(p.points for p in chosen):
            most = max(len(p.points) for p in chosen)
            # objects without points on this frame get none (-10 is SAM 2's padding)
            kwargs["input_points"] = [[p.points + [[-10.0, -10.0]] * (most - len(p.points))
                                       for p in chosen]]
            kwargs["input_labels"] = [[p.labels + [-10] * (most - len(p.labels))
                                       for p in chosen]]
        if all(with_box):
            kwargs["input_boxes"] = [[p.box for p in chosen]]
        self.processor.add_inputs_to_inference_session(
            inference_session=session, frame_idx=frame, obj_ids=ids,
            original_size=(size[1], size[0]), **kwargs)

    def _run(self, clip: Clip, objects: list[str], prompts: dict[int, dict[str, _Prompt]],
             session: Any, start: int, done: list[Detections]) -> list[Detections]:
        """``done`` (frames before ``start``), then frames ``start``.. run one at a time."""
        import torch

        w, h = clip.size
        out = list(done)
        with torch.inference_mode():
            for i in range(start, len(clip)):
                if i in prompts:
                    self._add(session, i, objects, prompts[i], clip.size)
                pixels = self.processor(images=clip[i], return_tensors="pt")["pixel_values"]
                result = self.model(inference_session=session,
                                    frame=pixels[0].to(self.device, self.model.dtype),
                                    frame_idx=i)
                self.frames_run += 1
                self._forget(session, i)
                masks = self.processor.post_process_masks(
                    [result.pred_masks], original_sizes=[[h, w]], binarize=True)[0]
                scores = torch.sigmoid(result.object_score_logits.float()).reshape(-1)
                rows = {int(obj): k for k, obj in enumerate(result.object_ids)}
                out.append(self._detections(objects, rows, masks[:, 0].cpu().numpy(),
                                            scores.cpu().numpy(), (w, h)))
        return out

    @staticmethod
    def _detections(objects: list[str], rows: dict[int, int], masks: np.ndarray,
                    scores: np.ndarray, size: tuple[int, int]) -> Detections:
        w, h = size
        n = len(objects)
        xyxy = np.zeros((n, 4), np.float32)
        stack = np.zeros((n, h, w), bool)
        score = np.zeros(n, np.float32)
        for row in range(n):
            k = rows.get(row + 1)
            if k is None:  # an object first prompted on a later frame
                continue
            stack[row], score[row] = masks[k], scores[k]
            ys, xs = np.nonzero(masks[k])
            if len(xs):
                xyxy[row] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        return Detections(xyxy, score, objects, stack)

    @staticmethod
    def _forget(session: Any, i: int) -> None:
        """Drop what the model will not read again for frame ``i``: the squashed frame and
        the full-size mask logits (SAM 2 keeps both; the memory features stay)."""
        frames = getattr(session, "processed_frames", None)
        if isinstance(frames, dict):
            frames.pop(i, None)
        for per_object in session.output_dict_per_obj.values():
            for store in per_object.values():
                if i in store and isinstance(store[i], dict):
                    store[i].pop("high_res_masks", None)
