"""OpenCV image wrappers: ``ResizeImage``, ``TransposeImage`` (alias ``ChannelOrder``) and ``GrayscaleImage``.

Each wrapper transforms one image: the key ``key`` of a ``Dict`` observation (the other keys pass through) or the
whole observation when the observation space is a plain ``Box`` (``key`` is then not used). Images are ``Box``
spaces of shape ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``; the layout is detected (see
:func:`mmrl.wrappers._image_space.image_layout`) or forced with ``channels_first=``. Every wrapper declares the
exact new observation space and keeps the image's dtype.
"""

from __future__ import annotations

from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.wrappers._image_space import (
    ImageLayout,
    image_layout,
    interpolation_flag,
    parse_size,
    replace_subspace,
    scalar_bounds,
    select_image_space,
)

_CV2_RESIZE_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)
_CV2_COLOR_DTYPES = (np.uint8, np.uint16, np.float32)
#: Most channels every OpenCV interpolation resizes at once (INTER_AREA asserts ``cn <= 4``).
_CV2_MAX_CHANNELS = 4


def _cast_back(image: np.ndarray, dtype: np.dtype, low: Any, high: Any) -> np.ndarray:
    """Clip to ``[low, high]`` (rounding first for integer dtypes) and cast to ``dtype``."""
    if np.issubdtype(dtype, np.integer) and not np.issubdtype(image.dtype, np.integer):
        image = np.rint(image)
    return np.clip(image, low, high).astype(dtype, copy=False)


def resize_hwc(image_hwc: np.ndarray, height: int, width: int, flag: int, low: Any, high: Any) -> np.ndarray:
    """Resize an ``(H, W, C)`` image with OpenCV, keeping the channel axis, dtype and the bounds ``[low, high]``.

    Dtypes OpenCV cannot resize (e.g. ``int64``, ``float16``) go through ``float64``. Images with more than 4
    channels (e.g. stacked frames) are resized 4 channels at a time, which every interpolation supports.
    """
    dtype = image_hwc.dtype
    work = image_hwc if dtype in _CV2_RESIZE_DTYPES else image_hwc.astype(np.float64)
    if work.ndim == 3 and work.shape[2] > _CV2_MAX_CHANNELS:
        # some interpolations (INTER_AREA) take at most 4 channels: resize in chunks of 4 and stack them back
        chunks = [
            _resize_chunk(work[:, :, start : start + _CV2_MAX_CHANNELS], height, width, flag)
            for start in range(0, work.shape[2], _CV2_MAX_CHANNELS)
        ]
        resized = np.concatenate(chunks, axis=2)
    else:
        resized = _resize_chunk(work, height, width, flag)
    return _cast_back(resized, dtype, low, high)


def _resize_chunk(image: np.ndarray, height: int, width: int, flag: int) -> np.ndarray:
    """``cv2.resize`` to ``(height, width)`` keeping a channel axis (OpenCV drops a single channel's)."""
    resized = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=flag)
    return resized[:, :, None] if resized.ndim == 2 else resized


