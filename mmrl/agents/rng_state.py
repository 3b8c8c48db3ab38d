"""A NumPy ``PCG64`` generator's state as six ``uint64`` words, so a save file restores the exact random stream."""

from __future__ import annotations

import numpy as np

__all__ = ["rng_from_array", "rng_state_to_array"]


def rng_state_to_array(rng: np.random.Generator) -> np.ndarray:
    """The state of a ``PCG64`` generator as 6 little-endian ``uint64`` words (:func:`rng_from_array` inverts it).

    Raises:
        ValueError: For a generator other than ``PCG64``.
    """
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64":
        raise ValueError(f"only PCG64 generators can be saved, got {state['bit_generator']}")
    mask = (1 << 64) - 1
    words = [
        state["state"]["state"] >> 64,
        state["state"]["state"] & mask,
        state["state"]["inc"] >> 64,
        state["state"]["inc"] & mask,
        state["has_uint32"],
        state["uinteger"],
    ]
    return np.asarray(words, dtype="<u8")


def rng_from_array(words: np.ndarray) -> np.random.Generator:
    """A ``PCG64`` generator in the state saved by :func:`rng_state_to_array`.

    Raises:
        ValueError: If ``words`` is not 6 ``uint64`` words.
    """
    if words.shape != (6,) or words.dtype != np.dtype("<u8"):
        raise ValueError(f"RNG state must be 6 uint64 words, got {words.shape} {words.dtype}")
    values = [int(word) for word in words]
    generator = np.random.Generator(np.random.PCG64())
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (values[0] << 64) | values[1], "inc": (values[2] << 64) | values[3]},
        "has_uint32": values[4],
        "uinteger": values[5],
    }
    return generator
