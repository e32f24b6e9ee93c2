"""The course's colours: one fixed palette, so the same label gets the same colour run after
run; an include point is always green, an exclude point red, a box prompt yellow."""

from __future__ import annotations

PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)
POSITIVE = (0, 200, 83)
NEGATIVE = (229, 57, 53)
PROMPT_BOX = (255, 214, 0)


def color(i: int) -> tuple[int, int, int]:
    """The ``i``-th palette colour (wraps around)."""
    return PALETTE[int(i) % len(PALETTE)]