class _ImageWrapper(gym.ObservationWrapper):
    """Base: applies :meth:`transform` to the image at ``key`` (or to the whole ``Box`` observation)."""

    def __init__(self, env: gym.Env, key: str | None, channels_first: bool | None) -> None:
        super().__init__(env)
        self.key = key
        self.is_dict = isinstance(env.observation_space, spaces.Dict)
        self.input_space = select_image_space(env.observation_space, key, where=type(self).__name__)
        self.layout: ImageLayout = image_layout(self.input_space, channels_first, where=type(self).__name__)

    def _declare(self, image_space: spaces.Box) -> None:
        self.image_space = image_space
        self.observation_space = replace_subspace(self.env.observation_space, self.key, image_space)

    def transform(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def observation(self, observation: Any) -> Any:
        if not self.is_dict:
            return self.transform(np.asarray(observation))
        transformed = dict(observation)
        transformed[self.key] = self.transform(np.asarray(observation[self.key]))
        return transformed


class ResizeImage(_ImageWrapper):
    """Resize an image observation to ``size = (height, width)`` with ``cv2.resize``.

    The channel count, layout and dtype are kept; the new space has the old space's smallest ``low`` and largest
    ``high`` as bounds, and outputs are clipped to them (cubic and Lanczos interpolation can overshoot).

    Args:
        env: The environment to wrap.
        key: The image key of a ``Dict`` observation space (unused for a plain ``Box`` space).
        size: ``(height, width)``, or one int for a square.
        interpolation: ``"area"`` (default, best for shrinking), ``"linear"``, ``"cubic"``, ``"lanczos"``,
            ``"nearest"``, ``"nearest_exact"`` or an OpenCV ``INTER_*`` flag. Use ``"nearest"`` for symbolic
            (categorical) images such as MiniGrid's, which must not be blended.
        channels_first: Force the layout of a 3-D image; ``None`` detects it.

    Raises:
        ValueError: Unknown key, bad size or interpolation.
        TypeError: The selected space is not an image ``Box``.
    """

    def __init__(
        self,
        env: gym.Env,
        key: str | None = "image",
        size: tuple[int, int] | int = (84, 84),
        interpolation: str | int = "area",
        channels_first: bool | None = None,
    ) -> None:
        super().__init__(env, key, channels_first)
        self.size = parse_size(size)
        self.interpolation = interpolation_flag(interpolation)
        self.low, self.high = scalar_bounds(self.input_space)
        channels = self.layout.hwc_shape(self.input_space.shape)[2]
        shape = self.layout.shape_from_hwc(*self.size, channels)
        dtype = self.input_space.dtype
        self._declare(spaces.Box(low=self.low, high=self.high, shape=shape, dtype=dtype))

    def transform(self, image: np.ndarray) -> np.ndarray:
        resized_hwc = resize_hwc(self.layout.to_hwc(image), *self.size, self.interpolation, self.low, self.high)
        return np.ascontiguousarray(self.layout.from_hwc(resized_hwc))


class TransposeImage(_ImageWrapper):
    """Move an image's channel axis first (``(C, H, W)``, PyTorch order) or last (``(H, W, C)``).

    A 2-D ``(H, W)`` image gets a channel axis of size 1. An image already in the requested order is passed
    through unchanged. The bounds are transposed with the image.

    Args:
        env: The environment to wrap.
        key: The image key of a ``Dict`` observation space (unused for a plain ``Box`` space).
        to: ``"first"`` or ``"last"``.
        channels_first: Force the current layout of a 3-D image; ``None`` detects it.

    Raises:
        ValueError: Unknown key or ``to``.
        TypeError: The selected space is not an image ``Box``.
    """

    def __init__(
        self, env: gym.Env, key: str | None = "image", to: str = "first", channels_first: bool | None = None
    ) -> None:
        if to not in ("first", "last"):
            raise ValueError(f"to must be 'first' or 'last', got {to!r}")
        super().__init__(env, key, channels_first)
        self.to = to
        self.output_layout = ImageLayout(channels_first=to == "first", has_channel_axis=True)
        low = self._convert(np.broadcast_to(self.input_space.low, self.input_space.shape))
        high = self._convert(np.broadcast_to(self.input_space.high, self.input_space.shape))
        self._declare(spaces.Box(low=low, high=high, dtype=self.input_space.dtype))

    def _convert(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.output_layout.from_hwc(self.layout.to_hwc(image)))

    def transform(self, image: np.ndarray) -> np.ndarray:
        return self._convert(image)


ChannelOrder = TransposeImage
"""Alias of :class:`TransposeImage`."""


class GrayscaleImage(_ImageWrapper):
    """Convert an RGB or RGBA image to grayscale with ``cv2.cvtColor`` (luma ``0.299 R + 0.587 G + 0.114 B``).

    Args:
        env: The environment to wrap.
        key: The image key of a ``Dict`` observation space (unused for a plain ``Box`` space).
        keep_dim: Keep a channel axis of size 1 (``(H, W, 1)`` or ``(1, H, W)``, same layout as the input); else
            return ``(H, W)``.
        channels_first: Force the layout of the input image; ``None`` detects it.

    Raises:
        ValueError: Unknown key, or the image has neither 3 nor 4 channels.
        TypeError: The selected space is not an image ``Box``.
    """

    def __init__(
        self, env: gym.Env, key: str | None = "image", keep_dim: bool = True, channels_first: bool | None = None
    ) -> None:
        super().__init__(env, key, channels_first)
        height, width, channels = self.layout.hwc_shape(self.input_space.shape)
        if not self.layout.has_channel_axis or channels not in (3, 4):
            raise ValueError(
                f"GrayscaleImage needs an RGB or RGBA image (3 or 4 channels); got shape {self.input_space.shape}"
            )
        self.conversion = cv2.COLOR_RGB2GRAY if channels == 3 else cv2.COLOR_RGBA2GRAY
        self.keep_dim = keep_dim
        self.output_layout = self.layout if keep_dim else ImageLayout(channels_first=False, has_channel_axis=False)
        self.low, self.high = scalar_bounds(self.input_space)
        shape = self.output_layout.shape_from_hwc(height, width, 1)
        dtype = self.input_space.dtype
        self._declare(spaces.Box(low=self.low, high=self.high, shape=shape, dtype=dtype))

    def transform(self, image: np.ndarray) -> np.ndarray:
        image_hwc = self.layout.to_hwc(image)
        dtype = image_hwc.dtype
        work = image_hwc if dtype in _CV2_COLOR_DTYPES else image_hwc.astype(np.float32)
        gray_hw = cv2.cvtColor(np.ascontiguousarray(work), self.conversion)
        gray_hwc = _cast_back(gray_hw, dtype, self.low, self.high)[:, :, None]
        return np.ascontiguousarray(self.output_layout.from_hwc(gray_hwc))
