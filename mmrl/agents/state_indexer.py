"""Map observations to rows of a Q-table.

Two indexers share one small interface (``n_states``, ``max_states``, ``index``, ``to_arrays``/``load_arrays``):

* :class:`DiscreteStateIndexer` for ``Discrete`` observation spaces (FrozenLake, Taxi, CliffWalking): the
  observation *is* the row (minus the space's ``start``), the table has all ``n`` rows from the beginning.
* :class:`StateIndexer` for everything else (``Dict`` of image + mission arrays, ``Box``, ``MultiDiscrete``,
  ``MultiBinary``, ``Tuple``): each distinct observation gets the next free row the first time it is seen,
  keyed by a 128-bit BLAKE2b digest of its bytes. The digest is stable across processes and machines (unlike
  Python's salted ``hash``): leaves are visited in sorted ``Dict``-key order (``Tuple`` in position order), cast
  to the space's dtype in little-endian byte order, and their C-order bytes are concatenated. The mapping grows on
  demand up to ``max_states`` rows; one more distinct observation raises :class:`StateCapacityError` instead of
  wrapping or evicting. It is saved as a ``(n_states, 2)`` little-endian ``uint64`` array (row ``i`` holds the
  digest of the observation mapped to row ``i``), never pickled.

With 128-bit digests, the probability that any two of ``n`` distinct observations collide is about
``n**2 / 2**129`` (below 1e-26 for a million states), so collisions are ignored.

References:
    Aumasson et al. (2013), "BLAKE2: simpler, smaller, fast as MD5", ACNS; RFC 7693. Python ``hashlib.blake2b``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = [
    "DIGEST_ALGORITHM",
    "DiscreteStateIndexer",
    "StateCapacityError",
    "StateIndexer",
    "batch_size_of",
    "make_state_indexer",
]

DIGEST_ALGORITHM = "blake2b-128"
_DIGEST_BYTES = 16


class StateCapacityError(RuntimeError):
    """Raised when a new distinct observation would need more than ``max_states`` table rows."""


def _leaves(space: spaces.Space, observation: Any) -> Iterator[tuple[spaces.Space, Any]]:
    """Yield ``(leaf_space, leaf_value)`` pairs in canonical order (sorted Dict keys, Tuple positions)."""
    if isinstance(space, spaces.Dict):
        for key in sorted(space.spaces):
            if key not in observation:
                raise ValueError(f"observation is missing Dict key {key!r} (expected keys {sorted(space.spaces)})")
            yield from _leaves(space.spaces[key], observation[key])
    elif isinstance(space, spaces.Tuple):
        for subspace, value in zip(space.spaces, observation, strict=True):
            yield from _leaves(subspace, value)
    else:
        yield space, observation


def _leaf_shape_and_dtype(space: spaces.Space) -> tuple[tuple[int, ...], np.dtype]:
    if isinstance(space, spaces.Discrete):
        return (), np.dtype(np.int64)
    if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
        return tuple(space.shape), np.dtype(space.dtype)
    raise TypeError(
        f"observation space {space} is not supported by the tabular agents "
        "(supported leaves: Discrete, Box, MultiDiscrete, MultiBinary, inside Dict/Tuple)"
    )


def _first_leaf(space: spaces.Space, observation: Any) -> tuple[spaces.Space, Any]:
    return next(_leaves(space, observation))


def batch_size_of(space: spaces.Space, observation: Any) -> int | None:
    """Return the batch size of ``observation`` (a batch of observations of ``space``), or None for a single one.

    Raises:
        ValueError: If the shape fits neither a single observation nor a batch.
    """
    leaf_space, leaf_value = _first_leaf(space, observation)
    shape, _ = _leaf_shape_and_dtype(leaf_space)
    value_shape = np.shape(leaf_value)
    if value_shape == shape:
        return None
    if len(value_shape) == len(shape) + 1 and value_shape[1:] == shape:
        return int(value_shape[0])
    raise ValueError(
        f"observation of shape {value_shape} matches neither one observation of {leaf_space} (shape {shape}) "
        f"nor a batch of them (shape (n, *{shape}))"
    )


class DiscreteStateIndexer:
    """Identity indexer for a ``Discrete(n, start)`` observation space: row = observation - start."""

    def __init__(self, observation_space: spaces.Discrete) -> None:
        self.observation_space = observation_space
        self.start = int(observation_space.start)
        self.max_states = int(observation_space.n)

    @property
    def n_states(self) -> int:
        """Number of rows in use (always all ``n``)."""
        return self.max_states

    def index(self, observations: Any, add: bool = True) -> np.ndarray:
        """Rows of a batch of observations, as ``int64`` of shape ``(batch,)``.

        Raises:
            ValueError: If an observation lies outside the space.
        """
        rows = np.asarray(observations, dtype=np.int64).reshape(-1) - self.start
        # One reduction for both bounds: negative rows are huge as unsigned integers.
        if rows.size and rows.view(np.uint64).max() >= self.max_states:
            raise ValueError(f"observation outside {self.observation_space}: {rows + self.start}")
        return rows

    def describe(self) -> dict[str, Any]:
        """JSON description of the mapping."""
        return {"type": "discrete", "n_states": self.n_states, "start": self.start}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays needed to restore the mapping (none: it is the identity)."""
        return {}

    def load_arrays(self, arrays: dict[str, np.ndarray], n_states: int) -> None:
        """Check that a saved table has ``n`` rows.

        Raises:
            ValueError: If ``n_states`` differs from the space's ``n``.
        """
        if n_states != self.n_states:
            raise ValueError(f"table has {n_states} rows but {self.observation_space} has {self.n_states} states")


