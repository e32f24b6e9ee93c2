"""Recipes: how to make a logged image again, pixel for pixel.

A function that makes an image (``Inpainter.inpaint``, ``Generator.generate``) attaches a
``Recipe`` to it (``image.info[RECIPE_KEY]``): its ``kind`` names what made the image as
``"module:qualified.name"``, ``args`` are the plain settings, ``inputs`` the images it read
(a photo, a mask) and ``context`` facts that explain the pixels (dtype, scheduler).

``Run.log_image`` stores the inputs **inside the run folder**, by content
(``inputs/<sha256>.png``, one file however often it is used), and the record refers to them
relative to the folder: a run folder copied to another machine reproduces there.
``reproduce(record)`` imports the module the kind names (only modules of ``helpers``) and
calls the function registered for that kind with the settings and the restored inputs.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from helpers.images import digest
from helpers.tracking.annotations import plain

if TYPE_CHECKING:
    from PIL import Image

RECIPE_KEY = "helpers_recipe"
"""``PIL.Image.info`` key under which image-making functions leave their ``Recipe``."""
_REMAKERS: dict[str, Callable[..., Any]] = {}
F = TypeVar("F", bound=Callable[..., Any])


def kind_of(fn: Callable[..., Any]) -> str:
    """The kind that names ``fn``: ``"helpers.inpaint:Inpainter.inpaint"``."""
    return f"{fn.__module__}:{fn.__qualname__}"


def recipe(made_by: Callable[..., Any]) -> Callable[[F], F]:
    """Register the decorated ``fn(**args, **inputs) -> PIL image`` as the way to make
    again the images that ``made_by`` makes (their kind is ``kind_of(made_by)``)."""
    def register(fn: F) -> F:
        _REMAKERS[kind_of(made_by)] = fn
        return fn

    return register


@dataclass
class Recipe:
    """How an image was made: enough to make the same pixels again.

    Attributes:
        kind: what made it, ``"module:qualified.name"`` (see ``kind_of``).
        args: plain JSON settings (prompt, seed, steps, model name, device, ...).
        inputs: name -> the input image in memory (PIL), or, once logged, a reference
            ``{"file": "inputs/<sha>.png", "sha256": ...}`` relative to the run folder.
        context: facts that explain the pixels but are not settings (dtype, scheduler).
    """

    kind: str
    args: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Any) -> Recipe:
        """A ``Recipe`` from a ``Recipe`` or a dict with ``kind`` (and ``args``, ...).

        Raises:
            ValueError: anything else, naming what was given and what is expected.
        """
        if isinstance(value, Recipe):
            return value
        if not isinstance(value, Mapping) or not isinstance(value.get("kind"), str) \
                or ":" not in value["kind"]:
            raise ValueError(
                f"recipe {value!r:.80} must be a tracking.Recipe or a dict with a 'kind' such "
                "as 'helpers.generate:Generator.generate' and its 'args'; usually it comes "
                "with the image, so leave recipe=None")
        parts = {k: value.get(k) or {} for k in ("args", "inputs", "context")}
        bad = [k for k, v in parts.items() if not isinstance(v, Mapping)]
        if bad:
            raise ValueError(f"recipe {bad[0]!r} must be a dict; got {value[bad[0]]!r:.60}")
        return cls(value["kind"], *(dict(parts[k]) for k in ("args", "inputs", "context")))

    def attach(self, image: Image.Image) -> Image.Image:
        """Put this recipe on ``image`` (where ``Run.log_image`` finds it); returns it."""
        image.info[RECIPE_KEY] = self
        return image

    def stored(self, folder: Path) -> dict[str, Any]:
        """The recipe as plain JSON, with its in-memory inputs saved under ``folder``
        (a run folder) and referred to relative to it."""
        from PIL import Image as PILImage

        refs = {}
        for name, value in self.inputs.items():
            if isinstance(value, PILImage.Image):
                refs[name] = _store(value, folder)
            elif isinstance(value, Mapping) and "file" in value and "sha256" in value:
                refs[name] = plain(value)  # stored already (a remade image's recipe)
            else:
                raise ValueError(f"recipe input {name!r} is a {type(value).__name__}; inputs "
                                 "are PIL images (convert an array with images.from_array)")
        return {"kind": self.kind, "args": plain(self.args), "inputs": refs,
                "context": plain(self.context)}


def of(image: Any) -> Recipe | None:
    """The recipe an image carries, or None."""
    found = getattr(image, "info", {}).get(RECIPE_KEY)
    return None if found is None else Recipe.coerce(found)


def _store(img: Image.Image, folder: Path) -> dict[str, str]:
    key = digest(img)
    relative = f"inputs/{key[:32]}.png"
    path = folder / relative
    if not path.exists():
        import io

        from helpers.tracking.record import write_bytes

        path.parent.mkdir(parents=True, exist_ok=True)
        png = io.BytesIO()
        img.save(png, format="PNG")
        write_bytes(path, png.getvalue())  # atomic: two writers never share a temporary file
    return {"file": relative, "sha256": key}


def _restore(ref: Mapping[str, Any], folder: Path) -> Image.Image:
    from PIL import Image as PILImage

    path = folder / ref["file"]  # an absolute path (an earlier helpers' record) stays as it is
    if not path.exists():
        raise FileNotFoundError(
            f"the recipe's input {ref['file']} is missing from the run folder {folder}; the "
            "image cannot be made again without it (copy the whole run folder)")
    with PILImage.open(path) as fh:
        img = fh.copy()
    if digest(img) != ref.get("sha256"):
        raise ValueError(f"the recipe's input {path} has changed since it was logged; the "
                         "image cannot be made again from it")
    return img


def reproduce(image_record: Mapping[str, Any]) -> Any:
    """Make a logged image again from its record's recipe.

    Same device, same seed, same settings give identical pixels; ``same_pixels(record,
    image)`` checks it against the logged file.

    Raises:
        ValueError: the record has no recipe (the image was not made by a helpers
            function that knows how to make it again), or an unknown recipe kind.
    """
    if not isinstance(image_record, Mapping) or "name" not in image_record:
        raise ValueError("reproduce takes an image record, as returned by Run.log_image or "
                         "found in tracking.load_record(folder)['images']")
    spec = image_record.get("recipe")
    if not spec:
        raise ValueError(
            f"image {image_record['name']!r} has no recipe, so it cannot be made again; only "
            "images made by helpers functions (e.g. inpaint.Inpainter.inpaint) carry one")
    made = Recipe.coerce(_upgraded(spec))
    fn = _remaker(made.kind)
    folder = Path(image_record.get("folder") or ".")
    inputs = {name: _restore(ref, folder) for name, ref in made.inputs.items()}
    try:  # settings the function does not take fail here, before it loads a model
        inspect.signature(fn).bind(**made.args, **inputs)
    except TypeError as err:
        raise ValueError(f"the recipe of image {image_record['name']!r} does not fit "
                         f"{made.kind} ({err}); was the record edited by hand?") from None
    return fn(**made.args, **inputs)


_EARLIER_KINDS = {"inpaint.inpaint": "helpers.inpaint:Inpainter.inpaint",
                  "generate.text_to_image": "helpers.generate:Generator.generate"}
"""Kinds that records written by helpers 0.1 carry, and what they are called now."""


_SCHEDULED_KINDS = ("helpers.inpaint:Inpainter.inpaint", "helpers.generate:Generator.generate")
"""Kinds whose settings name the scheduler (since DPM-Solver++ became the default)."""


def _upgraded(spec: Any) -> Any:
    """A recipe of an earlier helpers in today's form: its kind renamed, the inputs it
    kept among its settings (with absolute paths) moved to ``inputs``, and the scheduler
    its context recorded (PNDM then) named in its settings, so it samples as it did."""
    if not isinstance(spec, Mapping):
        return spec
    if spec.get("kind") in _EARLIER_KINDS:
        args = dict(spec.get("args") or {})
        inputs = {k: args.pop(k) for k in list(args)
                  if isinstance(args[k], Mapping) and {"file", "sha256"} <= set(args[k])}
        spec = {**spec, "kind": _EARLIER_KINDS[spec["kind"]], "args": args, "inputs": inputs}
    args = spec.get("args")
    if spec.get("kind") in _SCHEDULED_KINDS and isinstance(args, Mapping) \
            and "scheduler" not in args:
        from helpers import schedulers

        context = spec.get("context") or {}
        used = context.get("scheduler") if isinstance(context, Mapping) else None
        spec = {**spec, "args": {**args, "scheduler": schedulers.name_of(
            str(used or "PNDMScheduler")) or "pndm"}}
    return spec


def _remaker(kind: str) -> Callable[..., Any]:
    module = kind.partition(":")[0]
    if kind not in _REMAKERS:
        if module != "helpers" and not module.startswith("helpers."):
            raise ValueError(f"recipe kind {kind!r} does not name a helpers function; only "
                             "images made by helpers can be made again")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"recipe kind {kind!r} names a module that does not exist "
                             f"({err})") from err
    if kind not in _REMAKERS:
        raise ValueError(f"no recipe of kind {kind!r} is known; known: {sorted(_REMAKERS)}")
    return _REMAKERS[kind]
