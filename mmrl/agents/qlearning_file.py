"""The :class:`~mmrl.agents.QLearning` save file: one NumPy ``.npz`` archive (a zip) of ``.npy`` arrays plus a
``metadata.json`` member.

The metadata holds the format and package version, the algorithm, the observation/action spaces, the
hyperparameters and schedules, the state-index description and the shape and dtype of every array. Inspect a file
with ``unzip -p model.npz metadata.json``.

Reading is bounded: every member is checked against the shape and dtype the metadata declares *before* anything is
decompressed, and the arrays of one file may hold at most ``max_bytes`` (default :data:`MAX_LOAD_BYTES`) in all, so
a zip bomb is refused instead of being inflated. Arrays are read with ``allow_pickle=False`` semantics (object
dtypes are refused) and every failure is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import numpy as np
from gymnasium import spaces

from mmrl.agents.rng_state import rng_from_array
from mmrl.agents.schedules import schedule_from_dict
from mmrl.atomic import atomic_path
from mmrl.spaces_json import space_from_json
from mmrl.version import __version__

__all__ = [
    "ALGORITHM_NAME",
    "DEFAULT_SUFFIX",
    "FILE_FORMAT",
    "FILE_FORMAT_VERSION",
    "MAX_LOAD_BYTES",
    "METADATA_MEMBER",
    "SavedProgress",
    "file_errors",
    "last_obs_arrays",
    "last_obs_from_arrays",
    "read_archive",
    "saved_arguments",
    "saved_progress",
    "write_archive",
]

ALGORITHM_NAME = "QLearning"
FILE_FORMAT = "mmrl.agents.QLearning"
FILE_FORMAT_VERSION = 1
METADATA_MEMBER = "metadata.json"
DEFAULT_SUFFIX = ".npz"
#: Largest total size of the arrays of one file that :func:`read_archive` accepts (1 GiB holds a double-Q table of
#: 1M states x 40 actions with its visit counts); pass ``max_bytes`` to raise it.
MAX_LOAD_BYTES = 2**30
#: Largest ``metadata.json`` member read (the metadata is a few kilobytes; digests of hashed states are arrays).
MAX_METADATA_BYTES = 16 * 2**20
#: Largest ``.npy`` header (NumPy writes 64-byte aligned headers of at most a few hundred bytes).
MAX_NPY_HEADER_BYTES = 4096
#: Bytes read from a member per call while streaming it into its array.
READ_CHUNK_BYTES = 16 * 2**20
LAST_OBS = "last_obs"


# ------------------------------------------------------------------------------------------------------ writing
def write_archive(path: Path, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Writes ``metadata`` (as ``metadata.json``, with the format, versions and array shapes added) and ``arrays``
    (as ``<name>.npy``) to ``path`` atomically."""
    metadata = {
        **metadata,
        "format": FILE_FORMAT,
        "format_version": FILE_FORMAT_VERSION,
        "algorithm": ALGORITHM_NAME,
        "mmrl_version": __version__,
        "arrays": {name: {"shape": list(array.shape), "dtype": array.dtype.str} for name, array in arrays.items()},
    }
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(METADATA_MEMBER, json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


# ------------------------------------------------------------------------------------------------------ reading
def _read_npy(stream: IO[bytes], name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Reads one ``.npy`` member whose header must declare ``shape`` and ``dtype``, allocating only that array."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        header_shape, fortran_order, header_dtype = np.lib.format.read_array_header_1_0(
            stream, max_header_size=MAX_NPY_HEADER_BYTES
        )
    elif version == (2, 0):
        header_shape, fortran_order, header_dtype = np.lib.format.read_array_header_2_0(
            stream, max_header_size=MAX_NPY_HEADER_BYTES
        )
    else:
        raise ValueError(f"array {name!r} has an unsupported .npy version {version}")
    if tuple(header_shape) != shape or header_dtype != dtype:
        raise ValueError(
            f"array {name!r} is {tuple(header_shape)} {header_dtype.str}, the metadata says {list(shape)} {dtype.str}"
        )
    array = np.empty(shape, dtype=dtype, order="F" if fortran_order else "C")
    buffer = array.reshape(-1, order="A").view(np.uint8).data
    filled = 0
    while filled < buffer.nbytes:
        chunk = stream.read(min(READ_CHUNK_BYTES, buffer.nbytes - filled))
        if not chunk:
            raise ValueError(f"array {name!r} is truncated ({filled} of {buffer.nbytes} bytes)")
        buffer[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    return np.ascontiguousarray(array)


def _declared_array(name: str, spec: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype the metadata declares for array ``name``."""
    if not isinstance(spec, dict):
        raise ValueError(
            f"not a QLearning file (its metadata describes array {name!r} as {type(spec).__name__}, a QLearning "
            f"save gives each array a dict with its shape and dtype); pass a file written by QLearning.save()"
        )
    shape, dtype_text = spec.get("shape"), spec.get("dtype")
    if (
        not isinstance(shape, list)
        or len(shape) > 8
        or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in shape)
        or not isinstance(dtype_text, str)
        or len(dtype_text) > 8
    ):
        raise ValueError(f"not a QLearning file (array {name!r} has no valid shape and dtype in the metadata)")
    try:
        dtype = np.dtype(dtype_text)
    except TypeError as error:
        raise ValueError(f"array {name!r} has an unknown dtype in the metadata") from error
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ValueError(f"array {name!r} has dtype {dtype.str}; a QLearning file holds only numeric arrays")
    return tuple(shape), dtype


def read_archive(path: Path, max_bytes: int = MAX_LOAD_BYTES) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Reads and validates the metadata and arrays of a saved file (never unpickles, never inflates a zip bomb).

    Args:
        path: A file written by :meth:`mmrl.agents.QLearning.save`.
        max_bytes: Largest total size of the arrays; a file declaring more is refused before any is read.

    Raises:
        ValueError: Naming ``path``, for a corrupted, truncated, foreign or oversized file.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename: info for info in archive.infolist()}
            if METADATA_MEMBER not in members:
                raise ValueError(f"{path}: not a QLearning file (no {METADATA_MEMBER} member)")
            if members[METADATA_MEMBER].file_size > MAX_METADATA_BYTES:
                raise ValueError(
                    f"{path}: not a QLearning file ({METADATA_MEMBER} is {members[METADATA_MEMBER].file_size} bytes, "
                    f"a QLearning save writes a few kilobytes)"
                )
            with archive.open(METADATA_MEMBER) as stream:
                raw = stream.read(MAX_METADATA_BYTES + 1)
            try:
                metadata = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
                raise ValueError(f"{path}: {METADATA_MEMBER} is not valid JSON ({error})") from error
            _check_header(path, metadata)
            described = metadata.get("arrays")
            if not isinstance(described, dict):
                raise ValueError(f"{path}: metadata lists no arrays")
            declared = {name: _declared_array(str(name), spec) for name, spec in described.items()}
            total = sum(math.prod(shape) * dtype.itemsize for shape, dtype in declared.values())
            if total > max_bytes:
                raise ValueError(
                    f"{path}: its arrays declare {total:,} bytes, more than the limit of {max_bytes:,}; pass "
                    f"max_bytes={total} to QLearning.load if the file is trusted and the memory is there"
                )
            arrays: dict[str, np.ndarray] = {}
            for name, (shape, dtype) in declared.items():
                member = members.get(f"{name}.npy")
                if member is None:
                    raise ValueError(f"{path}: array {name!r} listed in the metadata is missing")
                expected = math.prod(shape) * dtype.itemsize
                if member.file_size > expected + MAX_NPY_HEADER_BYTES:
                    raise ValueError(
                        f"{path}: member {member.filename!r} inflates to {member.file_size:,} bytes, the "
                        f"{list(shape)} {dtype.str} array the metadata declares needs {expected:,}"
                    )
                with archive.open(member) as stream:
                    arrays[name] = _read_npy(stream, name, shape, dtype)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: corrupted or truncated QLearning file ({error})") from error
    except (zlib.error, EOFError, OSError) as error:
        raise ValueError(f"{path}: corrupted or truncated QLearning file ({error!r})") from error
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: corrupted QLearning file ({error})") from error
    return metadata, arrays


def _check_header(path: Path, metadata: Any) -> None:
    """Raises ``ValueError`` unless ``metadata`` is the metadata object of a QLearning file of this version."""
    if not isinstance(metadata, dict):
        raise ValueError(
            f"{path}: not a QLearning file ({METADATA_MEMBER} holds a JSON {type(metadata).__name__}, a "
            f"QLearning save holds an object with 'format': {FILE_FORMAT!r}); load it with the tool that "
            f"wrote it, or pass a file written by QLearning.save()"
        )
    if metadata.get("format") != FILE_FORMAT:
        raise ValueError(f"{path}: not a QLearning file (format {str(metadata.get('format'))[:80]!r})")
    if metadata.get("algorithm") != ALGORITHM_NAME:
        raise ValueError(f"{path}: saved by algorithm {str(metadata.get('algorithm'))[:80]!r}, not {ALGORITHM_NAME}")
    if metadata.get("format_version") != FILE_FORMAT_VERSION:
        raise ValueError(
            f"{path}: file format version {str(metadata.get('format_version'))[:20]!r} is not supported "
            f"(this is mmrl {__version__}, format {FILE_FORMAT_VERSION})"
        )


# ----------------------------------------------------------------------------------------------- file contents
@contextlib.contextmanager
def file_errors(path: Path) -> Iterator[None]:
    """Turns errors raised while reading a saved file's content into ``ValueError``s naming the file.

    ``KeyError``, ``TypeError``, ``AttributeError`` and ``IndexError`` mean that the metadata does not have the
    structure :meth:`QLearning.save` writes; a ``ValueError`` gets the path prepended.
    """
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError) as error:
        raise ValueError(f"{path}: malformed QLearning file: {error!r}") from error
    except ValueError as error:
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {error}") from error


def saved_arguments(metadata: dict[str, Any]) -> tuple[spaces.Space, spaces.Space, dict[str, Any]]:
    """The observation space, action space and constructor arguments stored in a file's metadata."""
    hyper = metadata["hyperparameters"]
    observation_space = space_from_json(metadata["observation_space"])
    action_space = space_from_json(metadata["action_space"])
    exploration = metadata["schedules"]["exploration"]
    kind = hyper["exploration_schedule_kind"]
    arguments: dict[str, Any] = {
        "learning_rate": schedule_from_dict(hyper["learning_rate"]),
        "gamma": hyper["gamma"],
        "exploration_initial_eps": hyper["exploration_initial_eps"],
        "exploration_final_eps": hyper["exploration_final_eps"],
        "exploration_fraction": hyper["exploration_fraction"],
        "exploration_schedule": schedule_from_dict(exploration) if kind == "custom" else kind,
        "double_q": hyper["double_q"],
        "initial_q_value": hyper["initial_q_value"],
        "max_states": hyper["max_states"],
        "seed": hyper["seed"],
    }
    return observation_space, action_space, arguments


@dataclasses.dataclass(frozen=True)
class SavedProgress:
    """Where a saved model was in its training: random streams, counters and the current schedule values."""

    rng: np.random.Generator
    predict_rng: np.random.Generator
    num_timesteps: int
    episode_num: int
    exploration_rate: float
    learning_rate_value: float


def saved_progress(arrays: dict[str, np.ndarray]) -> SavedProgress:
    """The training progress stored in a file's arrays.

    Raises:
        ValueError: For a missing or malformed array.
    """
    for name in ("rng_state", "predict_rng_state", "counters", "schedule_values"):
        if name not in arrays:
            raise ValueError(f"missing array {name!r}")
    counters = arrays["counters"]
    if counters.shape != (2,) or counters.dtype.kind not in "iu" or counters.min() < 0:
        raise ValueError(f"array 'counters' must be 2 non-negative integers, got {counters!r}")
    values = arrays["schedule_values"]
    if values.shape != (2,):
        raise ValueError(f"array 'schedule_values' must have 2 entries, got shape {values.shape}")
    if not bool(np.isfinite(values).all()):
        raise ValueError("array 'schedule_values' holds NaN or infinite values")
    return SavedProgress(
        rng_from_array(arrays["rng_state"]),
        rng_from_array(arrays["predict_rng_state"]),
        int(counters[0]),
        int(counters[1]),
        float(values[0]),
        float(values[1]),
    )


def _member_name(key: Any) -> str:
    """A Dict key as one component of an array name: percent-encoded, dots included, so names stay unambiguous."""
    return quote(str(key), safe="").replace(".", "%2E")


def last_obs_arrays(space: spaces.Space, last_obs: Any) -> dict[str, np.ndarray]:
    """The batched last observations as named arrays, walking ``space``: ``last_obs`` for a leaf space,
    ``last_obs.<key>`` for a Dict member and ``last_obs.<position>`` for a Tuple member (nested:
    ``last_obs.<key>.<position>``). :func:`last_obs_from_arrays` rebuilds the same structure."""
    if last_obs is None:
        return {}
    arrays: dict[str, np.ndarray] = {}

    def walk(subspace: spaces.Space, value: Any, name: str) -> None:
        if isinstance(subspace, spaces.Dict):
            for key, member in subspace.spaces.items():
                walk(member, value[key], f"{name}.{_member_name(key)}")
        elif isinstance(subspace, spaces.Tuple):
            for position, member in enumerate(subspace.spaces):
                walk(member, value[position], f"{name}.{position}")
        else:
            arrays[name] = np.asarray(value)

    walk(space, last_obs, LAST_OBS)
    return arrays


def last_obs_from_arrays(arrays: dict[str, np.ndarray], space: spaces.Space) -> Any:
    """The last observations saved by :func:`last_obs_arrays`, as ``space``'s structure (``None`` if none).

    Raises:
        ValueError: If some members of the structure are saved and others are missing.
    """
    prefix = f"{LAST_OBS}."
    if not any(name == LAST_OBS or name.startswith(prefix) for name in arrays):
        return None

    def build(subspace: spaces.Space, name: str) -> Any:
        if isinstance(subspace, spaces.Dict):
            return {key: build(member, f"{name}.{_member_name(key)}") for key, member in subspace.spaces.items()}
        if isinstance(subspace, spaces.Tuple):
            return tuple(build(member, f"{name}.{position}") for position, member in enumerate(subspace.spaces))
        if name not in arrays:
            raise ValueError(f"array {name!r} of the saved last observations is missing")
        return arrays[name]

    return build(space, LAST_OBS)
