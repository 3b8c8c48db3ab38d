"""``RenderToImage``: put the environment's ``render()`` frames into the observation as an image key."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.wrappers._image_space import interpolation_flag, parse_size
from mmrl.wrappers.image import resize_hwc


class RenderToImage(gym.ObservationWrapper):
    """Add the ``rgb_array`` frame rendered after every ``reset``/``step`` as a ``uint8`` ``(H, W, 3)`` image.

    With a ``Dict`` observation space the frame is added under ``key``; any other observation becomes
    ``{original_key: observation, key: frame}`` (or ``{key: frame}`` with ``original_key=None``). Frames are
    converted to 3 channels (alpha dropped, gray repeated), floats in ``[0, 1]`` scaled to ``[0, 255]``, and
    resized with OpenCV to ``size``.

    When ``size`` is ``None`` the frame size is measured once at construction: ``env.render()`` is called, and if
    that fails (most environments cannot render before their first reset) the environment is reset once, unseeded.
    Pass ``size`` to avoid that reset.

    Args:
        env: An environment created with ``render_mode="rgb_array"``.
        key: Name of the new image key.
        size: ``(height, width)`` of the frames, or one int for a square; ``None`` keeps the rendered size.
        interpolation: Resizing interpolation (see :class:`~mmrl.wrappers.ResizeImage`).
        original_key: Key of the original observation when it is not a ``Dict``; ``None`` drops it.
        overwrite: Allow replacing an existing ``key`` of a ``Dict`` observation space.

    Raises:
        ValueError: The env does not render ``rgb_array`` frames, ``key`` already exists (without ``overwrite``),
            bad size or interpolation, or ``original_key == key``.
    """

    def __init__(
        self,
        env: gym.Env,
        key: str = "image",
        size: tuple[int, int] | int | None = None,
        interpolation: str | int = "area",
        original_key: str | None = "observation",
        overwrite: bool = False,
    ) -> None:
        super().__init__(env)
        if env.render_mode != "rgb_array":
            raise ValueError(
                f"RenderToImage needs render_mode='rgb_array' (got {env.render_mode!r}); "
                "create the env with gym.make(env_id, render_mode='rgb_array')"
            )
        self.key = key
        self.interpolation = interpolation_flag(interpolation)
        self.is_dict = isinstance(env.observation_space, spaces.Dict)
        if isinstance(env.observation_space, spaces.Dict) and key in env.observation_space.spaces and not overwrite:
            raise ValueError(f"key {key!r} is already in the observation space; pick another key or overwrite=True")
        if not self.is_dict and original_key == key:
            raise ValueError(f"original_key and key must differ, both are {key!r}")
        self.original_key = original_key
        self.size = parse_size(size) if size is not None else self._measure_frame_size()

        self.frame_space = spaces.Box(low=0, high=255, shape=(*self.size, 3), dtype=np.uint8)
        if isinstance(env.observation_space, spaces.Dict):
            self.observation_space = spaces.Dict({**env.observation_space.spaces, key: self.frame_space})
        elif original_key is None:
            self.observation_space = spaces.Dict({key: self.frame_space})
        else:
            self.observation_space = spaces.Dict({original_key: env.observation_space, key: self.frame_space})

    def _measure_frame_size(self) -> tuple[int, int]:
        try:
            frame = self.env.render()
        except Exception:  # most envs cannot render before reset
            frame = None
        if frame is None:
            self.env.reset()
            frame = self.env.render()
        if frame is None or not isinstance(frame, np.ndarray) or frame.ndim not in (2, 3):
            raise ValueError(f"render() did not return an image frame (got {type(frame).__name__})")
        return int(frame.shape[0]), int(frame.shape[1])

    def render_frame(self) -> np.ndarray:
        """Render the current frame as ``uint8 (H, W, 3)`` of the declared size."""
        frame = self.env.render()
        if frame is None:
            raise RuntimeError("render() returned None; was the env created with render_mode='rgb_array'?")
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = frame[:, :, None]
        if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4):
            raise ValueError(f"render() returned an array of shape {frame.shape}, not an (H, W[, 1|3|4]) image")
        if frame.shape[2] == 1:
            frame = np.repeat(frame, 3, axis=2)
        frame = frame[:, :, :3]
        if frame.dtype != np.uint8:
            scale = 255.0 if np.issubdtype(frame.dtype, np.floating) and frame.max(initial=0) <= 1.0 else 1.0
            frame = np.clip(np.rint(frame * scale), 0, 255).astype(np.uint8)
        if frame.shape[:2] != self.size:
            frame = resize_hwc(frame, *self.size, self.interpolation, 0, 255)
        return np.ascontiguousarray(frame)

    def observation(self, observation: Any) -> dict[str, Any]:
        frame = self.render_frame()
        if self.is_dict:
            return {**observation, self.key: frame}
        if self.original_key is None:
            return {self.key: frame}
        return {self.original_key: observation, self.key: frame}
