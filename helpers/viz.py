"""Pictures of prompts and results: points, boxes, masks, grids, blurs and differences.

Every function returns a new ``PIL.Image`` and leaves its input untouched, so a cell can
show it (a notebook displays a PIL image inline), save it, or log it to a tracker. Colours
come from one fixed palette, so the same label gets the same colour run after run: an
include point is always green, an exclude point always red (``helpers.palette``). The charts
and value maps of ``helpers.charts`` (``heatmap``, ``bars``, ``weights``) are here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from helpers import checks
from helpers.charts import bars, figure_image, heatmap, weights  # noqa: F401  (re-exported)
from helpers.palette import NEGATIVE, PALETTE, POSITIVE, PROMPT_BOX, color  # noqa: F401

if TYPE_CHECKING:
    from helpers.detections import Detections

def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _scale(img: Image.Image) -> int:
    """A line width / marker size unit that suits the image's size."""
    return max(2, round(max(img.size) / 160))


def _rgb(image: Any) -> Image.Image:
    from helpers import images

    return images.load(image).copy()


def _label_colors(labels: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    order = list(dict.fromkeys(labels))
    return {label: color(i) for i, label in enumerate(order)}


def _text_tag(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str,
              fill: tuple[int, int, int], size: int) -> None:
    font = _font(size)
    x, y = xy
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left, bottom - top
    y = max(0.0, y - h - 4)
    draw.rectangle([x, y, x + w + 6, y + h + 4], fill=fill)
    draw.text((x + 3 - left, y + 2 - top), text, fill=(255, 255, 255), font=font)


def draw_points(image: Any, points: Any, labels: Any = None,
                size: int | None = None) -> Image.Image:
    """Mark point prompts: include points (label 1) green, exclude points (label 0) red.

    Args:
        image: anything ``images.load`` accepts.
        points: (N, 2) ``(x, y)`` pixels of the original image.
        labels: (N,) 1 = include, 0 = exclude; default all include.
        size: marker radius in pixels (default scales with the image).
    """
    img = _rgb(image)
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    labs = np.ones(len(pts), dtype=int) if labels is None else np.asarray(labels).reshape(-1)
    if len(labs) != len(pts):
        raise ValueError(f"{len(pts)} points but {len(labs)} labels; give one label per point")
    if not np.isin(labs, (0, 1)).all():
        raise ValueError(f"labels must be 1 (include) or 0 (exclude); got {labs.tolist()}")
    for x, y in pts:
        if not (0 <= x < img.width and 0 <= y < img.height):  # NaN fails this too
            raise ValueError(f"point ({x:g}, {y:g}) is outside the {img.width}x{img.height} "
                             "image, so it would not show; points are (x, y) pixels of it")
    r = size or max(5, round(max(img.size) / 45))
    draw = ImageDraw.Draw(img)
    for (x, y), lab in zip(pts, labs):
        fill = POSITIVE if lab == 1 else NEGATIVE
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill, outline=(255, 255, 255),
                     width=max(1, r // 3))
        arm = r * 0.55
        width = max(1, r // 3)
        draw.line([x - arm, y, x + arm, y], fill=(255, 255, 255), width=width)
        if lab == 1:
            draw.line([x, y - arm, x, y + arm], fill=(255, 255, 255), width=width)
    return img


def draw_boxes(image: Any, boxes: Detections | Any, labels: Sequence[str] | None = None,
               scores: Any = None, width: int | None = None,
               colors: Sequence[tuple[int, int, int]] | None = None) -> Image.Image:
    """Draw xyxy pixel boxes with "label score" tags.

    Args:
        boxes: a ``Detections`` (its labels and scores are used) or an (N, 4) xyxy array.
        labels, scores: used when ``boxes`` is an array; optional.
        colors: one colour per box; default one palette colour per distinct label.
    """
    from helpers.detections import Detections

    img = _rgb(image)
    dets = boxes if isinstance(boxes, Detections) else Detections(boxes, scores, labels)  # type: ignore[arg-type]
    show_scores = isinstance(boxes, Detections) or scores is not None
    by_label = _label_colors(dets.labels)
    w = width or _scale(img)
    draw = ImageDraw.Draw(img)
    for i, (box, score, label) in enumerate(zip(dets.xyxy, dets.scores, dets.labels)):
        c = colors[i % len(colors)] if colors else by_label[label]
        draw.rectangle(box.tolist(), outline=c, width=w)
        text = " ".join(t for t in (label, f"{score:.2f}" if show_scores else "") if t)
        if text:
            _text_tag(draw, (float(box[0]), float(box[1])), text, c, 5 * w + 4)
    return img


def overlay_masks(image: Any, masks: Any, alpha: float = 0.45,
                  colors: Sequence[tuple[int, int, int]] | None = None,
                  outline: bool = True) -> Image.Image:
    """Tint each mask in its palette colour (with its outline) over the image.

    Args:
        masks: (H, W) or (N, H, W) bool, the same size as the image.
        alpha: tint strength in [0, 1].
    """
    img = _rgb(image)
    stack = _finite(np.asarray(masks), "masks")
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3 or stack.shape[1:] != (img.height, img.width):
        raise ValueError(
            f"masks have shape {stack.shape}; expected (N, {img.height}, {img.width}) for a "
            f"{img.width}x{img.height} image"
        )
    alpha = checks.number("alpha", alpha, 0.0, 1.0)
    out = np.array(img)  # (H, W, 3) uint8; only masked pixels are touched below
    for i, mask in enumerate(stack.astype(bool)):
        c = np.array(colors[i % len(colors)] if colors else color(i), dtype=np.float32)
        tinted = (1 - alpha) * out[mask].astype(np.float32) + alpha * c
        out[mask] = np.round(tinted).astype(np.uint8)
        if outline:
            edge = mask & ~_erode(mask)
            out[edge] = c.astype(np.uint8)
    return Image.fromarray(out)


def _finite(mask: np.ndarray, what: str) -> np.ndarray:
    """``mask`` unchanged, or a ValueError when it holds NaN or infinity."""
    if mask.dtype.kind == "f" and not np.isfinite(mask).all():
        raise ValueError(f"{what} hold NaN or infinite values; a mask is True/False (or 0/1) "
                         "per pixel: threshold probabilities first (p > 0.5)")
    return mask


def _erode(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1, constant_values=False)
    return (padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1]
            & padded[1:-1, :-2] & padded[1:-1, 2:])


def annotate(image: Any, detections: Detections | None = None, points: Any = None,
             labels: Any = None, box: Any = None, masks: Any = None) -> Image.Image:
    """One picture of a prompt and its answer: masks, then boxes, then points on top.

    Args:
        detections: boxes (and masks, if segmented) to draw.
        points, labels: point prompts, (N, 2) pixels and (N,) 1/0.
        box: a prompt box [x1, y1, x2, y2] drawn dashed-yellow style (thick, no tag).
        masks: extra (H, W) or (N, H, W) masks to tint.
    """
    from helpers.detections import Detections

    if detections is not None and not isinstance(detections, Detections):
        raise ValueError(f"detections {detections!r:.60} must be Detections (for bare boxes "
                         "use box=[x1, y1, x2, y2] or Detections(boxes))")
    img = _rgb(image)
    if detections is not None and detections.masks is not None and len(detections):
        img = overlay_masks(img, detections.masks)
    if masks is not None:
        img = overlay_masks(img, masks)
    if detections is not None and len(detections):
        img = draw_boxes(img, detections)
    if box is not None:
        img = draw_boxes(img, np.asarray(box, dtype=np.float32).reshape(-1, 4),
                         colors=[PROMPT_BOX], width=_scale(img) + 1)
    if points is not None and len(np.asarray(points).reshape(-1, 2)):
        img = draw_points(img, points, labels)
    return img


def grid(images: Sequence[Any], captions: Sequence[str] | None = None,
         cols: int | None = None, cell: int = 256, pad: int = 6, *,
         height: int | None = None) -> Image.Image:
    """Lay images out in a grid, each scaled to fit a ``cell`` x ``cell`` square, with captions.

    Args:
        images: anything ``images.load`` accepts.
        captions: one line (or a few, split on newlines) under each image.
        cols: columns (default: up to 4).
        height: cells ``cell`` wide and ``height`` high instead of square (e.g. for
            landscape photos, which a square leaves bands above and below).
    """
    from helpers import images as _images

    items = [_images.load(im) for im in images]
    if not items:
        raise ValueError("grid needs at least one image")
    if captions is not None and len(captions) != len(items):
        raise ValueError(f"{len(items)} images but {len(captions)} captions")
    cell = checks.integer("cell", cell, 8, 4096, hint="pixels per picture")
    cell_h = cell if height is None else checks.integer("height", height, 8, 4096)
    cols = min(4, len(items)) if cols is None else checks.integer("cols", cols, 1)
    pad = checks.integer("pad", pad, 0, 256)
    rows = -(-len(items) // cols)
    _images.check_pixels((cols * (cell + pad) + pad), rows * (cell_h + pad) + pad,
                         f"a grid of {len(items)} pictures of {cell} pixels",
                         hint="use a smaller cell or fewer pictures")
    font = _font(max(10, cell // 18))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = int(probe.textbbox((0, 0), "Ag", font=font)[3]) + 3
    n_lines = max((len(c.split("\n")) for c in captions), default=0) if captions else 0
    cap_h = n_lines * line_h + (pad if n_lines else 0)
    sheet = Image.new("RGB", (cols * (cell + pad) + pad, rows * (cell_h + cap_h + pad) + pad),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, im in enumerate(items):
        r, c = divmod(i, cols)
        x0, y0 = pad + c * (cell + pad), pad + r * (cell_h + cap_h + pad)
        scale = cell / max(im.size) if height is None else min(cell / im.width,
                                                               cell_h / im.height)
        thumb = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                          Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x0 + (cell - thumb.width) // 2, y0 + (cell_h - thumb.height) // 2))
        if captions:
            for k, line in enumerate(captions[i].split("\n")):
                draw.text((x0, y0 + cell_h + pad // 2 + k * line_h), line, fill=(20, 20, 20),
                          font=font)
    return sheet


def side_by_side(images: Sequence[Any], captions: Sequence[str] | None = None,
                 cell: int = 320) -> Image.Image:
    """Images in one row, each scaled to fit a ``cell`` square, for before/after comparisons;
    the row is as high as its tallest image (no empty bands around landscape photos)."""
    from helpers import images as _images

    items = [_images.load(im) for im in images]
    if not items:
        raise ValueError("side_by_side needs at least one image")
    tallest = max(max(1, round(im.height * cell / max(im.size))) for im in items)
    return grid(items, captions, cols=len(items), cell=cell, height=max(8, tallest))


def _region(image: Image.Image, mask: Any) -> np.ndarray:
    """(H, W) bool region from a mask array or a ``Detections`` (its masks, and the box of
    every detection without one: a face to blur must not slip through)."""
    from helpers.detections import Detections

    w, h = image.size
    if isinstance(mask, Detections):
        return mask.to_mask((w, h), boxes_if_no_masks=True)
    region = _finite(np.asarray(mask), "the mask")
    if region.ndim == 3:
        region = np.asarray(region.any(axis=0))
    region = np.asarray(region, dtype=bool)
    if region.shape != (h, w):
        raise ValueError(
            f"mask has shape {region.shape}; expected ({h}, {w}) for a {w}x{h} image"
        )
    return region


def _composite(image: Image.Image, changed: Image.Image, region: np.ndarray) -> Image.Image:
    out = np.array(image)
    out[region] = np.asarray(changed)[region]
    return Image.fromarray(out)


def blur(image: Any, mask: Any, radius: float = 12) -> Image.Image:
    """Gaussian-blur the pixels inside ``mask``; every other pixel stays exactly as it was.

    Args:
        mask: (H, W) bool, (N, H, W) bool, or a ``Detections`` (its masks, or its boxes).
        radius: blur radius in pixels (> 0).
    """
    from PIL import ImageFilter

    radius = checks.number("blur radius", radius, 0.0, low_open=True, hint="pixels, e.g. 12")
    img = _rgb(image)
    region = _region(img, mask)
    if not region.any():
        return img
    return _composite(img, img.filter(ImageFilter.GaussianBlur(radius)), region)


def pixelate(image: Any, mask: Any, block: int = 12) -> Image.Image:
    """Replace the pixels inside ``mask`` with ``block`` x ``block`` squares of their mean."""
    block = checks.integer("block", block, 1, hint="pixels, e.g. 12")
    img = _rgb(image)
    region = _region(img, mask)
    if not region.any():
        return img
    small = img.resize((max(1, img.width // block), max(1, img.height // block)),
                       Image.Resampling.BOX)
    return _composite(img, small.resize(img.size, Image.Resampling.NEAREST), region)


def difference(before: Any, after: Any, cmap: str = "magma") -> Image.Image:
    """A heat map of where two images differ (black = identical), with the changed-pixel
    count written in the corner: proof that an edit touched only what it should."""
    from matplotlib import colormaps

    a = np.asarray(_rgb(before), np.int16)
    b = np.asarray(_rgb(after), np.int16)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape[1]}x{a.shape[0]} vs "
                         f"{b.shape[1]}x{b.shape[0]}")
    diff = np.abs(a - b).max(axis=-1)
    changed = int((diff > 0).sum())
    scaled = diff / max(1, int(diff.max()))
    rgb = (colormaps[cmap](scaled)[..., :3] * 255).astype(np.uint8)
    rgb[diff == 0] = 0
    out = Image.fromarray(rgb)
    text = f"{changed} of {diff.size} pixels changed ({100 * changed / diff.size:.2f}%)"
    _text_tag(ImageDraw.Draw(out), (4.0, float(out.height)), text, (60, 60, 60),
              max(10, out.height // 30))
    return out


def stack(pictures: Sequence[Any | None], titles: Sequence[str | None] | None = None,
          pad: int = 6, size: int = 14) -> Image.Image:
    """Pictures one under another on white, left-aligned, each under its title.

    For a page of grids with headings (a gallery's static picture): a ``None`` picture is
    a title alone (a note), a ``None`` or empty title leaves the picture without one.

    Args:
        pictures: anything ``images.load`` accepts, or None.
        titles: one line (or a few, split on newlines) above each picture.
        size: the titles' font size in pixels.
    """
    from helpers import images as _images

    items = [None if p is None else _images.load(p) for p in pictures]
    heads = list(titles) if titles is not None else [None] * len(items)
    if len(heads) != len(items):
        raise ValueError(f"{len(items)} pictures but {len(heads)} titles")
    if not items:
        raise ValueError("stack needs at least one picture or title")
    font = _font(size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = int(probe.textbbox((0, 0), "Ag", font=font)[3]) + 4
    blocks = []  # (lines, picture)
    for head, item in zip(heads, items):
        lines = head.split("\n") if head else []
        blocks.append((lines, item))
    width = max([pad * 2 + (item.width if item is not None else 0) for _, item in blocks]
                + [pad * 2 + int(probe.textlength(line, font=font))
                   for lines, _ in blocks for line in lines])
    height = pad + sum(len(lines) * line_h + (item.height + pad if item is not None else pad)
                       for lines, item in blocks)
    sheet = Image.new("RGB", (max(1, width), max(1, height)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = pad
    for lines, item in blocks:
        for line in lines:
            draw.text((pad, y), line, fill=(20, 20, 20), font=font)
            y += line_h
        if item is not None:
            sheet.paste(item, (pad, y))
            y += item.height
        y += pad
    return sheet


class Animation:
    """Pictures played in a loop, shown inline as an animated GIF (also in pre-rendered
    HTML pages, where it is an ``<img>`` with the GIF inside)."""

    def __init__(self, pictures: Sequence[Image.Image], fps: float) -> None:
        self.pictures = list(pictures)
        self.fps = fps

    @property
    def gif(self) -> bytes:
        """The animation as GIF bytes (each frame's palette made from its own colours)."""
        import io

        out = io.BytesIO()
        first, *rest = [p.convert("RGB") for p in self.pictures]
        first.save(out, format="GIF", save_all=True, append_images=rest, loop=0,
                   duration=max(20, round(1000 / self.fps)))
        return out.getvalue()

    def save(self, path: Any) -> Any:
        """Write the GIF to ``path``; returns the path."""
        from pathlib import Path

        target = Path(path)
        target.write_bytes(self.gif)
        return target

    def _repr_html_(self) -> str:
        import base64

        data = base64.b64encode(self.gif).decode("ascii")
        w, h = self.pictures[0].size
        return (f'<img src="data:image/gif;base64,{data}" width="{w}" height="{h}" '
                f'alt="an animation of {len(self.pictures)} frames at {self.fps:g} fps">')

    def __repr__(self) -> str:
        return f"Animation({len(self.pictures)} frames at {self.fps:g} fps)"


def animate(pictures: Sequence[Any], fps: float = 8.0) -> Animation:
    """An animation of ``pictures`` (anything ``images.load`` accepts, one size) at ``fps``
    frames per second, shown inline in a notebook.

    Raises:
        ValueError: no pictures, pictures of different sizes, or a bad ``fps``.
    """
    from helpers import images as _images

    fps = checks.number("fps", fps, 0.1, 60)
    items = [_images.load(p) for p in pictures]
    if not items:
        raise ValueError("animate needs at least one picture")
    if len({p.size for p in items}) > 1:
        raise ValueError("the pictures differ in size; an animation's frames have one size")
    return Animation(items, fps)
