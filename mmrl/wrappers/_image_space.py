"""Shared plumbing of the image wrappers: layout detection, key resolution, OpenCV interpolation flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from gymnasium import spaces

INTERPOLATIONS: dict[str, int] = {
    "nearest": cv2.INTER_NEAREST,
    "nearest_exact": cv2.INTER_NEAREST_EXACT,
    "linear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "cubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
}
"""Interpolation names accepted by the wrappers, mapped to OpenCV flags (the flags themselves are accepted too)."""


@dataclass(frozen=True)
class ImageLayout:
    """Where the channels of an image observation are.

    Attributes:
        channels_first: ``(C, H, W)`` when true, ``(H, W, C)`` otherwise.
        has_channel_axis: ``False`` for a 2-D ``(H, W)`` image.
    """

    channels_first: bool
    has_channel_axis: bool

    def to_hwc(self, image: np.ndarray) -> np.ndarray:
        """View of ``image`` as ``(H, W, C)``."""
        if not self.has_channel_axis:
            return image[:, :, None]
        return np.moveaxis(image, 0, -1) if self.channels_first else image

    def from_hwc(self, image_hwc: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_hwc` (a 2-D layout needs a single channel)."""
        if not self.has_channel_axis:
            return image_hwc[:, :, 0]
        return np.moveaxis(image_hwc, -1, 0) if self.channels_first else image_hwc

    def hwc_shape(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        if not self.has_channel_axis:
            return (shape[0], shape[1], 1)
        return (shape[1], shape[2], shape[0]) if self.channels_first else (shape[0], shape[1], shape[2])

    def shape_from_hwc(self, height: int, width: int, channels: int) -> tuple[int, ...]:
        if not self.has_channel_axis:
            if channels != 1:
                raise ValueError(f"a 2-D image layout holds one channel, not {channels}")
            return (height, width)
        return (channels, height, width) if self.channels_first else (height, width, channels)


def image_layout(space: spaces.Space, channels_first: bool | None = None, *, where: str = "image") -> ImageLayout:
    """Detect the layout of an image ``Box`` of shape ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``.

    With ``channels_first=None`` a 3-D shape is channels-first exactly when its first axis is strictly shorter than
    its last (``(3, 64, 64)`` is channels-first; ``(64, 64, 3)`` and MiniGrid's ``(7, 7, 3)`` are channels-last).

    Raises:
        TypeError: If ``space`` is not a 2-D or 3-D ``spaces.Box``.
    """
    if not isinstance(space, spaces.Box):
        raise TypeError(f"{where} must be an image spaces.Box of shape (H, W), (H, W, C) or (C, H, W); got {space}")
    if len(space.shape) == 2:
        return ImageLayout(channels_first=False, has_channel_axis=False)
    if len(space.shape) != 3:
        raise TypeError(f"{where} must be an image of shape (H, W), (H, W, C) or (C, H, W); got shape {space.shape}")
    if channels_first is None:
        channels_first = space.shape[0] < space.shape[-1]
    return ImageLayout(channels_first=bool(channels_first), has_channel_axis=True)


def is_image_box(space: spaces.Space) -> bool:
    """Whether ``space`` is a 2-D or 3-D ``Box`` (what the image wrappers accept)."""
    return isinstance(space, spaces.Box) and len(space.shape) in (2, 3)


def select_image_space(observation_space: spaces.Space, key: str | None, *, where: str) -> spaces.Box:
    """The image sub-space named ``key`` of a ``Dict``, or the whole space when it is not a ``Dict``.

    Raises:
        ValueError: If ``key`` is missing from the ``Dict`` (or ``None`` for a ``Dict``).
        TypeError: If the selected space is not an image ``Box``.
    """
    if isinstance(observation_space, spaces.Dict):
        if key is None or key not in observation_space.spaces:
            images = [name for name, sub in observation_space.spaces.items() if is_image_box(sub)]
            raise ValueError(
                f"{where}: key {key!r} is not in the observation space (keys: {list(observation_space)}; "
                f"image keys: {images})"
            )
        subspace = observation_space[key]
        label = f"{where}: observation key {key!r}"
    else:
        subspace = observation_space
        label = f"{where}: the observation space"
    if not is_image_box(subspace):
        raise TypeError(f"{label} must be an image spaces.Box of shape (H, W), (H, W, C) or (C, H, W); got {subspace}")
    assert isinstance(subspace, spaces.Box)  # is_image_box checked it
    return subspace


def replace_subspace(observation_space: spaces.Space, key: str | None, new_space: spaces.Space) -> spaces.Space:
    """``observation_space`` with the image at ``key`` (or the whole space for a non-``Dict``) replaced."""
    if isinstance(observation_space, spaces.Dict):
        subspaces = observation_space.spaces
        return spaces.Dict({name: (new_space if name == key else sub) for name, sub in subspaces.items()})
    return new_space


def interpolation_flag(interpolation: str | int) -> int:
    """Resolve an interpolation name (see :data:`INTERPOLATIONS`) or OpenCV flag.

    Raises:
        ValueError: For an unknown name or flag.
    """
    if isinstance(interpolation, str):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"unknown interpolation {interpolation!r}; choose from {sorted(INTERPOLATIONS)}")
        return INTERPOLATIONS[interpolation]
    if isinstance(interpolation, (int, np.integer)) and not isinstance(interpolation, bool):
        if int(interpolation) not in INTERPOLATIONS.values():
            raise ValueError(f"unsupported OpenCV interpolation flag {interpolation!r}")
        return int(interpolation)
    raise TypeError(f"interpolation must be a name or an OpenCV flag, got {interpolation!r}")


def parse_size(size: Any) -> tuple[int, int]:
    """Validate an image size: an int (square) or a pair ``(height, width)`` of positive ints.

    Raises:
        ValueError: For anything else.
    """
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        height, width = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (height, width) of positive ints, got {size!r}") from None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"size must be (height, width) of positive ints, got {size!r}")
    return int(height), int(width)


def scalar_bounds(space: spaces.Box) -> tuple[Any, Any]:
    """The smallest ``low`` and largest ``high`` of a ``Box`` (bounds of a pixel after mixing pixels together)."""
    return np.min(space.low), np.max(space.high)
