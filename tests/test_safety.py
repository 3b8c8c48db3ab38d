"""Tests of mmrl.safety: NonFiniteGuard and SafeSubprocVecEnv."""

from __future__ import annotations

import os

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback

from mmrl.safety import NonFiniteError, NonFiniteGuard, SafeSubprocVecEnv

torch.set_num_threads(1)
START_METHOD = "fork" if "fork" in __import__("multiprocessing").get_all_start_methods() else None


class ToyEnv(gym.Env):
    """Box(2) observations; optionally raises, returns NaN rewards/observations, or kills its process on a step."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, fail_on_step: int | None = None, fault: str = "raise", fail_on_reset: bool = False) -> None:
        self.fail_on_step, self.fault, self.fail_on_reset = fail_on_step, fault, fail_on_reset
        self.steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.fail_on_reset:
            raise KeyError("no such level")
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.steps += 1
        observation, reward = np.full(2, 0.5, np.float32), 1.0
        if self.steps == self.fail_on_step:
            if self.fault == "raise":
                raise ZeroDivisionError(f"boom on step {self.steps}")
            if self.fault == "exit":
                os._exit(3)
            if self.fault == "nan_reward":
                reward = float("nan")
            if self.fault == "inf_obs":
                observation[1] = np.inf
        return observation, reward, False, self.steps >= 50, {}


def test_env_raising_in_worker_is_named() -> None:
    venv = SafeSubprocVecEnv([ToyEnv, lambda: ToyEnv(fail_on_step=3)], start_method=START_METHOD)
    try:
        venv.reset()
        for _ in range(2):
            venv.step(np.zeros(2, dtype=np.int64))
        with pytest.raises(RuntimeError, match=r"environment 1 raised ZeroDivisionError: boom on step 3") as info:
            venv.step(np.zeros(2, dtype=np.int64))
        assert "worker traceback" in str(info.value) and "ZeroDivisionError" in str(info.value)
    finally:
        venv.close()


def test_env_raising_on_reset_is_named() -> None:
    venv = SafeSubprocVecEnv([lambda: ToyEnv(fail_on_reset=True)], start_method=START_METHOD)
    try:
        with pytest.raises(RuntimeError, match=r"environment 0 raised KeyError: 'no such level' \(during reset\)"):
            venv.reset()
    finally:
        venv.close()


def test_dead_worker_is_named_not_eoferror() -> None:
    venv = SafeSubprocVecEnv([lambda: ToyEnv(fail_on_step=1, fault="exit"), ToyEnv], start_method=START_METHOD)
    try:
        venv.reset()
        with pytest.raises(RuntimeError, match=r"environment 0 \(worker exit code 3\) died while stepping"):
            venv.step(np.zeros(2, dtype=np.int64))
    finally:
        venv.close()


def _ppo(env: gym.Env) -> PPO:
    return PPO("MlpPolicy", env, n_steps=8, batch_size=8, n_epochs=1, policy_kwargs={"net_arch": [8]}, device="cpu")


def test_nan_reward_stops_ppo_before_checkpoint(tmp_path) -> None:
    model = _ppo(ToyEnv(fail_on_step=5, fault="nan_reward"))
    checkpoints = CheckpointCallback(save_freq=1, save_path=str(tmp_path), name_prefix="ckpt")
    with pytest.raises(NonFiniteError, match=r"rewards contain NaN .* at timestep 5"):
        model.learn(16, callback=CallbackList([NonFiniteGuard(), checkpoints]))
    assert (tmp_path / "ckpt_4_steps.zip").exists()
    assert not (tmp_path / "ckpt_5_steps.zip").exists()


def test_inf_observation_is_named() -> None:
    model = _ppo(ToyEnv(fail_on_step=2, fault="inf_obs"))
    with pytest.raises(ValueError, match=r"observations contain inf"):
        model.learn(16, callback=NonFiniteGuard())


def test_nan_parameter_is_named() -> None:
    model = _ppo(ToyEnv())
    with torch.no_grad():
        model.policy.action_net.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"policy parameter 'action_net.weight'"):
        model.learn(16, callback=NonFiniteGuard())


def test_finite_training_passes() -> None:
    model = _ppo(ToyEnv())
    model.learn(16, callback=NonFiniteGuard())
    assert model.num_timesteps == 16
