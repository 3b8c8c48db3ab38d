"""``MiniGridSymbolicImage``: declare the true value ranges of MiniGrid's symbolic ``(7, 7, 3)`` image.

MiniGrid declares its egocentric grid as ``Box(0, 255, (7, 7, 3), uint8)``, but the three channels hold an object
index (0-10), a colour index (0-5) and a door state (0-2). With the ``[0, 255]`` bounds SB3 treats the grid as a
picture: it divides it by 255 (every value ends below 0.04) and its default ``CombinedExtractor`` tries a Nature CNN
that cannot run on 7x7. Declaring the real bounds makes it an integer grid, which :class:`mmrl.MultimodalExtractor`
scales by its largest bound and SB3's default extractor flattens. MiniGrid is not imported unless installed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.wrappers._image_space import select_image_space

# Largest object, colour and state index of MiniGrid 2.x/3.x, used when MiniGrid cannot be imported.
_FALLBACK_CHANNEL_HIGHS = (10, 5, 2)


def minigrid_channel_highs() -> tuple[int, int, int]:
    """Largest value of each channel of MiniGrid's symbolic image: (object index, colour index, state index)."""
    try:
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX
    except ImportError:
        return _FALLBACK_CHANNEL_HIGHS
    return max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), max(STATE_TO_IDX.values())


class MiniGridSymbolicImage(gym.ObservationWrapper):
    """Re-declare MiniGrid's symbolic image ``key`` with per-channel bounds ``[0, (10, 5, 2)]`` (values unchanged).

    Args:
        env: A MiniGrid/BabyAI environment (or any env with an ``(H, W, 3)`` symbolic grid at ``key``).
        key: The image key of a ``Dict`` observation space (unused for a plain ``Box`` space).

    Raises:
        ValueError: Unknown key, or the image does not have 3 channels last.
        TypeError: The selected space is not an image ``Box``.
    """

    def __init__(self, env: gym.Env, key: str | None = "image") -> None:
        super().__init__(env)
        image_space = select_image_space(env.observation_space, key, where="MiniGridSymbolicImage")
        if len(image_space.shape) != 3 or image_space.shape[2] != 3:
            raise ValueError(f"MiniGridSymbolicImage expects an (H, W, 3) symbolic grid, got {image_space}")
        self.key = key
        self.is_dict = isinstance(env.observation_space, spaces.Dict)
        high = np.broadcast_to(np.asarray(minigrid_channel_highs(), dtype=image_space.dtype), image_space.shape)
        self.high = high
        grid_space = spaces.Box(low=np.zeros_like(high), high=high.copy(), dtype=image_space.dtype)  # type: ignore[arg-type]
        if self.is_dict:
            self.observation_space = spaces.Dict({**env.observation_space.spaces, key: grid_space})
        else:
            self.observation_space = grid_space

    def observation(self, observation: Any) -> Any:
        # The values already lie in the declared bounds; clip defensively so an unexpected index cannot escape.
        if not self.is_dict:
            return np.minimum(observation, self.high)
        return {**observation, self.key: np.minimum(observation[self.key], self.high)}
