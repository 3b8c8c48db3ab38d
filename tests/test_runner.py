"""The one episode runner (mmrl.evaluation.runner): seeding rule, recurrent state, and that training's evaluation,
``mmrl evaluate`` and videos all play the same episodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import mmrl
from mmrl.evaluation.runner import run_episodes
from mmrl.evaluation.setup import prepare
from mmrl.evaluation.video import _FrameRecorder, record_setup_video
from mmrl.training.session import EVAL_SEED_OFFSET

ENV_ID = "mmrl/GoTo-5x5-v0"
torch.set_num_threads(1)


class FirstAction:
    """Always action 0 (deterministic)."""

    def __init__(self, venv) -> None:
        self.observation_space = venv.observation_space
        self.action_space = venv.action_space

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.zeros(len(observation["mission"]), dtype=np.int64), None


class Recurrent:
    """A stand-in recurrent policy: its state counts the steps since the env's last episode start; it turns left
    for a while, then walks forward, so episodes end at different steps."""

    def __init__(self) -> None:
        self.calls: list[tuple[np.ndarray | None, np.ndarray | None, np.ndarray]] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        n = len(observation["mission"])
        counts = np.zeros(n, dtype=np.int64) if state is None else np.where(episode_start, 0, state + 1)
        self.calls.append((None if state is None else state.copy(), episode_start, counts))
        return np.where(counts % 4 == 3, 0, 2).astype(np.int64), counts


def _venv(n_envs: int):
    return mmrl.make_vec_env(ENV_ID, n_envs=n_envs, seed=123)


@pytest.mark.parametrize("n_envs", [1, 3, 4])
def test_episode_i_is_seeded_seed_plus_i_whatever_the_batch(n_envs: int) -> None:
    venv = _venv(n_envs)
    model = FirstAction(venv)
    try:
        results = run_episodes(model, venv, episodes=7, seed=40)
    finally:
        venv.close()
    reference_env = _venv(1)
    try:
        one_by_one = [run_episodes(model, reference_env, episodes=1, seed=40 + i) for i in range(7)]
    finally:
        reference_env.close()
    assert results.missions == [r.missions[0] for r in one_by_one]
    assert results.lengths == [r.lengths[0] for r in one_by_one]
    assert results.returns == [r.returns[0] for r in one_by_one]
    assert len(set(results.missions)) > 1  # the seeds differ


def test_greedy_evaluation_leaves_the_global_random_state_alone() -> None:
    venv = _venv(2)
    np.random.seed(5)
    torch.manual_seed(5)
    before_np, before_torch = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    try:
        run_episodes(FirstAction(venv), venv, episodes=3, seed=0)
    finally:
        venv.close()
    assert np.array_equal(np.random.get_state()[1], before_np) and torch.equal(torch.get_rng_state(), before_torch)


def test_recurrent_state_is_carried_and_reset_at_episode_starts() -> None:
    venv = _venv(2)
    model = Recurrent()
    try:
        results = run_episodes(model, venv, episodes=4, seed=0)
    finally:
        venv.close()
    assert len(results.returns) == 4
    assert model.calls[0][0] is None
    assert sum(state is None for state, _, _ in model.calls) == 2  # the state starts empty in each batch of 2
    for (_, _, previous_out), (state_in, starts, _) in zip(model.calls, model.calls[1:], strict=False):
        if state_in is not None:  # within a batch: the state the policy returned comes back, with the resets
            assert np.array_equal(state_in, previous_out)
            assert starts is not None and starts.dtype == bool and starts.shape == (2,)
    if results.lengths[0] != results.lengths[1]:  # the shorter episode's env was reset while the other ran on
        assert any(starts is not None and starts.any() for _, starts, _ in model.calls)


def test_training_evaluation_and_mmrl_evaluate_agree(tmp_path: Path) -> None:
    result = mmrl.train(
        "ppo",
        ENV_ID,
        timesteps=64,
        n_envs=2,
        overrides={"n_steps": 32, "batch_size": 32, "features_dim": 16},
        text_encoder="bow",
        run_dir=tmp_path / "run",
        progress_bar=False,
        eval_freq=0,
        eval_episodes=5,
    )
    report = mmrl.evaluate(result.run_dir, episodes=5, seed=result.config.seed + EVAL_SEED_OFFSET, n_envs=3)
    assert report.mean_return == pytest.approx(result.metrics["mean_return"], abs=0, rel=0)
    assert report.mean_length == pytest.approx(result.metrics["mean_length"], abs=0, rel=0)


def test_video_plays_the_evaluated_episodes(tmp_path: Path, monkeypatch) -> None:
    setup = prepare(FirstAction(_venv(1)), env_id=ENV_ID)
    recorded: list[_FrameRecorder] = []
    original_init = _FrameRecorder.__init__

    def spy_init(self, env, table):
        original_init(self, env, table)
        recorded.append(self)

    monkeypatch.setattr(_FrameRecorder, "__init__", spy_init)
    record_setup_video(setup, tmp_path / "v.gif", episodes=3, seed=11)
    venv = _venv(2)
    try:
        results = run_episodes(setup.model, venv, episodes=3, seed=11)
    finally:
        venv.close()
    assert len(recorded[0].frames) == sum(length + 1 for length in results.lengths)  # reset frame + one per step
