"""Which role each key of a Dict observation plays for :class:`~mmrl.extractor.MultimodalExtractor`: an image, an
instruction of token ids, or a vector; and how an image key is read (channel axis, scale, integer-coded cells)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim

__all__ = [
    "IMAGE_CHANNEL_COUNTS",
    "MAX_CELL_CATEGORIES",
    "TOKENIZE_WRAPPER",
    "ImageInput",
    "assign_roles",
    "cell_categories",
    "image_channel_axis",
    "image_input_of",
    "is_integer_box",
    "looks_like_tokens",
    "tensor_shape",
]

#: Channel counts recognised at either end of an image shape (grey, RGB, RGBA/RGBD).
IMAGE_CHANNEL_COUNTS = (1, 3, 4)
TOKENIZE_WRAPPER = "mmrl.wrappers.TokenizeText"


def image_channel_axis(shape: Sequence[int]) -> int:
    """Returns the channel axis (0 or 2) of a 3-D image shape.

    The channel axis is the end (first or last) whose size is 1, 3 or 4. If both ends qualify, the smaller one wins,
    and on a tie the first axis (SB3's ``is_image_space_channels_first`` makes the same call, so a space SB3 leaves
    untransposed is read the way SB3 reads it). If neither qualifies (e.g. stacked frames), the smaller end wins,
    again the first on a tie. MiniGrid's ``(7, 7, 3)`` is channel-last; SB3's transposed ``(3, 56, 56)`` is
    channel-first.
    """
    first, last = shape[0], shape[-1]
    first_ok, last_ok = first in IMAGE_CHANNEL_COUNTS, last in IMAGE_CHANNEL_COUNTS
    if first_ok != last_ok:
        return 0 if first_ok else 2
    return 0 if first <= last else 2


def is_integer_box(space: spaces.Space) -> TypeGuard[spaces.Box]:
    """Whether ``space`` is a ``Box`` of an integer dtype."""
    return isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.integer)


def looks_like_tokens(space: spaces.Space) -> bool:
    """1-D integer Box whose entries share one range ``[0, V-1]`` with ``V >= 2``."""
    return (
        is_integer_box(space)
        and len(space.shape) == 1
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == space.high.flat[0]))
        and space.high.flat[0] >= 1
    )


def tensor_shape(space: spaces.Space) -> tuple[int, ...]:
    """Per-sample shape of the tensor SB3's ``preprocess_obs`` makes from ``space`` (Discrete: one-hot)."""
    if isinstance(space, spaces.Box | spaces.MultiBinary):
        return tuple(space.shape)
    return (get_flattened_obs_dim(space),)


#: Largest per-channel value count for which an integer image is read as a grid of categories (see
#: :func:`cell_categories`).
MAX_CELL_CATEGORIES = 64


@dataclass(frozen=True)
class ImageInput:
    """How one image key's tensor becomes ``image_BCHW``: layout, scale, channel-first shape and, for integer-coded
    grids, the number of values of each channel (then the ids are embedded, not scaled)."""

    channels_last: bool
    scale: float
    shape_CHW: tuple[int, int, int]
    categories: tuple[int, ...] | None = None


def cell_categories(space: spaces.Box, channel_axis: int) -> tuple[int, ...] | None:
    """Values per channel if ``space`` is an integer-coded grid, else ``None``.

    A grid of categories is an integer ``Box`` with lower bound 0 everywhere, an upper bound that is the same at
    every pixel of a channel (it may differ between channels, like MiniGrid's object / colour / state ids once
    :class:`mmrl.wrappers.minigrid.MiniGridSymbolicImage` declares them, or mmrl's ``image_mode="symbolic"``), and
    at most :data:`MAX_CELL_CATEGORIES` values per channel. ``uint8`` images bounded by 255 are pictures.
    """
    if not np.issubdtype(space.dtype, np.integer) or not bool(np.all(space.low == 0)):
        return None
    high_CHW = np.moveaxis(np.asarray(space.high), channel_axis, 0).reshape(space.shape[channel_axis], -1)
    if not bool(np.all(high_CHW == high_CHW[:, :1])):
        return None
    highs = [int(value) for value in high_CHW[:, 0]]
    if max(highs) + 1 > MAX_CELL_CATEGORIES or min(highs) < 1:
        return None
    return tuple(high + 1 for high in highs)


def stacked_channel_axis(shape: Sequence[int], frames: int) -> int:
    """The channel axis (0 or 2) of a 3-D image of ``frames`` frames stacked along it: the end whose size is
    ``frames`` times 1, 3 or 4 (the first on a tie); :func:`image_channel_axis` for one frame.

    Raises:
        ValueError: If neither end holds ``frames`` frames of 1, 3 or 4 channels.
    """
    if frames == 1:
        return image_channel_axis(shape)
    for axis in (0, 2):
        if shape[axis] % frames == 0 and shape[axis] // frames in IMAGE_CHANNEL_COUNTS:
            return axis
    raise ValueError(
        f"image_frames={frames}: an image of shape {tuple(shape)} does not hold {frames} frames of 1, 3 or 4 "
        f"channels along its first or last axis; set image_frames to the frames the env stacks (frame_stack)"
    )


