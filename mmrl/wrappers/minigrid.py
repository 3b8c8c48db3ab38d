"""``MiniGridSymbolicImage``: declare the true value ranges of MiniGrid's symbolic ``(7, 7, 3)`` image.

MiniGrid declares its egocentric grid as ``Box(0, 255, (7, 7, 3), uint8)``, but the three channels hold an object
index (0-10), a colour index (0-5) and a state (door 0-2; the agent's direction 0-3 under ``FullyObsWrapper``).
With the ``[0, 255]`` bounds SB3 treats the grid as a picture: it divides it by 255 (every value ends below 0.04)
and its default ``CombinedExtractor`` tries a Nature CNN that cannot run on 7x7. Declaring the real bounds makes it
an integer grid, which :class:`mmrl.MultimodalExtractor` scales by its largest bound and SB3's default extractor
flattens. MiniGrid is not imported unless installed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.wrappers._image_space import select_image_space

# Largest object, colour and state-channel value of MiniGrid 2.x/3.x, used when MiniGrid cannot be imported.
_FALLBACK_CHANNEL_HIGHS = (10, 5, 3)
#: Largest agent direction (0-3): MiniGrid's ``FullyObsWrapper`` stores it in the agent cell's state channel.
_MAX_AGENT_DIRECTION = 3


def minigrid_channel_highs() -> tuple[int, int, int]:
    """Largest value of each channel of MiniGrid's symbolic image: (object index, colour index, state).

    The state channel holds a door state (0-2) or, in the agent's cell of a ``FullyObsWrapper`` grid, the agent's
    direction (0-3), so its bound is at least 3.
    """
    try:
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX
    except ImportError:
        return _FALLBACK_CHANNEL_HIGHS
    state_high = max(max(STATE_TO_IDX.values()), _MAX_AGENT_DIRECTION)
    return max(OBJECT_TO_IDX.values()), max(COLOR_TO_IDX.values()), state_high


class MiniGridSymbolicImage(gym.ObservationWrapper):
    """Re-declare MiniGrid's symbolic image ``key`` with per-channel bounds ``[0, (10, 5, 3)]`` (values unchanged).

    The state channel's bound is 3 because MiniGrid's ``FullyObsWrapper`` writes the agent's direction (0-3)
    there. Values are never clipped: one outside the declared bounds raises ``ValueError``.

    Args:
        env: A MiniGrid/BabyAI environment (or any env with an ``(H, W, 3)`` symbolic grid at ``key``).
        key: The image key of a ``Dict`` observation space (unused for a plain ``Box`` space).

    Raises:
        ValueError: Unknown key, or the image does not have 3 channels last; at run time, a value outside the
            declared bounds.
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
        grid_space = spaces.Box(low=np.zeros_like(high), high=high.copy(), dtype=image_space.dtype)
        if isinstance(env.observation_space, spaces.Dict):
            self.observation_space = spaces.Dict({**env.observation_space.spaces, str(key): grid_space})
        else:
            self.observation_space = grid_space

    def observation(self, observation: Any) -> Any:
        self._check_bounds(np.asarray(observation if not self.is_dict else observation[self.key]))
        return observation

    def _check_bounds(self, grid: np.ndarray) -> None:
        """Raise (never clip) when a value lies outside the declared bounds: clipping would corrupt it silently."""
        if np.greater(grid, self.high).any() or (grid.dtype.kind == "i" and grid.min() < 0):
            outside = (grid > self.high) | (grid < 0)
            row, col, channel = (int(i) for i in np.argwhere(outside)[0])
            name = ("object", "colour", "state")[channel]
            value = int(grid[row, col, channel])
            raise ValueError(
                f"MiniGridSymbolicImage: the {name} channel holds {value} at cell ({row}, {col}), "
                f"outside its declared bound [0, {int(self.high[row, col, channel])}]; this grid is not MiniGrid's "
                "symbolic encoding (or a newer MiniGrid added indices): wrap the raw image without "
                "MiniGridSymbolicImage or report the new index range"
            )


class MiniGridSuccess(gym.Wrapper):
    """Adds ``info["is_success"]`` to the last step of a MiniGrid episode: MiniGrid rewards only success (``1 -
    0.9 * steps / max_steps`` > 0), so an episode that terminates with a positive reward succeeded, and one that
    terminates without reward or is truncated did not. mmrl's training and evaluation then report success rates on
    BabyAI levels as they do on their own envs. An ``is_success`` the env already sets is kept.

    Example::

        env = MiniGridSuccess(gym.make("BabyAI-GoToObj-v0"))
    """

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and "is_success" not in info:
            info = {**info, "is_success": bool(terminated and float(reward) > 0)}
        return observation, reward, terminated, truncated, info
