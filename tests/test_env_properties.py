"""Property-based tests: any seed and any action sequence keep every observation inside the observation space."""

from __future__ import annotations

import functools

import gymnasium as gym
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mmrl.envs import env_ids  # noqa: E402

ENV_IDS = env_ids()
MAX_ACTIONS = 60


@functools.cache
def _env(env_id: str) -> gym.Env:
    return gym.make(env_id)


def _assert_in_space(env_id: str, obs, space: gym.Space, where: str) -> None:
    assert space.contains(obs), f"{env_id}: observation after {where} is outside {space}: " + ", ".join(
        f"{key}: shape {np.shape(value)} dtype {np.asarray(value).dtype} range [{np.min(value)}, {np.max(value)}]"
        for key, value in (obs.items() if isinstance(obs, dict) else [("obs", obs)])
    )


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_observations_stay_in_space(env_id: str) -> None:
    env = _env(env_id)
    n_actions = int(env.action_space.n)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False)
    @given(
        seed=st.integers(min_value=0, max_value=2**31 - 1),
        actions=st.lists(st.integers(min_value=0, max_value=n_actions - 1), max_size=MAX_ACTIONS),
    )
    def check(seed: int, actions: list[int]) -> None:
        obs, info = env.reset(seed=seed)
        assert isinstance(info, dict)
        _assert_in_space(env_id, obs, env.observation_space, f"reset(seed={seed})")
        for t, action in enumerate(actions):
            obs, reward, terminated, truncated, info = env.step(action)
            _assert_in_space(env_id, obs, env.observation_space, f"step {t} (seed {seed}, actions {actions[: t + 1]})")
            assert np.isfinite(reward), f"{env_id}: non-finite reward {reward} at step {t}"
            assert isinstance(terminated, (bool, np.bool_)) and isinstance(truncated, (bool, np.bool_))
            if terminated or truncated:
                obs, info = env.reset()
                _assert_in_space(env_id, obs, env.observation_space, f"auto-reset after step {t}")

    check()
