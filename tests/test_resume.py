"""What a checkpoint carries across a stop / crash / Ctrl-C and a resume: replay buffer, last observation, best
model and evaluation history, monitor.csv counters, config.yaml."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import mmrl
from mmrl.training import RunDir, load_model

torch.set_num_threads(1)

ENV = "mmrl/Level-Corridor-v0"
PPO_SMALL = {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "features_dim": 16}
DQN_SMALL = {
    "buffer_size": 1000,
    "learning_starts": 32,
    "batch_size": 16,
    "train_freq": 4,
    "target_update_interval": 64,
    "features_dim": 16,
}


def _train(algo: str, run_dir: Path, timesteps: int, overrides: dict | None = None, **kwargs):
    overrides = overrides or {"ppo": PPO_SMALL, "dqn": DQN_SMALL, "qlearning": {}}[algo]
    options = {"eval_freq": 0, "eval_episodes": 2, "checkpoint_freq": 0, **kwargs}
    return mmrl.train(
        algo, ENV, timesteps=timesteps, n_envs=2, seed=5, run_dir=run_dir, progress_bar=False,
        overrides=overrides, **options,
    )  # fmt: skip


def _monitor_rows(run_dir: Path) -> list[tuple[str, str]]:
    lines = (run_dir / "monitor.csv").read_text().splitlines()
    assert lines[0].startswith("#") and sum(line.startswith("#") for line in lines) == 1
    header = lines[1].split(",")
    r, length = header.index("r"), header.index("l")
    return [(line.split(",")[r], line.split(",")[length]) for line in lines[2:]]


# ------------------------------------------------------------------------------------------------ monitor.csv
@pytest.mark.parametrize("algo", ["ppo", "qlearning"])
def test_monitor_csv_after_stop_and_resume_equals_uninterrupted(tmp_path, algo):
    """The episodes running at the checkpoint continue their counters: no cut-short rows after a resume."""
    n = 128
    straight = _train(algo, tmp_path / "straight", 2 * n)
    _train(algo, tmp_path / "split", 2 * n, stop_at=n)
    state = RunDir(tmp_path / "split").latest_checkpoint().state
    assert any(state["monitor"]["episode_lengths"]), "the test needs episodes in progress at the stop"
    mmrl.train(resume=tmp_path / "split", algo=None, timesteps=2 * n, progress_bar=False)
    assert straight.metrics["timesteps"] == 2 * n
    assert _monitor_rows(tmp_path / "split") == _monitor_rows(tmp_path / "straight")


def test_resume_drops_monitor_rows_written_after_the_checkpoint(tmp_path):
    """A session that crashed after its checkpoint logged episodes that the resumed run plays again: they go."""
    n = 128
    straight = _train("ppo", tmp_path / "straight", 2 * n)
    _train("ppo", tmp_path / "split", 2 * n, stop_at=n)
    monitor = tmp_path / "split" / "monitor.csv"
    with open(monitor, "a") as handle:
        handle.write("99.0,99,1.0,True\n")  # as if a later session had logged an episode, then crashed
    mmrl.train(resume=tmp_path / "split", algo=None, timesteps=2 * n, progress_bar=False)
    assert straight.metrics["timesteps"] == 2 * n
    assert _monitor_rows(tmp_path / "split") == _monitor_rows(tmp_path / "straight")


# ------------------------------------------------------------------------------------------------ best model
def test_best_model_survives_stop_and_resume(tmp_path, monkeypatch):
    """The stopped session's final evaluation (the best so far) is in the checkpoint: a worse one after resume
    does not replace best_model.zip."""
    import mmrl.training.best_model as trainer

    scores = iter([5.0, 1.0, 1.0, 1.0])

    def fake_evaluate(model, venv, n_episodes, seed, deterministic=True):
        return {"mean_return": next(scores), "std_return": 0.0, "success_rate": None, "episodes": 1, "mean_length": 1}

    monkeypatch.setattr(trainer, "evaluate_model", fake_evaluate)
    run_dir = tmp_path / "run"
    first = _train("ppo", run_dir, 256, stop_at=64)
    assert first.metrics["stopped"] and first.metrics["best_mean_return"] == 5.0
    best_bytes = (run_dir / "best_model.zip").read_bytes()
    state = RunDir(run_dir).latest_checkpoint().state
    assert state["best_mean_return"] == 5.0 and [e["mean_return"] for e in state["evaluations"]] == [5.0]
    resumed = mmrl.train(resume=run_dir, algo=None, timesteps=256, progress_bar=False)
    assert resumed.metrics["best_mean_return"] == 5.0
    assert [e["mean_return"] for e in resumed.metrics["evaluations"]] == [5.0, 1.0]
    assert (run_dir / "best_model.zip").read_bytes() == best_bytes


def test_resume_reads_the_final_evaluation_of_older_runs_from_metrics(tmp_path, monkeypatch):
    """Checkpoints written before the fix lack the final evaluation; metrics.json at the same step has it."""
    import mmrl.training.best_model as trainer

    scores = iter([5.0, 1.0])

    def fake_evaluate(model, venv, n_episodes, seed, deterministic=True):
        return {"mean_return": next(scores), "std_return": 0.0, "success_rate": None, "episodes": 1, "mean_length": 1}

    monkeypatch.setattr(trainer, "evaluate_model", fake_evaluate)
    run_dir = tmp_path / "run"
    _train("ppo", run_dir, 256, stop_at=64)
    state_path = RunDir(run_dir).latest_checkpoint().state_path
    state = json.loads(state_path.read_text())
    state.update(evaluations=[], best_mean_return=None)  # as the old trainer wrote it
    state_path.write_text(json.dumps(state))
    best_bytes = (run_dir / "best_model.zip").read_bytes()
    resumed = mmrl.train(resume=run_dir, algo=None, timesteps=256, progress_bar=False)
    assert resumed.metrics["best_mean_return"] == 5.0
    assert (run_dir / "best_model.zip").read_bytes() == best_bytes


# ------------------------------------------------------------------------------------------------ DQN buffer
def test_crash_while_writing_a_dqn_checkpoint_keeps_the_previous_replay_buffer(tmp_path, monkeypatch):
    import mmrl.training.checkpointing as trainer

    real_save_env_state = trainer.save_env_state
    calls: list[int] = []

    def crashing_save_env_state(path, state):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("crash in the middle of checkpoint 2")
        real_save_env_state(path, state)

    monkeypatch.setattr(trainer, "save_env_state", crashing_save_env_state)
    with pytest.raises(OSError, match="checkpoint 2"):
        _train("dqn", tmp_path / "run", 10_000, checkpoint_freq=64)
    latest = RunDir(tmp_path / "run").latest_checkpoint()
    assert latest.steps == 64
    assert latest.replay_buffer_path is not None, "the complete checkpoint lost its replay buffer"
    monkeypatch.setattr(trainer, "save_env_state", real_save_env_state)
    resumed = mmrl.train(resume=tmp_path / "run", algo=None, timesteps=128, progress_bar=False)
    assert resumed.model.replay_buffer.size() == 128 // 2
    buffers = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("replay_buffer_*"))
    assert buffers == ["replay_buffer_128_steps.pkl"], "older buffers are dropped once a newer checkpoint is complete"


def test_dqn_resume_without_replay_buffer_warns(tmp_path):
    _train("dqn", tmp_path / "run", 64)
    latest = RunDir(tmp_path / "run").latest_checkpoint()
    latest.replay_buffer_path.unlink()
    with pytest.warns(RuntimeWarning, match="replay buffer"):
        resumed = mmrl.train(resume=tmp_path / "run", algo=None, timesteps=96, progress_bar=False)
    assert resumed.metrics["timesteps"] == 96


# ------------------------------------------------------------------------------------------------ Ctrl-C
@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_ctrl_c_saves_a_model_whose_last_observation_is_the_env_state(tmp_path, monkeypatch, algo):
    """After the first Ctrl-C the saved model's ``_last_obs`` is the observation of the last env step (the saved
    env state), not the one before; DQN also keeps that step's transition."""
    from mmrl.envs.vec_env import GridVecEnv

    real_step_wait = GridVecEnv.step_wait
    observations: list = []

    def interrupted_step_wait(self):
        result = real_step_wait(self)
        observations.append({key: np.array(value) for key, value in result[0].items()})
        if len(observations) == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(GridVecEnv, "step_wait", interrupted_step_wait)
    result = _train(algo, tmp_path / "run", 100_000, checkpoint_freq=64)
    monkeypatch.setattr(GridVecEnv, "step_wait", real_step_wait)
    assert result.interrupted and result.metrics["timesteps"] == 5 * 2
    checkpoint = RunDir(result.run_dir).latest_checkpoint()
    saved = load_model(checkpoint.model_path, algo=algo, device="cpu")
    for key, value in observations[-1].items():
        np.testing.assert_array_equal(saved._last_obs[key], value, err_msg=key)
    if algo == "dqn":
        assert result.model.replay_buffer.size() == 5
        for key, value in observations[-1].items():
            stored = result.model.replay_buffer.next_observations[key][4]
            # a finished episode stores its terminal observation instead; the corridor episodes are longer
            np.testing.assert_array_equal(stored, value, err_msg=key)
    resumed = mmrl.train(resume=result.run_dir, algo=None, timesteps=64, progress_bar=False)
    assert not resumed.interrupted and resumed.metrics["timesteps"] >= 64