def image_input_of(space: spaces.Box, normalized_images: bool, embed_cells: bool | None, frames: int = 1) -> ImageInput:
    """How the tensor of image space ``space`` becomes ``image_BCHW`` (see :class:`ImageInput`); ``frames``: the
    number of frames stacked along the channel axis (``categories`` are then those of one frame).

    Raises:
        ValueError: With ``embed_cells=True`` for a space that is not an integer-coded grid, or ``frames`` that do
            not divide the channels (or a grid whose frames do not share their channels' bounds).
    """
    channel_axis = stacked_channel_axis(space.shape, frames)
    height, width = (space.shape[1], space.shape[2]) if channel_axis == 0 else (space.shape[0], space.shape[1])
    channels = space.shape[channel_axis]
    categories = cell_categories(space, channel_axis) if embed_cells is not False else None
    if embed_cells and categories is None:
        raise ValueError(
            f"embed_cells=True needs integer-coded image grids (integer Box, low 0, one upper bound per channel, "
            f"at most {MAX_CELL_CATEGORIES} values), got {space}; pass embed_cells=None to detect them"
        )
    if categories is not None:
        per_frame = len(categories) // frames
        if categories != categories[:per_frame] * frames:
            raise ValueError(
                f"image_frames={frames}: the {frames} frames of a grid of shape {space.shape} do not share their "
                f"channels' bounds {categories}; set image_frames to the frames the env stacks (frame_stack)"
            )
        return ImageInput(channel_axis == 2, 1.0, (int(channels), int(height), int(width)), categories[:per_frame])
    if np.issubdtype(space.dtype, np.floating):
        scale = 1.0
    elif space.dtype == np.uint8 and bool(np.all(space.low == 0)) and bool(np.all(space.high == 255)):
        scale = 1.0 if normalized_images else 1.0 / 255.0
    else:
        high = float(np.max(space.high))
        scale = 1.0 / high if np.isfinite(high) and high > 0 else 1.0
    return ImageInput(channel_axis == 2, scale, (int(channels), int(height), int(width)))


def assign_roles(
    observation_space: spaces.Dict,
    image_keys: Sequence[str] | None = None,
    text_keys: Sequence[str] | None = None,
    ignore_keys: Sequence[str] | None = None,
) -> dict[str, str]:
    """Assigns each key of ``observation_space`` a role: ``"image"``, ``"text"``, ``"vector"`` or ``"ignore"``.

    Explicit lists win; keys in none of them are classified automatically (see :class:`MultimodalExtractor`).

    Raises:
        ValueError: For a non-Dict space, an unsupported subspace (with the wrapper to use), a listed key that is
            absent or in two lists, or a listed key whose space does not fit its role.
    """
    if not isinstance(observation_space, spaces.Dict):
        raise ValueError(
            f"MultimodalExtractor needs a gymnasium.spaces.Dict observation space of images and token ids, got "
            f"{observation_space}. Tokenise text observations with {TOKENIZE_WRAPPER} (it yields a Dict with an "
            f"image and a token-id key); for image-only Box observations use SB3's CnnPolicy"
        )
    subspaces = observation_space.spaces
    for key, subspace in subspaces.items():
        if isinstance(subspace, spaces.Text):
            raise ValueError(
                f"observation key {key!r} is a raw text space {subspace}; the extractor needs token ids "
                f"(a 1-D integer Box): wrap the env with {TOKENIZE_WRAPPER}"
            )
        if not isinstance(subspace, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
            raise ValueError(
                f"observation key {key!r} has unsupported space {subspace}; expected Box images, 1-D integer Box "
                f"token ids (see {TOKENIZE_WRAPPER}) or Box/Discrete/MultiDiscrete/MultiBinary vectors"
            )

    explicit: dict[str, str] = {}
    for role, keys in (("image", image_keys), ("text", text_keys), ("ignore", ignore_keys)):
        if isinstance(keys, str):
            raise ValueError(f"{role}_keys must be a list of keys, got the string {keys!r}")
        for key in keys or ():
            if key not in subspaces:
                raise ValueError(f"{role} key {key!r} is not in the observation space; keys: {list(subspaces)}")
            if key in explicit:
                raise ValueError(f"observation key {key!r} is listed as both {explicit[key]} and {role}")
            explicit[key] = role
    for key, role in explicit.items():
        subspace = subspaces[key]
        if role == "image" and not (isinstance(subspace, spaces.Box) and len(subspace.shape) == 3):
            raise ValueError(
                f"image key {key!r}: expected a 3-D Box (H, W, C) or (C, H, W), got {subspace} with shape "
                f"{getattr(subspace, 'shape', None)}"
            )
        if role == "text" and not (
            is_integer_box(subspace) and len(subspace.shape) == 1 and bool(np.all(subspace.low >= 0))
        ):
            raise ValueError(
                f"text key {key!r}: expected a 1-D integer Box of token ids like Box(0, V-1, (L,), int64), got "
                f"{subspace}; tokenise text with {TOKENIZE_WRAPPER}"
            )

    roles: dict[str, str] = {}
    for key, subspace in subspaces.items():
        if key in explicit:
            roles[key] = explicit[key]
        elif image_keys is None and isinstance(subspace, spaces.Box) and len(subspace.shape) == 3:
            roles[key] = "image"
        elif text_keys is None and looks_like_tokens(subspace):
            roles[key] = "text"
        else:
            roles[key] = "vector"
    return roles
