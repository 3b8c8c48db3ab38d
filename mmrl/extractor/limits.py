"""Checks of the extractor's arguments and of the observation spaces it is built for, against documented limits, so
that a bad value is a one-line error before any layer is allocated.

Limits (raise them by assigning the module constant before building the extractor, if a model really needs more):

* :data:`MAX_WIDTH`: any layer width (``features_dim``, ``text_dim``, ``vector_dim``, ``fusion_dim``,
  ``cell_dim``, a ``net_arch`` entry).
* :data:`MAX_KEY_ELEMENTS`: the numbers one observation key holds per sample (an image's ``H * W * C``, a token row's
  length, a vector's flattened size, a ``Discrete(n)``'s one-hot width ``n``).
* :data:`MAX_VOCABULARY`: the vocabulary of a token-id key (its ``high + 1``).
* :data:`MAX_LAYER_PARAMETERS`: the weights of the extractor's final projection (``fused width * features_dim``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from gymnasium import spaces

__all__ = [
    "MAX_KEY_ELEMENTS",
    "MAX_LAYER_PARAMETERS",
    "MAX_VOCABULARY",
    "MAX_WIDTH",
    "check_choice",
    "check_dimension",
    "check_key_sizes",
    "check_layer_parameters",
    "check_vocabulary",
]

#: Largest layer width accepted (the widest layers of published RL encoders are a few thousand units).
MAX_WIDTH = 65_536
#: Largest number of values per sample in one observation key (a 2048 x 2048 RGB image is 12.6 M).
MAX_KEY_ELEMENTS = 2**24
#: Largest vocabulary of a token-id key (BERT-size vocabularies are 30 k; a hashing tokenizer a few 100 k).
MAX_VOCABULARY = 2**21
#: Largest weight matrix of one linear layer built from the space (2**28 float32 weights are 1 GiB).
MAX_LAYER_PARAMETERS = 2**28


def check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    """Raises ``ValueError`` listing ``choices`` if ``value`` is not one of them."""
    if not isinstance(value, str) or value not in choices:
        shown = repr(value) if isinstance(value, str) and len(value) <= 100 else type(value).__name__
        raise ValueError(f"unknown {option} {shown}; valid choices: {', '.join(choices)}")


def check_dimension(name: str, value: Any, none_allowed: bool = False) -> int:
    """Returns ``value`` as an ``int`` if it is an integer (Python or NumPy, not ``bool``) in ``[1, MAX_WIDTH]``.

    Args:
        name: Argument name, for the message.
        value: The width to check.
        none_allowed: Whether the caller also accepts ``None`` (only said in the message; check ``None`` first).

    Raises:
        TypeError: If ``value`` is not an integer (e.g. a float, a string or ``True``).
        ValueError: If ``value`` is below 1 or above :data:`MAX_WIDTH`.
    """
    expected = "a positive int or None" if none_allowed else "a positive int"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        short = isinstance(value, (bool, float, type(None))) or (isinstance(value, str) and len(value) <= 100)
        shown = repr(value) if short else "a value"
        raise TypeError(
            f"{name} must be {expected} (a layer width), got {shown} of type {type(value).__name__}; "
            f"pass an integer such as {name}=64"
        )
    width = int(value)
    if width < 1:
        raise ValueError(
            f"{name} must be {expected} (a layer width of at least 1), got {width!r}; a width of 0 builds a layer "
            f"without outputs, so pass e.g. {name}=64"
        )
    if width > MAX_WIDTH:
        raise ValueError(
            f"{name} must be at most {MAX_WIDTH:,} (a layer width; mmrl.extractor.limits.MAX_WIDTH), got "
            f"{width:,}; pass e.g. {name}=128"
        )
    return width


def _elements(space: spaces.Space) -> int | None:
    """Values per sample of ``space`` as SB3 hands it to the extractor, computed from its shape alone."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.MultiDiscrete):
        cells = math.prod(space.nvec.shape)
        return cells if cells > MAX_KEY_ELEMENTS else int(space.nvec.sum())
    if isinstance(space, spaces.Box | spaces.MultiBinary):
        return math.prod(int(size) for size in space.shape)
    return None


def check_key_sizes(observation_space: spaces.Dict) -> None:
    """Raises ``ValueError`` for a key of ``observation_space`` holding more than :data:`MAX_KEY_ELEMENTS` values.

    Reads only shapes (never the bounds), so a space declaring ``(100000, 100000, 100)`` is refused at once.
    """
    for key, subspace in observation_space.spaces.items():
        elements = _elements(subspace)
        if elements is not None and elements > MAX_KEY_ELEMENTS:
            shape = getattr(subspace, "shape", None)
            raise ValueError(
                f"observation key {str(key)[:100]!r} declares {elements:,} values per sample (shape {shape}), more "
                f"than the extractor's limit of {MAX_KEY_ELEMENTS:,} (mmrl.extractor.limits.MAX_KEY_ELEMENTS); "
                f"downscale the images (e.g. gymnasium.wrappers.ResizeObservation) or drop the key with ignore_keys"
            )


def check_vocabulary(key: str, vocab_size: int) -> int:
    """Returns ``vocab_size`` if it is at most :data:`MAX_VOCABULARY`, else raises ``ValueError``."""
    if vocab_size > MAX_VOCABULARY:
        raise ValueError(
            f"text key {key[:100]!r} declares token ids up to {vocab_size - 1:,}, a vocabulary larger than the limit "
            f"of {MAX_VOCABULARY:,} (mmrl.extractor.limits.MAX_VOCABULARY); declare the tokenizer's real vocabulary "
            f"as the space's high (mmrl.wrappers.TokenizeText does)"
        )
    return vocab_size


def check_layer_parameters(name: str, inputs: int, outputs: int) -> None:
    """Raises ``ValueError`` if a ``Linear(inputs, outputs)`` would hold more than :data:`MAX_LAYER_PARAMETERS`."""
    if inputs * outputs > MAX_LAYER_PARAMETERS:
        raise ValueError(
            f"{name} would be a {inputs:,} x {outputs:,} layer ({inputs * outputs:,} weights), more than the limit of "
            f"{MAX_LAYER_PARAMETERS:,} (mmrl.extractor.limits.MAX_LAYER_PARAMETERS); use smaller images or a "
            f"smaller features_dim"
        )
