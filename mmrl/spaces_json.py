"""Gymnasium spaces <-> plain JSON, with no pickling and no imports named by the data.

Supported: ``Box`` (``low``/``high``/``shape``/``dtype``), ``Discrete``, ``MultiDiscrete``, ``MultiBinary`` and
``Dict`` (nested). Bounds that are the same everywhere are stored as one number; infinities as the strings
``"inf"``/``"-inf"`` (JSON has no infinity). Dtypes are stored by name and must be one of :data:`ALLOWED_DTYPES`
(never ``object``), so a crafted description cannot smuggle in anything but numbers.

>>> space_from_json(space_to_json(spaces.Discrete(3)))
Discrete(3)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.limits import check_limit, get_limit, short_repr

#: NumPy dtype names a JSON space description may use.
ALLOWED_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
)
_SPECIAL_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _scalar_to_json(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _bound_to_json(values: np.ndarray) -> Any:
    flat = np.asarray(values).reshape(-1)
    if flat.size and bool(np.all(flat == flat[0])):
        return _scalar_to_json(flat[0])
    return [_scalar_to_json(v) for v in flat]


def _bound_from_json(value: Any, shape: tuple[int, ...], dtype: np.dtype, field: str) -> np.ndarray:
    def number(item: Any) -> float | int:
        if isinstance(item, str):
            if item not in _SPECIAL_FLOATS:
                raise ValueError(f"Box {field} entry {item!r} is not a number or one of 'inf', '-inf', 'nan'")
            return _SPECIAL_FLOATS[item]
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"Box {field} entry {item!r} is not a number")
        return item

    if isinstance(value, list):
        expected = int(np.prod(shape, dtype=np.int64))
        if len(value) != expected:
            raise ValueError(f"Box {field} has {len(value)} entries, shape {list(shape)} needs {expected}")
        work = np.float64 if np.issubdtype(dtype, np.floating) else np.int64
        return np.asarray([number(v) for v in value], dtype=work).reshape(shape).astype(dtype)
    return np.full(shape, number(value), dtype=np.float64 if np.issubdtype(dtype, np.floating) else None).astype(dtype)


def _dtype_from_json(name: Any) -> np.dtype:
    if name not in ALLOWED_DTYPES:
        raise ValueError(f"dtype {name!r} is not allowed; expected one of {', '.join(ALLOWED_DTYPES)}")
    return np.dtype(name)


def _int_list(value: Any, field: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{field} must be a list of ints, got {short_repr(value)}")
    return value


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """Describes ``space`` as JSON-serialisable data; :func:`space_from_json` inverts it exactly.

    Raises:
        TypeError: For space types other than Box, Discrete, MultiDiscrete, MultiBinary and Dict.
    """
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": [int(n) for n in space.shape],
            "dtype": np.dtype(space.dtype).name,
            "low": _bound_to_json(space.low),
            "high": _bound_to_json(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": np.asarray(space.nvec).tolist(),
            "start": np.asarray(space.start).tolist(),
            "dtype": np.dtype(space.dtype).name,
        }
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {str(key): space_to_json(sub) for key, sub in space.spaces.items()}}
    if isinstance(space, spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(sub) for sub in space.spaces]}
    raise TypeError(
        f"cannot describe a {type(space).__name__} space in JSON; supported: Box, Discrete, MultiDiscrete, "
        "MultiBinary, Dict, Tuple"
    )


def _check_elements(count: int, what: str) -> None:
    """Refuse a space from a file whose element count is over ``max_space_elements`` (before allocating)."""
    check_limit(f"{what} elements", count, "max_space_elements")


def space_from_json(description: Any, _depth: int = 0) -> spaces.Space:
    """Rebuilds a space from :func:`space_to_json` output.

    Sizes are checked before anything is allocated: at most ``max_space_elements`` elements per space and
    ``max_json_depth`` levels of nested Dict / Tuple spaces (:mod:`mmrl.limits`).

    Raises:
        ValueError: If the description is malformed, too large or too deep, or names an unknown space type or a
            disallowed dtype; the message says which field is wrong.
    """
    if _depth > get_limit("max_json_depth"):
        raise ValueError(f"space description nested deeper than {get_limit('max_json_depth')} levels")
    if not isinstance(description, dict) or "type" not in description:
        raise ValueError(f"a space description must be a dict with a 'type' key, got {short_repr(description)}")
    kind = description["type"]
    try:
        if kind == "Box":
            shape = tuple(_int_list(description["shape"], "Box shape"))
            if any(n < 0 for n in shape) or len(shape) > 32:
                raise ValueError(f"Box shape must have at most 32 non-negative sizes, got {short_repr(list(shape))}")
            _check_elements(math.prod(shape), "Box")
            dtype = _dtype_from_json(description["dtype"])
            low = _bound_from_json(description["low"], shape, dtype, "low")
            high = _bound_from_json(description["high"], shape, dtype, "high")
            return spaces.Box(low, high, shape=shape, dtype=dtype)
        if kind == "Discrete":
            n, start = description["n"], description.get("start", 0)
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, start)):
                raise ValueError(f"Discrete n and start must be ints, got n={n!r}, start={start!r}")
            return spaces.Discrete(n, start=start)
        if kind == "MultiDiscrete":
            if isinstance(description["nvec"], list):
                _check_elements(len(description["nvec"]), "MultiDiscrete")
            nvec = np.asarray(description["nvec"], dtype=np.int64)
            start = np.asarray(description.get("start", np.zeros_like(nvec)), dtype=np.int64)
            return spaces.MultiDiscrete(nvec, dtype=_dtype_from_json(description.get("dtype", "int64")), start=start)
        if kind == "MultiBinary":
            n = description["n"]
            n = n if isinstance(n, int) and not isinstance(n, bool) else _int_list(n, "MultiBinary n")
            _check_elements(n if isinstance(n, int) else math.prod(n), "MultiBinary")
            return spaces.MultiBinary(n)
        if kind == "Dict":
            subspaces = description["spaces"]
            if not isinstance(subspaces, dict):
                raise ValueError(f"Dict 'spaces' must be an object, got {type(subspaces).__name__}")
            return spaces.Dict({str(key): space_from_json(sub, _depth + 1) for key, sub in subspaces.items()})
        if kind == "Tuple":
            subspaces = description["spaces"]
            if not isinstance(subspaces, list):
                raise ValueError(f"Tuple 'spaces' must be a list, got {type(subspaces).__name__}")
            return spaces.Tuple([space_from_json(sub, _depth + 1) for sub in subspaces])
    except KeyError as error:
        raise ValueError(f"{short_repr(kind)} space description lacks the field {error}") from None
    except (TypeError, OverflowError) as error:
        raise ValueError(f"malformed {short_repr(kind)} space description: {short_repr(error)}") from None
    raise ValueError(
        f"unknown space type {short_repr(kind)}; expected Box, Discrete, MultiDiscrete, MultiBinary, Dict or Tuple"
    )
