"""``stop_success``: training ends at the first periodic held-out evaluation that reaches a success rate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import mmrl
from mmrl.cli import main as cli_main
from mmrl.training.run_dir import RunDir

torch.set_num_threads(1)


def test_qlearning_stops_at_the_evaluation_that_reaches_the_target(tmp_path: Path) -> None:
    """Q-learning solves Level-Corridor within a few thousand steps (its preset: 10k); evaluating every 500 steps,
    training ends at the first evaluation with success 1.0 instead of running to the end."""
    result = mmrl.train(
        "qlearning", "mmrl/Level-Corridor-v0", timesteps=10_000, eval_freq=500, progress_bar=False,
        run_dir=tmp_path / "run", overrides={"stop_success": 1.0},
    )  # fmt: skip
    metrics = result.metrics
    stopped = metrics["stopped_on_success"]
    assert stopped is not None and stopped < 10_000
    assert metrics["stopped"] and metrics["timesteps"] == stopped
    *periodic, final = metrics["evaluations"]  # the periodic evaluations, then the final one (same step here)
    assert final["timesteps"] == stopped
    # every evaluation before the stopping one was below the target, the stopping one reached it
    assert [e["success_rate"] >= 1.0 for e in periodic] == [False] * (len(periodic) - 1) + [True]
    assert periodic[-1]["timesteps"] == stopped
    assert metrics["success_rate"] == 1.0  # the final evaluation of the stopped model
    assert "stop_success: 1.0" in (tmp_path / "run" / "config.yaml").read_text()


def test_ppo_stops_at_the_next_rollout_boundary_and_can_resume(tmp_path: Path) -> None:
    """PPO (2 envs x 32 steps): an evaluation at 64 steps that reaches the target ends training at that boundary,
    with a checkpoint there; resuming continues the run (to its next evaluation that reaches it)."""
    overrides = {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "stop_success": 0.01, "eval_episodes": 10}
    # the default network (patch CNN + gated attention), whose untrained greedy policy reaches an object sometimes
    overrides |= {"image_encoder": "patch", "fusion": "gated", "image_channels": None}
    result = mmrl.train(
        "ppo", "mmrl/GoTo-5x5-v0", timesteps=1_024, n_envs=2, eval_freq=64, progress_bar=False,
        run_dir=tmp_path / "run", overrides=overrides,
    )  # fmt: skip
    assert result.metrics["evaluations"][0]["success_rate"] >= 0.01  # a random-like policy succeeds sometimes
    assert result.metrics["stopped_on_success"] == 64 and result.metrics["timesteps"] == 64
    assert [c.steps for c in RunDir(tmp_path / "run").checkpoints()] == [64]
    resumed = mmrl.train("ppo", resume=tmp_path / "run", progress_bar=False)
    assert resumed.metrics["stopped_on_success"] == 128 and resumed.metrics["timesteps"] == 128


def test_without_stop_success_training_runs_to_the_end(tmp_path: Path) -> None:
    overrides = {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "eval_episodes": 10}
    result = mmrl.train(
        "ppo", "mmrl/GoTo-5x5-v0", timesteps=128, n_envs=2, eval_freq=64, progress_bar=False,
        run_dir=tmp_path / "run", overrides=overrides,
    )  # fmt: skip
    assert result.metrics["stopped_on_success"] is None and result.metrics["timesteps"] == 128


@pytest.mark.parametrize("value", [0, -0.5, 1.5, "high", float("nan")])
def test_stop_success_out_of_range_is_refused_before_anything_is_written(tmp_path: Path, value: object) -> None:
    with pytest.raises(ValueError, match="stop_success"):
        mmrl.train("ppo", "mmrl/GoTo-5x5-v0", run_dir=tmp_path / "run", overrides={"stop_success": value})
    assert not (tmp_path / "run").exists()


def test_stop_success_without_periodic_evaluations_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eval_freq is 0"):
        mmrl.train("ppo", "mmrl/GoTo-5x5-v0", eval_freq=0, run_dir=tmp_path / "run", overrides={"stop_success": 0.9})
    assert not (tmp_path / "run").exists()


def test_cli_says_why_training_stopped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        [
            "train", "--algo", "qlearning", "--env", "mmrl/Level-Corridor-v0", "--timesteps", "10000",
            "--eval-freq", "500", "--set", "stop_success=1.0", "--run-dir", str(tmp_path / "run"), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "reached stop_success=1.0" in out and "--stop-at" not in out
