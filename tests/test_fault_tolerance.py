"""Fault tolerance: SIGKILL during checkpointing never leaves a broken checkpoint; resuming is exact."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import mmrl
from mmrl.training.run_dir import RunDir, load_model

torch.set_num_threads(1)

ENV_ID = "mmrl/GoTo-5x5-v0"
PPO_SMALL = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}
FINAL_NAME = re.compile(r"^(model|replay_buffer|env_state|state)_(\d+)_steps\.(zip|npz|pkl|json)$")
TEMP_NAME = re.compile(r"^\..+\.tmp$")

TRAIN_CHILD = """
import sys, torch
torch.set_num_threads(1)
import mmrl
run_dir, resume = sys.argv[1], sys.argv[2] == "resume"
print("ready", flush=True)
if resume:
    mmrl.train("ppo", resume=run_dir, timesteps=10_000_000, progress_bar=False)
else:
    mmrl.train("ppo", "mmrl/GoTo-5x5-v0", timesteps=10_000_000, n_envs=2, run_dir=run_dir, progress_bar=False,
               checkpoint_freq=64, eval_freq=0, eval_episodes=1,
               overrides={"n_steps": 32, "batch_size": 32, "n_epochs": 1})
"""


def _check_checkpoint_files(run_dir: Path) -> None:
    """No truncated file under a final checkpoint name; only dot-prefixed ``.tmp`` files are temporary."""
    folder = run_dir / "checkpoints"
    for path in folder.iterdir():
        name = path.name
        if TEMP_NAME.match(name):
            continue
        assert FINAL_NAME.match(name), f"unexpected file {name} in {folder}"
        if name.endswith(".zip") or name.endswith(".npz"):
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None, f"{name}: corrupt member"
        elif name.endswith(".json"):
            state = json.loads(path.read_text())
            assert state["steps"] == int(FINAL_NAME.match(name).group(2))
        elif name.endswith(".pkl"):
            assert path.stat().st_size > 0
    for name in ("config.yaml", "model.zip", "metrics.json", "tokenizer.json"):
        path = run_dir / name
        if path.exists() and name.endswith(".json"):
            json.loads(path.read_text())


@pytest.mark.slow
def test_sigkill_during_checkpointing_keeps_last_checkpoint_loadable(tmp_path: Path) -> None:
    rng = random.Random(1234)
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    previous_steps = 0
    interrupted_writes = 0  # kills that left a temporary file or a checkpoint without its state file
    kills = 6
    for attempt in range(kills):
        mode = "fresh" if attempt == 0 else "resume"
        proc = subprocess.Popen(
            [sys.executable, "-c", TRAIN_CHILD, str(run_dir), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout.readline().strip() == "ready"
            # Wait until this process has written a checkpoint newer than the last one, then kill at a random moment.
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and proc.poll() is None:
                checkpoints = RunDir(run_dir).checkpoints() if (run_dir / "config.yaml").exists() else []
                if checkpoints and checkpoints[-1].steps > previous_steps:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, f"training ended early: {proc.communicate()[1][-2000:]}"
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        names = {p.name for p in (run_dir / "checkpoints").iterdir()}
        if any(TEMP_NAME.match(n) for n in names) or any(
            n.startswith("model_") and f"state_{FINAL_NAME.match(n).group(2)}_steps.json" not in names
            for n in names
            if FINAL_NAME.match(n)
        ):
            interrupted_writes += 1
        _check_checkpoint_files(run_dir)
        latest = RunDir(run_dir).latest_checkpoint()
        assert latest is not None
        assert latest.steps > previous_steps, "no new checkpoint although training ran past checkpoint_freq"
        model = load_model(latest.model_path, algo="ppo", device="cpu")
        assert model.num_timesteps == latest.steps
        assert all(torch.isfinite(p).all() for p in model.policy.parameters())
        previous_steps = latest.steps
    print(f"{kills} kills, {interrupted_writes} of them in the middle of writing a checkpoint")


def _train(
    algo: str,
    run_dir: Path,
    timesteps: int,
    resume: bool = False,
    overrides: dict | None = None,
    stop_at: int | None = None,
    checkpoint_freq: int = 0,
):
    if resume:
        return mmrl.train(algo, resume=run_dir, timesteps=timesteps, progress_bar=False, stop_at=stop_at)
    kwargs = {
        "ppo": {"env_id": ENV_ID, "n_envs": 2, "overrides": PPO_SMALL},
        "dqn": {
            "env_id": ENV_ID,
            "n_envs": 2,
            "overrides": {
                "buffer_size": 1000,
                "learning_starts": 32,
                "batch_size": 16,
                "train_freq": 4,
                "target_update_interval": 64,
            },
        },
        "qlearning": {"env_id": "mmrl/Level-Corridor-v0", "n_envs": 2, "overrides": {}},
    }[algo]
    return mmrl.train(
        algo,
        kwargs["env_id"],
        timesteps=timesteps,
        n_envs=kwargs["n_envs"],
        seed=3,
        run_dir=run_dir,
        progress_bar=False,
        eval_freq=0,
        eval_episodes=1,
        checkpoint_freq=checkpoint_freq,
        overrides={**kwargs["overrides"], **(overrides or {})},
        stop_at=stop_at,
    )


def _parameters(algo: str, model) -> dict[str, np.ndarray]:
    if algo == "qlearning":
        return {"q_table": np.array(model.q_table), "visit_counts": np.array(model.visit_counts)}
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.policy.state_dict().items()}


def _assert_same_parameters(algo: str, straight, resumed) -> None:
    a, b = _parameters(algo, straight), _parameters(algo, resumed)
    assert a.keys() == b.keys()
    differing = {
        name: (
            f"shape {a[name].shape} vs {b[name].shape}"
            if a[name].shape != b[name].shape
            else f"max abs diff {float(np.max(np.abs(a[name].astype(float) - b[name].astype(float)))):.3g}"
        )
        for name in a
        if not np.array_equal(a[name], b[name])
    }
    assert not differing, (
        f"{algo}: resumed run differs from the uninterrupted one in {len(differing)}/{len(a)} arrays: "
        f"{dict(list(differing.items())[:4])}"
    )


def _train_split(algo: str, tmp_path: Path, n: int, overrides: dict | None = None):
    """An uninterrupted ``2n``-step run, and a ``2n``-step run stopped at ``n`` (``stop_at``) then resumed.

    The stopped run has the full ``2n`` horizon, so horizon-relative schedules (DQN's and QLearning's exploration,
    learning-rate schedules) are those of the straight run; ``n`` is a multiple of the rollout size, so the stop is
    exactly at ``n``.
    """
    straight = _train(algo, tmp_path / "straight", 2 * n, overrides=overrides)
    first = _train(algo, tmp_path / "split", 2 * n, overrides=overrides, stop_at=n)
    assert first.metrics["timesteps"] == first.model.num_timesteps == n
    assert first.metrics["stopped"] and not straight.metrics["stopped"]
    checkpoints = RunDir(tmp_path / "split").checkpoints()
    assert [c.steps for c in checkpoints] == [n], "the stop must write exactly the boundary checkpoint"
    _assert_same_parameters(
        algo,
        first.model,
        load_model(checkpoints[-1].model_path, algo=algo, **({} if algo == "qlearning" else {"device": "cpu"})),
    )
    resumed = _train(algo, tmp_path / "split", 2 * n, resume=True)
    assert not resumed.metrics["stopped"]
    return straight, resumed


def _assert_resume_continues(algo: str, tmp_path: Path, straight, resumed, n: int) -> None:
    """What holds for every algorithm: the step counter continues, parameters are finite and the result loads."""
    assert resumed.metrics["timesteps"] == straight.metrics["timesteps"] == 2 * n
    assert resumed.model.num_timesteps == 2 * n
    assert RunDir(tmp_path / "split").latest_checkpoint().steps == 2 * n
    for name, array in _parameters(algo, resumed.model).items():
        assert np.isfinite(array).all(), name
    reloaded = load_model(tmp_path / "split", algo=algo, **({} if algo == "qlearning" else {"device": "cpu"}))
    assert reloaded.num_timesteps == 2 * n
    _assert_same_parameters(algo, resumed.model, reloaded)


N_STEPS = 128


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "dqn", "qlearning"])
def test_resume_is_exact(tmp_path: Path, algo: str) -> None:
    """A 2N-step run stopped at N (``stop_at``) and resumed ends with bit-identical parameters on CPU.

    What it takes: the stopped run keeps the 2N horizon (DQN's and QLearning's exploration schedules span the total
    timesteps); the checkpoint is taken at the rollout boundary, before the next env step (SB3 steps the env before
    ``on_step``); it holds the env state, the replay buffer, the global RNGs and ``action_space.np_random`` (DQN's
    ``action_space.sample()``); and the extractor's inference text memo is emptied at every rollout start (DQN's
    target network otherwise reuses encodings computed in other batches: equal up to float rounding only).
    """
    straight, resumed = _train_split(algo, tmp_path, N_STEPS)
    _assert_resume_continues(algo, tmp_path, straight, resumed, N_STEPS)
    _assert_same_parameters(algo, straight.model, resumed.model)


@pytest.mark.slow
def test_stop_at_rounds_up_to_the_next_rollout_boundary(tmp_path: Path) -> None:
    """PPO with 2 envs x 32 steps: a stop requested at 100 steps happens at the boundary at 128."""
    result = _train("ppo", tmp_path / "run", 2 * N_STEPS, stop_at=100)
    assert result.metrics["stopped"] and result.metrics["timesteps"] == result.model.num_timesteps == 128
    assert [c.steps for c in RunDir(tmp_path / "run").checkpoints()] == [128]
    assert "stop_at" not in (tmp_path / "run" / "config.yaml").read_text()
    with pytest.raises(ValueError, match="stop_at"):
        mmrl.train("ppo", ENV_ID, timesteps=64, run_dir=tmp_path / "bad", stop_at=0, progress_bar=False)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["dqn", "qlearning"])
def test_resume_continues(tmp_path: Path, algo: str) -> None:
    """Counters and buffers continue (also implied by the exact test; kept for a clearer failure message)."""
    straight, resumed = _train_split(algo, tmp_path, N_STEPS)
    _assert_resume_continues(algo, tmp_path, straight, resumed, N_STEPS)
    if algo == "dqn":
        assert resumed.model.replay_buffer.size() == straight.model.replay_buffer.size()
        assert resumed.model._n_calls == straight.model._n_calls


@pytest.mark.slow
def test_resume_is_exact_dqn_without_exploration(tmp_path: Path) -> None:
    """With epsilon 0 (no action_space.sample()), DQN resume is bit-exact: replay buffer, RNGs and env state."""
    no_exploration = {"exploration_initial_eps": 0.0, "exploration_final_eps": 0.0}
    straight, resumed = _train_split("dqn", tmp_path, N_STEPS, overrides=no_exploration)
    _assert_resume_continues("dqn", tmp_path, straight, resumed, N_STEPS)
    _assert_same_parameters("dqn", straight.model, resumed.model)


@pytest.mark.parametrize(("signals", "expected_steps"), [(1, 66), (2, 64)])
def test_ctrl_c_inside_a_checkpoint_write_waits_for_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signals: int, expected_steps: int
) -> None:
    """SIGINTs landing inside ``torch.save`` (CI once caught this race) must not crash the run.

    Interrupting torch's zip writer mid-write makes its cleanup raise ``RuntimeError`` instead of
    ``KeyboardInterrupt``. The trainer holds the signals until the checkpoint (at step 64) is written: one Ctrl-C
    then ends training after the next step (2 envs: step 66), a second one at once (step 64).
    """
    import stable_baselines3.common.save_util as save_util

    real_save = save_util.th.save
    sent: list[bool] = []

    class InterruptingWriter:
        """File-like wrapper: its third write sends SIGINT(s) after the bytes are written (as in CI)."""

        def __init__(self, file):
            self.file = file
            self.writes = 0

        def write(self, data):
            written = self.file.write(data)
            self.writes += 1
            if self.writes == 3 and not sent:
                sent.append(True)
                for _ in range(signals):
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(0.01)  # let the handler run: signals that arrive together are merged
            return written

        def __getattr__(self, name):
            return getattr(self.file, name)

    def interrupting_save(obj, f, *args, **kwargs):
        return real_save(obj, InterruptingWriter(f), *args, **kwargs)

    monkeypatch.setattr(save_util.th, "save", interrupting_save)
    result = _train("ppo", tmp_path / "run", 100_000, checkpoint_freq=64)
    assert sent, "the patched writer was never used"
    assert result.interrupted
    _check_checkpoint_files(result.run_dir)
    assert (result.run_dir / "checkpoints" / "state_64_steps.json").exists()
    assert RunDir(result.run_dir).latest_checkpoint().steps == expected_steps
    assert load_model(result.run_dir).num_timesteps == result.metrics["timesteps"] == expected_steps


def test_first_ctrl_c_ends_training_after_the_current_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGINT in the middle of an env step: the step completes and counts, training ends there, and the run
    resumes from the state it was saved in."""
    from mmrl.envs.vec_env import GridVecEnv

    real_step_wait = GridVecEnv.step_wait
    calls: list[int] = []

    def interrupted_step_wait(self):
        calls.append(1)
        if len(calls) == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return real_step_wait(self)

    monkeypatch.setattr(GridVecEnv, "step_wait", interrupted_step_wait)
    result = _train("ppo", tmp_path / "run", 100_000, checkpoint_freq=64)
    monkeypatch.setattr(GridVecEnv, "step_wait", real_step_wait)
    assert result.interrupted and result.metrics["timesteps"] == 5 * 2
    assert RunDir(result.run_dir).latest_checkpoint().steps == 10
    resumed = mmrl.train("ppo", resume=result.run_dir, timesteps=128, progress_bar=False)
    assert not resumed.interrupted and resumed.metrics["timesteps"] == 10 + 2 * 64  # whole rollouts of 64 steps
