"""Interactive pieces of the lessons: each a plain state object plus a thin ipywidgets view.

Each widget keeps its state (what is shown, what was picked) in an object that works and
is tested without a browser; the ipywidgets view is built only when the widget is shown.
Executed headlessly (CI, ``make lessons``), the widgets still build and keep their state.
The views need no widget package beyond ipywidgets and anywidget, so they work in
JupyterLab 4, Notebook 7, VS Code and Colab alike.

- ``PointPicker`` (``widgets.picker``): click on a photo to add include/exclude points,
  drag (or, in box mode, click two corners) to draw a box; the Segment Anything mask
  updates after every change. The photo is an anywidget canvas that draws the prompts in
  the browser at once and sends each click or drag to the kernel. Its state is a
  ``PromptState``, the undo history of a ``Prompt``.
- ``ThresholdSlider`` (``widgets.slider``): detector boxes re-filtered live by a score
  slider, without running the detector again.
- ``gallery``/``Gallery`` and ``panel`` (``widgets.gallery``): logged images side by side
  with their settings, grouped or sorted by one setting; "pick as best" on each image.
- ``PhotoUpload`` (``widgets.upload``): a button that saves chosen photos into a folder.
"""

from helpers.widgets.gallery import Gallery, GalleryEntry, gallery, panel
from helpers.widgets.picker import MIN_DRAG, MODES, PointPicker
from helpers.widgets.prompt_state import PromptState
from helpers.widgets.slider import ThresholdSlider
from helpers.widgets.upload import PhotoUpload

__all__ = ["MIN_DRAG", "MODES", "Gallery", "GalleryEntry", "PhotoUpload", "PointPicker",
           "PromptState", "ThresholdSlider", "gallery", "panel"]
