"""Tracking: every run recorded with Comet (online or offline) and in a local folder.

``tracking.start("lesson-02")`` returns a ``Run``. Everything logged through it goes two ways:

- to **Comet** (``tracking.comet``): online when an API key is configured and the server
  answers within a few seconds; otherwise to an offline archive (``comet upload
  <archive>.zip`` sends it later). Offline makes no network attempt at all.
- to a **local record** (``tracking.record``) under ``runs/<project>/<run-id>/``: the images
  as PNG files, an append-only ``events.jsonl`` written as things are logged (so a crash
  loses nothing logged before it) and a ``run.json`` summary with parameters, prompts,
  seeds, model names, library versions and device.

Images are logged with their prompts as Comet annotations (``tracking.annotations``: boxes
with label and score, masks as polygons, points). Images made by helpers functions carry a
``Recipe`` (``tracking.recipes``) whose inputs are stored inside the run folder, so
``reproduce`` makes the same pixels again, also from a copied folder. The gallery that
shows a run's images lives in ``helpers.widgets`` (``widgets.gallery``); it draws each
image with its annotations read back (``LoggedImage.annotated``, ``annotations.decode``).

``pick(image)`` marks an image as the best of its run (a "best:<image>" tag and an "other"
value ``best``), also after the run ended: the pick reaches the local record and the
run's Comet record (the offline archive is rewritten, or the online experiment updated).
``best(project)`` finds the latest pick again, as a ``LoggedImage`` that ``reproduce``
takes.
"""

from helpers import compat
from helpers.tracking.annotations import comet_annotations, mask_from_polygons, plain
from helpers.tracking.choosing import pick
from helpers.tracking.comet import (
    DEFAULT_SERVER,
    ONLINE_START_TIMEOUT,
    PROBE_TIMEOUT,
    api_key,
    server_answers,
    server_url,
)
from helpers.tracking.crashes import recover
from helpers.tracking.picks import best
from helpers.tracking.recipes import RECIPE_KEY, Recipe, kind_of, recipe, reproduce
from helpers.tracking.record import (
    DamagedRunError,
    LoggedImage,
    RecordWriteError,
    image_path,
    load_record,
    logged_images,
    runs,
    runs_dir,
    same_pixels,
)
from helpers.tracking.run import Run, active, start

__all__ = [
    "DEFAULT_SERVER", "DamagedRunError", "ONLINE_START_TIMEOUT", "PROBE_TIMEOUT", "RECIPE_KEY",
    "LoggedImage", "RecordWriteError",
    "Recipe", "Run", "active", "api_key", "best", "comet_annotations", "image_path",
    "kind_of", "load_record", "logged_images", "mask_from_polygons", "pick", "plain", "recipe",
    "recover", "reproduce", "runs",
    "runs_dir", "same_pixels", "server_answers", "server_url", "start",
]

__getattr__ = compat.moved(__name__, {
    "gallery": "widgets.gallery(...) (from helpers import widgets)",
    "GalleryEntry": "widgets.GalleryEntry, which is tracking.LoggedImage"})