# ------------------------------------------------------------------------------------------------ config.yaml
def test_resume_with_more_timesteps_updates_config(tmp_path):
    _train("qlearning", tmp_path / "run", 64)  # seed 5
    with pytest.raises(ValueError, match="trained with seed 5; drop --seed 0"):
        mmrl.train(resume=tmp_path / "run", algo=None, timesteps=128, seed=0, progress_bar=False)
    resumed = mmrl.train(resume=tmp_path / "run", algo=None, timesteps=128, seed=5, progress_bar=False)
    assert resumed.metrics["timesteps"] == 128
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["timesteps"] == 128
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".")], "temporary files left"


def test_linear_learning_rate_continues_on_the_same_curve_after_a_stop_and_resume(tmp_path):
    """A stopped run keeps the full ``timesteps`` horizon: after the resume it ends on the weights (and the rate)
    of the uninterrupted run."""
    schedule = {"learning_rate_schedule": "linear", "learning_rate": 0.002}
    straight = _train("ppo", tmp_path / "straight", 256, overrides={**PPO_SMALL, **schedule})
    _train("ppo", tmp_path / "split", 256, stop_at=128, overrides={**PPO_SMALL, **schedule})
    halfway = load_model(tmp_path / "split").policy.optimizer.param_groups[0]["lr"]
    assert halfway == pytest.approx(0.002 * (1 - 128 / 256))  # set from the progress after the second rollout
    mmrl.train(resume=tmp_path / "split", algo=None, progress_bar=False)
    models = [load_model(path) for path in (straight.run_dir, tmp_path / "split")]
    assert [model.policy.optimizer.param_groups[0]["lr"] for model in models] == [0.0, 0.0]
    for left, right in zip(models[0].policy.parameters(), models[1].policy.parameters(), strict=True):
        assert torch.equal(left, right)
