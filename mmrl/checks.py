"""Argument checks shared by the layers: an int (of at least some value) or a bool, with messages that say what
was expected, what came and, through ``hint``, how to fix it."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_int(name: str, value: Any, low: int | None = None, hint: str = "") -> int:
    """Returns ``value`` as an ``int`` if it is an integer (Python or NumPy, not a bool) of at least ``low``.

    Args:
        name: The argument's name, for the message.
        value: The value to check.
        low: The smallest value allowed (``None``: no bound).
        hint: How to fix it, appended to the message (e.g. ``" (room side, walls included)"``).

    Raises:
        TypeError: ``value`` is not an integer.
        ValueError: ``value`` is below ``low``.
    """
    expected = "an int" if low is None else f"an int >= {low}"
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}: {value!r}{hint}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be {expected}, got {value!r}{hint}")
    return int(value)


def check_bool(name: str, value: Any, hint: str = "") -> bool:
    """Returns ``value`` as a ``bool`` if it is one (Python or NumPy).

    Raises:
        TypeError: ``value`` is not a bool (``"no"`` and ``0`` are refused: they read as a bool by accident).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool{hint}, got {type(value).__name__}: {value!r}")
    return bool(value)
