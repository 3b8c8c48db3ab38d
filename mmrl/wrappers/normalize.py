"""``normalizable_keys``: which observation keys SB3's ``VecNormalize`` may normalise without breaking them."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


def normalizable_keys(observation_space: spaces.Space | Any) -> list[str]:
    """The keys of a ``Dict`` observation space that are safe to pass as ``VecNormalize(norm_obs_keys=...)``.

    Only floating-point ``Box`` keys are returned (continuous vectors, float images). Excluded are token ids and
    other integer ``Box`` keys (categorical: normalising turns ids into meaningless floats, and the rollout buffer
    stores them back in the integer dtype), ``uint8`` images (SB3 already scales them to ``[0, 1]``), symbolic grids
    such as MiniGrid's ``uint8`` image, and every non-``Box`` key (``Discrete``, text), which ``VecNormalize``
    rejects anyway.

    By default ``VecNormalize`` normalises *every* key of a ``Dict``, so always pass this list::

        venv = VecNormalize(venv, norm_obs_keys=normalizable_keys(venv.observation_space))

    With an empty list, use ``VecNormalize(venv, norm_obs=False)`` instead (SB3 then only normalises rewards).

    Args:
        observation_space: A ``spaces.Dict``, or anything with an ``observation_space`` attribute (env, VecEnv).

    Raises:
        TypeError: If the space is not a ``spaces.Dict`` (for a plain ``Box``, ``norm_obs`` alone decides).
    """
    if not isinstance(observation_space, spaces.Space) and hasattr(observation_space, "observation_space"):
        observation_space = observation_space.observation_space
    if not isinstance(observation_space, spaces.Dict):
        raise TypeError(
            f"normalizable_keys needs a spaces.Dict observation space, got {observation_space}; "
            "for a Box observation choose VecNormalize(norm_obs=True/False) directly"
        )
    return [
        key
        for key, subspace in observation_space.spaces.items()
        if isinstance(subspace, spaces.Box) and np.issubdtype(subspace.dtype, np.floating)
    ]
