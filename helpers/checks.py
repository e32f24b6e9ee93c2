"""Checking a setting's value once, the same way everywhere.

Every setting a learner types (a threshold, a seed, a number of steps) comes through
``number`` or ``integer``. Both accept what a learner is likely to have: a Python number,
a NumPy scalar (``np.float32(0.1)``, ``np.int64(7)``), a 0-d NumPy array or a one-element
torch tensor. Both refuse booleans, NaN and infinity, and a value outside its range, with a
message that names the setting, shows the value and says what range it takes. They return
a plain Python ``float`` or ``int``, so what is recorded in a recipe is always plain JSON.

Nothing heavy is imported here: NumPy and torch values are recognised by their methods.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


class WrongType(TypeError, ValueError):
    """A setting of the wrong kind (a string for a number, a float for a count).

    It is both a TypeError and a ValueError, so code that catches either catches it."""


SEED_LIMIT = 2**63
"""Seeds lie in [0, 2**63): the range a torch generator takes."""


def _plain(value: Any) -> Any:
    """A Python scalar for a NumPy scalar, a 0-d array or a one-element tensor; else ``value``."""
    if isinstance(value, (bool, int, float)):
        return value
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(size):  # torch tensors have .size() and .numel()
        numel = getattr(value, "numel", None)
        size = numel() if callable(numel) else None
    if callable(item) and size == 1:
        try:
            out = item()
        except (TypeError, ValueError):
            return value
        if isinstance(out, float) and type(value).__module__ == "numpy":
            # np.float32(0.1).item() is 0.10000000149...; NumPy's own shortest text is 0.1
            try:
                return float(str(value))
            except ValueError:
                return out
        return out
    return value


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


def number(name: str, value: Any, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """``value`` as a finite Python float within [low, high] (ends open where asked).

    Raises:
        WrongType: ``value`` is not a number (a string, None, a bool, a list).
        ValueError: NaN, infinity, or outside the range; the message names ``name``.
    """
    plain = _plain(value)
    where = f" ({hint})" if hint else ""
    if isinstance(plain, bool) or not isinstance(plain, numbers.Real):
        rng = _bounds(low, high, low_open, high_open)
        raise WrongType(f"{name} {value!r} must be a number{' ' + rng if rng else ''}{where}")
    out = float(plain)
    if not math.isfinite(out):
        rng = _bounds(low, high, low_open, high_open)
        raise ValueError(f"{name} {value!r} must be a finite number, not NaN or infinity"
                         f"{'; use a value ' + rng if rng else ''}{where}")
    below = low is not None and (out <= low if low_open else out < low)
    above = high is not None and (out >= high if high_open else out > high)
    if below or above:
        rng = _bounds(low, high, low_open, high_open)
        raise ValueError(f"{name} {value!r} must {'lie' if rng.startswith('in') else 'be'} "
                         f"{rng}{where}")
    return out


def integer(name: str, value: Any, low: int | None = None, high: int | None = None, *,
            hint: str = "") -> int:
    """``value`` as a Python int within [low, high] (both ends included).

    Whole floats (``4.0``) are refused: a count written as a float is usually a mistake.

    Raises:
        WrongType: ``value`` is not an integer (a float, a string, None, a bool).
        ValueError: outside the range; the message names ``name``.
    """
    plain = _plain(value)
    where = f" ({hint})" if hint else ""
    rng = _bounds(low, high, False, False)
    if isinstance(plain, bool) or not isinstance(plain, numbers.Integral):
        raise WrongType(f"{name} {value!r} must be an integer{' ' + rng if rng else ''}{where}")
    out = int(plain)
    if (low is not None and out < low) or (high is not None and out > high):
        word = "lie" if low is not None and high is not None else "be"
        raise ValueError(f"{name} {value!r} must {word} {rng}{where}")
    return out


def seed(value: Any, name: str = "seed") -> int:
    """A seed as a Python int in [0, 2**63)."""
    plain = _plain(value)
    if isinstance(plain, numbers.Integral) and not isinstance(plain, bool) \
            and not 0 <= int(plain) < SEED_LIMIT:
        raise ValueError(f"{name} {value!r} must lie in [0, 2**63): a torch generator takes "
                         "no more; any smaller non-negative integer works")
    if isinstance(plain, bool) or not isinstance(plain, numbers.Integral):
        raise WrongType(f"{name} {value!r} must be a non-negative integer, e.g. 7")
    return int(plain)


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool: True/False, NumPy booleans or 0/1; a string such as 'no' is refused."""
    plain = _plain(value)
    if isinstance(plain, bool):
        return plain
    if type(plain).__name__ == "bool_":
        return bool(plain)
    if isinstance(plain, numbers.Integral) and int(plain) in (0, 1):
        return bool(plain)
    raise WrongType(f"{name} {value!r} must be True or False")
