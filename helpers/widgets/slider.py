"""``ThresholdSlider``: detector boxes re-filtered live by a score slider, without running
the detector again (a plain state object plus a thin ipywidgets view)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image


class ThresholdSlider:
    """Boxes found at a low threshold, re-filtered live by a slider (the model is not re-run).

    Args:
        image: the photo the boxes belong to.
        detections: boxes from ``Detector.detect(..., threshold=low)``.
        threshold: the starting threshold.

    ``.detections`` is always the boxes at or above the current ``.threshold``.
    """

    def __init__(self, image: Any, detections: Any, threshold: float = 0.1,
                 display: int = 640) -> None:
        from helpers import checks, images
        from helpers.detections import Detections

        if not isinstance(detections, Detections):
            raise ValueError(f"detections {detections!r:.60} must be Detections, from "
                             "Detector.detect(image, queries, threshold=0.01)")
        self.image = images.load(image)
        self.all = detections
        self.display = checks.integer("display", display, 16, 4096, hint="pixels")
        self._view: Any = None
        self.threshold = 0.0
        self.set_threshold(threshold)

    def set_threshold(self, value: float) -> None:
        """Show the boxes scoring at least ``value`` (in [0, 1])."""
        from helpers import checks

        self.threshold = checks.number("threshold", value, 0.0, 1.0)
        self.detections = self.all.filter(self.threshold)
        if self._view is not None:
            self._refresh()

    def render(self) -> Image.Image:
        """The photo with the kept boxes, long side at most ``display`` pixels."""
        from helpers import images, viz

        picture = viz.draw_boxes(self.image, self.detections)
        return images.resize_long_side(picture, min(self.display, max(picture.size)))

    def _refresh(self) -> None:
        import io

        buffer = io.BytesIO()
        self.render().save(buffer, format="JPEG", quality=90)
        self._picture.value = buffer.getvalue()
        self._count.value = self.status()

    def status(self) -> str:
        """One line: how many boxes are kept at the current threshold."""
        return (f"{len(self.detections)} of {len(self.all)} boxes at threshold "
                f"{self.threshold:.2f}")

    def picture(self) -> Image.Image:
        """A static picture of the slider's state (for pages without a kernel)."""
        return self.render()

    @property
    def widget(self) -> Any:
        """The ipywidgets view, built on first use."""
        if self._view is None:
            import ipywidgets as w

            slider = w.FloatSlider(value=self.threshold, min=0.0, max=1.0, step=0.01,
                                   description="threshold", continuous_update=True)
            slider.observe(lambda change: self.set_threshold(change["new"]), names="value")
            self._picture = w.Image(format="jpeg")
            self._count = w.HTML()
            self._view = w.VBox([slider, self._count, self._picture])
            self._refresh()
        return self._view

    def _ipython_display_(self) -> None:
        from helpers.widgets import static

        static.show(self.widget, self.picture(), alt="threshold slider: " + self.status(),
                    caption=self.status(), text=repr(self))

    def __repr__(self) -> str:
        kept, total = len(self.detections), len(self.all)
        return f"ThresholdSlider({kept} of {total} boxes >= {self.threshold})"
