"""Charts and value maps as pictures: a labelled heat map, a bar chart, a map of weights in
[0, 1], and any matplotlib figure, each a new ``PIL.Image`` (``helpers.viz`` re-exports them,
so the lessons call ``viz.heatmap``). matplotlib is imported only when one is drawn, and
pyplot never: no global figure state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from helpers.palette import color


def figure_image(fig: Any) -> Image.Image:
    """A matplotlib ``Figure`` rendered (Agg, no pyplot state) to an RGB PIL image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[:, :, :3].copy())


def heatmap(matrix: Any, row_labels: Sequence[str], col_labels: Sequence[str],
            title: str = "", cmap: str = "viridis", fmt: str = "{:.2f}") -> Image.Image:
    """A labelled heat map of an (R, C) matrix (e.g. cosine similarities), values written in."""
    from matplotlib.figure import Figure

    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape != (len(row_labels), len(col_labels)):
        raise ValueError(
            f"matrix has shape {m.shape}; expected ({len(row_labels)}, {len(col_labels)}) "
            "to match the labels"
        )
    fig = Figure(figsize=(1.2 + 0.9 * m.shape[1], 1.0 + 0.6 * m.shape[0]), dpi=100)
    ax = fig.add_subplot()
    shown = ax.imshow(m, cmap=cmap, aspect="auto")
    ax.set_xticks(range(m.shape[1]), labels=list(col_labels), rotation=35, ha="right")
    ax.set_yticks(range(m.shape[0]), labels=list(row_labels))
    mid = (np.nanmax(m) + np.nanmin(m)) / 2 if m.size else 0
    for (r, c), v in np.ndenumerate(m):
        ax.text(c, r, fmt.format(v), ha="center", va="center", fontsize=8,
                color="black" if v > mid else "white")
    fig.colorbar(shown, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return figure_image(fig)


def bars(values: Any, labels: Sequence[str], title: str = "",
         xlabel: str = "probability") -> Image.Image:
    """A horizontal bar chart, largest value on top (e.g. zero-shot label probabilities)."""
    from matplotlib.figure import Figure

    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(v) != len(labels):
        raise ValueError(f"{len(v)} values but {len(labels)} labels")
    order = np.argsort(v)
    fig = Figure(figsize=(5, 0.5 + 0.35 * len(v)), dpi=100)
    ax = fig.add_subplot()
    ax.barh(range(len(v)), v[order], color=[np.array(color(i)) / 255 for i in order])
    ax.set_yticks(range(len(v)), labels=[labels[i] for i in order])
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return figure_image(fig)


def weights(values: Any, cmap: str = "viridis") -> Image.Image:
    """A map of values in [0, 1] (blend weights, a soft mask, a probability map) in a colour
    map whose both ends show on a white page and on a black one: 0 dark violet, 1 yellow.

    Raises:
        ValueError: ``values`` is not a 2-D array, or holds values outside [0, 1] or NaN.
    """
    from matplotlib import colormaps

    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"weights must be a 2-D (height, width) array, not shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min(initial=0.0) < 0 or arr.max(initial=0.0) > 1:
        raise ValueError("weights must lie in [0, 1] (no NaN); scale them first")
    return Image.fromarray((colormaps[cmap](arr)[..., :3] * 255).astype(np.uint8))