class StateIndexer:
    """Grow-on-demand map from observations to table rows, keyed by a stable BLAKE2b-128 digest.

    Args:
        observation_space: Space of single observations (``Dict``, ``Tuple``, ``Box``, ``MultiDiscrete``,
            ``MultiBinary``, ``Discrete`` leaves).
        max_states: Hard cap on the number of rows; exceeding it raises :class:`StateCapacityError`.
    """

    def __init__(self, observation_space: spaces.Space, max_states: int = 1_000_000) -> None:
        if max_states < 1:
            raise ValueError(f"max_states must be >= 1, got {max_states}")
        self.observation_space = observation_space
        self.max_states = int(max_states)
        self._leaf_layout = [
            _leaf_shape_and_dtype(leaf) for leaf, _ in _leaves(observation_space, _placeholder(observation_space))
        ]
        self._row_of_digest: dict[bytes, int] = {}
        self._digests: list[bytes] = []

    @property
    def n_states(self) -> int:
        """Number of distinct observations seen so far (rows in use)."""
        return len(self._digests)

    def digests(self, observations: Any) -> list[bytes]:
        """16-byte digests of a batch of observations (leading batch axis on every leaf)."""
        columns = []
        batch = None
        for (shape, dtype), (_, value) in zip(
            self._leaf_layout, _leaves(self.observation_space, observations), strict=True
        ):
            array = np.ascontiguousarray(value, dtype=dtype.newbyteorder("<"))
            if array.shape[1:] != shape:
                raise ValueError(f"observation leaf of shape {array.shape} is not a batch of shape (n, *{shape})")
            if batch is None:
                batch = array.shape[0]
            elif array.shape[0] != batch:
                raise ValueError(f"observation leaves disagree on the batch size: {batch} vs {array.shape[0]}")
            columns.append(array.reshape(batch, -1).view(np.uint8))
        flat = columns[0] if len(columns) == 1 else np.concatenate(columns, axis=1)
        flat = np.ascontiguousarray(flat)
        return [hashlib.blake2b(row, digest_size=_DIGEST_BYTES).digest() for row in flat]

    def index(self, observations: Any, add: bool = True) -> np.ndarray:
        """Rows of a batch of observations, as ``int64`` of shape ``(batch,)``.

        Args:
            observations: A batch (leading axis on every leaf).
            add: Give unseen observations new rows (in batch order). If False, unseen observations map to -1.

        Raises:
            StateCapacityError: If adding the batch's new observations would exceed ``max_states``; nothing is
                added in that case.
        """
        digests = self.digests(observations)
        lookup = self._row_of_digest.get
        rows = [lookup(digest, -1) for digest in digests]
        if add and -1 in rows:
            new_digests = list(dict.fromkeys(d for d, row in zip(digests, rows, strict=True) if row == -1))
            if self.n_states + len(new_digests) > self.max_states:
                raise StateCapacityError(
                    f"state table is full: {self.n_states} distinct observations are indexed, max_states="
                    f"{self.max_states}, and this batch brings {len(new_digests)} new ones. Raise max_states, or "
                    "use a compact (e.g. symbolic) observation mode so that fewer distinct observations occur."
                )
            for digest in new_digests:
                self._row_of_digest[digest] = len(self._digests)
                self._digests.append(digest)
            rows = [self._row_of_digest[digest] for digest in digests]
        return np.asarray(rows, dtype=np.int64)

    def describe(self) -> dict[str, Any]:
        """JSON description of the mapping (the digests themselves go to :meth:`to_arrays`)."""
        return {
            "type": "hash",
            "digest": DIGEST_ALGORITHM,
            "n_states": self.n_states,
            "max_states": self.max_states,
            "array": "state_digests",
            "layout": "row i of state_digests (uint64 little-endian pairs) is the digest of the observation of row i",
        }

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"state_digests": (n_states, 2) uint64}``: the digest bytes of row ``i`` as two little-endian words."""
        packed = np.frombuffer(b"".join(self._digests), dtype="<u8").reshape(-1, 2)
        return {"state_digests": packed.copy()}

    def load_arrays(self, arrays: dict[str, np.ndarray], n_states: int) -> None:
        """Restore the mapping from :meth:`to_arrays` output.

        Raises:
            ValueError: If the array is missing, misshapen, has duplicates or exceeds ``max_states``.
        """
        packed = arrays.get("state_digests")
        if packed is None:
            raise ValueError("missing array 'state_digests'")
        if packed.dtype != np.dtype("<u8") or packed.ndim != 2 or packed.shape[1] != 2:
            raise ValueError(f"'state_digests' must be (n, 2) uint64, got {packed.shape} {packed.dtype}")
        if packed.shape[0] != n_states:
            raise ValueError(f"'state_digests' has {packed.shape[0]} rows but the table has {n_states}")
        if n_states > self.max_states:
            raise ValueError(f"{n_states} saved states exceed max_states={self.max_states}")
        raw = np.ascontiguousarray(packed, dtype="<u8").tobytes()
        digests = [raw[i : i + _DIGEST_BYTES] for i in range(0, len(raw), _DIGEST_BYTES)]
        mapping = {digest: row for row, digest in enumerate(digests)}
        if len(mapping) != len(digests):
            raise ValueError("'state_digests' contains duplicate digests")
        self._digests = digests
        self._row_of_digest = mapping


def _placeholder(space: spaces.Space) -> Any:
    """A structure with the same Dict keys / Tuple arity as ``space`` (values unused)."""
    if isinstance(space, spaces.Dict):
        return {key: _placeholder(sub) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_placeholder(sub) for sub in space.spaces)
    return None


def make_state_indexer(
    observation_space: spaces.Space, max_states: int = 1_000_000
) -> DiscreteStateIndexer | StateIndexer:
    """Return a :class:`DiscreteStateIndexer` for ``Discrete`` spaces and a :class:`StateIndexer` otherwise.

    Raises:
        ValueError: If a ``Discrete`` space has more than ``max_states`` states.
        TypeError: If the space has an unsupported leaf (e.g. ``Text``, ``Graph``).
    """
    if isinstance(observation_space, spaces.Discrete):
        if observation_space.n > max_states:
            raise ValueError(f"{observation_space} has more states than max_states={max_states}")
        return DiscreteStateIndexer(observation_space)
    return StateIndexer(observation_space, max_states=max_states)
