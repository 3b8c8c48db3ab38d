"""Observation ablation: replace one modality of a ``Dict`` observation by zeros.

Zero is PAD (0) for token keys and black for image keys, so ``ablate="mission"`` shows the policy an empty
instruction and ``ablate="image"`` a black picture. Comparing the ablated success rate with the plain one measures how
much a policy relies on each modality.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

#: The modality names the CLI offers (any other key of the observation space is accepted by the API too).
ABLATIONS = ("mission", "image")


def normalize_ablate(ablate: str | Sequence[str] | None, observation_space: spaces.Space | None) -> tuple[str, ...]:
    """Validate ``ablate`` against ``observation_space`` and return it as a tuple of keys.

    Raises:
        TypeError: If the observation space is not a ``Dict`` or ``ablate`` is not a str or a sequence of str.
        ValueError: If a key is not in the observation space, or zero lies outside its bounds.
    """
    if ablate is None:
        return ()
    keys = (ablate,) if isinstance(ablate, str) else tuple(ablate)
    if not all(isinstance(key, str) for key in keys):
        raise TypeError(f"ablate must be a key name or a list of key names such as {ABLATIONS}, got {ablate!r}")
    if not keys:
        return ()
    if not isinstance(observation_space, spaces.Dict):
        raise TypeError(
            f"ablation needs a Dict observation space with keys such as {ABLATIONS}, got {observation_space}; "
            "evaluate without ablate"
        )
    for key in keys:
        if key not in observation_space.spaces:
            raise ValueError(
                f"cannot ablate {key!r}: the observation has keys {sorted(observation_space.spaces)}; pick one of those"
            )
        subspace = observation_space.spaces[key]
        if isinstance(subspace, spaces.Box) and not subspace.contains(np.zeros(subspace.shape, subspace.dtype)):
            raise ValueError(f"cannot ablate {key!r}: zero lies outside its space {subspace}")
    return tuple(dict.fromkeys(keys))


def ablate_observation(observation: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``observation`` (single or batched) with the arrays under ``keys`` set to zero."""
    if not keys:
        return observation
    ablated = dict(observation)
    for key in keys:
        ablated[key] = np.zeros_like(np.asarray(observation[key]))
    return ablated


class AblateObservation(gym.ObservationWrapper):
    """Gymnasium wrapper that zeroes the observation keys ``keys`` (PAD tokens, black images).

    Args:
        env: An environment with a ``Dict`` observation space.
        keys: One key (``"mission"``, ``"image"``) or several.

    Raises:
        TypeError, ValueError: See :func:`normalize_ablate`.
    """

    def __init__(self, env: gym.Env, keys: str | Sequence[str]) -> None:
        super().__init__(env)
        self.keys = normalize_ablate(keys, env.observation_space)

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        return ablate_observation(observation, self.keys)


class VecAblateObservation(VecEnvWrapper):
    """Stable-Baselines3 ``VecEnv`` wrapper that zeroes the observation keys ``keys`` of every environment.

    Terminal observations in ``infos`` are zeroed as well.

    Args:
        venv: A ``VecEnv`` with a ``Dict`` observation space.
        keys: One key (``"mission"``, ``"image"``) or several.
    """

    def __init__(self, venv: VecEnv, keys: str | Sequence[str]) -> None:
        super().__init__(venv)
        self.keys = normalize_ablate(keys, venv.observation_space)

    def reset(self) -> Any:
        return ablate_observation(self.venv.reset(), self.keys)  # type: ignore[arg-type]  # Dict observations

    def step_wait(self) -> Any:
        observations, rewards, dones, infos = self.venv.step_wait()
        for info in infos:
            if "terminal_observation" in info:
                info["terminal_observation"] = ablate_observation(info["terminal_observation"], self.keys)
        return ablate_observation(observations, self.keys), rewards, dones, infos  # type: ignore[arg-type]
