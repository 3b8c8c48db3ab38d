"""``StackImageFrames``: frame stacking that touches only image keys.

SB3's ``VecFrameStack`` stacks *every* key of a ``Dict`` observation: a ``(L,)`` token key becomes ``(n * L,)``
(the same instruction repeated ``n`` times, zero-filled after a reset, no longer matching the tokenizer's
``max_length``), and a ``Discrete`` key such as MiniGrid's ``direction`` makes it fail outright. This wrapper stacks
only the image keys and passes tokens and other keys through as they are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.wrappers._image_space import ImageLayout, image_layout, is_image_box, select_image_space


class StackImageFrames(gym.Wrapper):
    """Stack the last ``n_stack`` frames of image keys along their channel axis.

    ``(H, W, C)`` becomes ``(H, W, n_stack * C)``, ``(C, H, W)`` becomes ``(n_stack * C, H, W)`` and ``(H, W)``
    becomes ``(H, W, n_stack)``; the oldest frame comes first, as in SB3's ``VecFrameStack``. After a reset the stack
    is filled with copies of the first frame. Non-image keys (tokens, vectors, ``Discrete``) are not touched. A plain
    ``Box`` image observation is stacked as a whole.

    Args:
        env: The environment to wrap.
        n_stack: Number of frames (>= 1).
        keys: Image keys to stack; ``None`` stacks every 2-D/3-D ``Box`` key of a ``Dict`` space.
        channels_first: Force the layout of 3-D images; ``None`` detects it per key.

    Raises:
        ValueError: Bad ``n_stack``, unknown key, or no image key to stack.
        TypeError: A named key is not an image ``Box``.
    """

    def __init__(
        self,
        env: gym.Env,
        n_stack: int = 4,
        keys: Sequence[str] | str | None = None,
        channels_first: bool | None = None,
    ) -> None:
        super().__init__(env)
        if isinstance(n_stack, bool) or not isinstance(n_stack, (int, np.integer)) or n_stack < 1:
            raise ValueError(f"n_stack must be a positive int, got {n_stack!r}")
        self.n_stack = int(n_stack)
        observation_space = env.observation_space
        self.is_dict = isinstance(observation_space, spaces.Dict)
        if not self.is_dict:
            if keys is not None:
                raise ValueError(f"keys={keys!r} given but the observation space is not a Dict: {observation_space}")
            self.keys: tuple[Any, ...] = (None,)
        elif keys is None:
            self.keys = tuple(
                key for key, sub in cast(spaces.Dict, observation_space).spaces.items() if is_image_box(sub)
            )
            if not self.keys:
                raise ValueError(f"no image key (2-D or 3-D Box) to stack in {observation_space}")
        else:
            self.keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self.layouts: dict[Any, ImageLayout] = {}
        stacked_spaces: dict[Any, spaces.Box] = {}
        for key in self.keys:
            subspace = select_image_space(observation_space, key, where="StackImageFrames")
            layout = image_layout(subspace, channels_first, where="StackImageFrames")
            self.layouts[key] = layout
            stacked_spaces[key] = spaces.Box(
                low=self._stack([np.broadcast_to(subspace.low, subspace.shape)] * self.n_stack, layout),
                high=self._stack([np.broadcast_to(subspace.high, subspace.shape)] * self.n_stack, layout),
                dtype=subspace.dtype,
            )
        if isinstance(observation_space, spaces.Dict):
            self.observation_space = spaces.Dict({**observation_space.spaces, **stacked_spaces})
        else:
            self.observation_space = stacked_spaces[None]
        self._frames: dict[Any, deque[np.ndarray]] = {key: deque(maxlen=self.n_stack) for key in self.keys}

    @staticmethod
    def _stack(frames: list[np.ndarray], layout: ImageLayout) -> np.ndarray:
        if not layout.has_channel_axis:
            return np.stack(frames, axis=-1)
        return np.concatenate(frames, axis=0 if layout.channels_first else -1)

    def _image(self, observation: Any, key: Any) -> np.ndarray:
        return np.asarray(observation if key is None else observation[key])

    def _stacked_observation(self, observation: Any) -> Any:
        stacked = {key: self._stack(list(self._frames[key]), self.layouts[key]) for key in self.keys}
        if not self.is_dict:
            return stacked[None]
        return {**observation, **stacked}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(seed=seed, options=options)
        for key in self.keys:
            frame = self._image(observation, key).copy()
            self._frames[key].clear()
            self._frames[key].extend([frame] * self.n_stack)
        return self._stacked_observation(observation), info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        for key in self.keys:
            self._frames[key].append(self._image(observation, key).copy())
        return self._stacked_observation(observation), reward, terminated, truncated, info
