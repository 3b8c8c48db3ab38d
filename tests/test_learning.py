"""Slow learning tests: the default preset beats the random policy on each built-in env family within its budget.

Evaluation uses held-out seeds (``seed + EVAL_SEED_OFFSET`` + 7, never used in training) and compares with the
uniform random policy on the same seeds. Budgets are small (CPU, 1 torch thread): see ``CASES``.
"""

from __future__ import annotations

import time

import pytest
import torch

import mmrl
from mmrl.cli.demo import random_baseline
from mmrl.training import evaluate_model
from mmrl.training.trainer import EVAL_SEED_OFFSET

pytestmark = pytest.mark.slow

EPISODES = 100
MARGIN = 0.15  # success-rate points above random
RETURN_RATIO = 1.3  # mean return relative to random

#: (algo, env id, timesteps, overrides)
CASES = [
    ("ppo", "mmrl/GoTo-5x5-v0", 40_000, {}),
    ("ppo", "mmrl/PickUp-5x5-v0", 40_000, {}),
    ("ppo", "mmrl/Open-v0", 100_000, {}),
    ("ppo", "mmrl/Sequence-5x5-v0", 40_000, {}),
    ("ppo", "mmrl/VisualQuery-Colour-v0", 40_000, {}),
    ("qlearning", "mmrl/Level-Corridor-v0", 20_000, {}),
]


@pytest.mark.parametrize(("algo", "env_id", "timesteps", "overrides"), CASES)
def test_default_preset_beats_random(algo, env_id, timesteps, overrides, tmp_path):
    torch.set_num_threads(1)
    started = time.time()
    result = mmrl.train(
        algo,
        env_id,
        timesteps=timesteps,
        overrides=overrides,
        run_dir=tmp_path / "run",
        progress_bar=False,
        eval_freq=0,
        checkpoint_freq=0,
        eval_episodes=10,
    )
    seed = result.config.seed + EVAL_SEED_OFFSET + 7
    venv = mmrl.make_vec_env(env_id, n_envs=8, seed=seed, env_kwargs=result.config.env_kwargs)
    trained = evaluate_model(result.model, venv, EPISODES, seed, deterministic=algo == "qlearning")
    random = random_baseline(env_id, EPISODES, seed, result.config.env_kwargs)
    print(
        f"\n{algo} {env_id} {timesteps} steps {time.time() - started:.0f} s: success {trained['success_rate']:.2f} "
        f"return {trained['mean_return']:.3f} | random success {random['success_rate']:.2f} "
        f"return {random['mean_return']:.3f}"
    )
    assert trained["success_rate"] >= random["success_rate"] + MARGIN
    assert trained["mean_return"] >= RETURN_RATIO * random["mean_return"]
