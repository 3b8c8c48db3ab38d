"""What ``mmrl train`` says at the end: held-out vs training episodes, greedy vs sampled, the random policy on the
same seeds, resumed sessions, the best model; the progress bar's total; held-out evaluations in TensorBoard."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import mmrl
from mmrl.cli import main
from mmrl.training.callbacks import planned_total
from mmrl.training.summary import summary_lines

ENV = "mmrl/GoTo-5x5-v0"
TINY = {"n_steps": 8, "batch_size": 16, "n_epochs": 1, "features_dim": 16}


def _metrics(**changes):
    metrics = {
        "algo": "ppo",
        "timesteps": 8192,
        "session_timesteps": 8192,
        "wall_time_s": 5.0,
        "fps": 1638.4,
        "episodes": 50,
        "eval_seed": 1_000_000,
        "mean_return": 0.5,
        "std_return": 0.4,
        "success_rate": 0.6,
        "train_mean_return": 0.7,
        "train_success_rate": 0.8,
        "random_baseline": {"success_rate": 0.42, "mean_return": 0.3, "episodes": 50, "seed": 1_000_000},
        "evaluations": [{"timesteps": 8192, "mean_return": 0.5, "success_rate": 0.6}],
    }
    metrics.update(changes)
    return metrics


def test_summary_names_what_it_measured_next_to_the_random_policy():
    lines = summary_lines(_metrics(), "runs/x")
    assert lines[0] == "trained 8,192 steps in 5 s (1,638 steps/s)"
    assert "held-out evaluation (50 episodes, seeds 1,000,000-1,000,049, greedy actions): success 60.0 %" in lines[1]
    assert "(random policy 42.0 %)" in lines[1]
    assert lines[2].startswith("training episodes (last 100, sampled actions): success 80.0 %")
    assert len(lines) == 3  # the final model is the best one: no hint


def test_resumed_session_says_how_many_steps_it_added():
    lines = summary_lines(_metrics(timesteps=12656, session_timesteps=4464), "runs/x")
    assert lines[0].startswith("trained 4,464 more steps this session (total 12,656) in 5 s")


def test_summary_points_to_a_clearly_better_best_model():
    evaluations = [
        {"timesteps": 4096, "mean_return": 0.9, "success_rate": 1.0},
        {"timesteps": 8192, "mean_return": 0.5, "success_rate": 0.6},
    ]
    lines = summary_lines(_metrics(evaluations=evaluations), "runs/x")
    assert "best held-out evaluation was at 4,096 steps (success 100.0 %" in lines[-1]
    assert "saved as runs/x/best_model.zip" in lines[-1] and "mmrl evaluate runs/x --model best" in lines[-1]
    tabular = summary_lines(_metrics(algo="qlearning", evaluations=evaluations), "runs/q")
    assert "runs/q/best_model.npz" in tabular[-1]


@pytest.mark.parametrize(
    ("n_envs", "n_steps", "start", "total", "expected"),
    [(16, 64, 0, 4000, 4096), (16, 64, 0, 4096, 4096), (4, None, 0, 1001, 1004), (16, 64, 1024, 3000, 3072)],
)
def test_planned_total_is_where_sb3_really_stops(n_envs, n_steps, start, total, expected):
    class Model:
        pass

    model = Model()
    model.n_envs = n_envs
    if n_steps is not None:
        model.n_steps = n_steps
    assert planned_total(model, start, total) == expected


def test_planned_total_of_dqn_counts_its_train_freq(tmp_path):
    result = mmrl.train(
        "dqn",
        ENV,
        timesteps=50,
        n_envs=3,
        overrides={"train_freq": 4, "learning_starts": 0, "buffer_size": 100, "features_dim": 16, "eval_freq": 0},
        run_dir=tmp_path / "run",
        progress_bar=False,
        eval_episodes=1,
    )
    assert planned_total(result.model, 0, 50) == 60 == result.metrics["timesteps"]  # whole rollouts of 4 x 3 steps


def test_training_records_the_random_baseline_and_tensorboard_evaluations(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.set_num_threads(1)
    result = mmrl.train(
        "ppo",
        ENV,
        timesteps=64,
        n_envs=2,
        overrides={**TINY, "eval_freq": 24},  # evaluations in the middle of rollouts of 16 steps
        run_dir=tmp_path / "run",
        progress_bar=False,
        eval_episodes=6,
    )
    metrics = json.loads((Path(result.run_dir) / "metrics.json").read_text())
    baseline = metrics["random_baseline"]
    assert baseline["episodes"] == 6 and baseline["seed"] == metrics["eval_seed"] and not baseline["deterministic"]
    venv = mmrl.make_vec_env(ENV, n_envs=2, seed=0, env_kwargs=result.config.env_kwargs)
    from mmrl.evaluation.baseline import random_baseline

    assert random_baseline(venv, 6, metrics["eval_seed"])["success_rate"] == baseline["success_rate"]
    assert all(entry["deterministic"] and entry["seed"] == metrics["eval_seed"] for entry in metrics["evaluations"])
    (events,) = list((Path(result.run_dir) / "tb").iterdir())
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    assert {"eval/success_rate", "eval/mean_return", "eval/random_success_rate"} <= set(scalars)
    logged = [event.value for event in accumulator.Scalars("eval/success_rate")]
    assert logged == pytest.approx([entry["success_rate"] for entry in metrics["evaluations"]])
    assert [event.step for event in accumulator.Scalars("eval/success_rate")] == [24, 48, 64]
    # SB3's own scalars keep their steps (rollout ends): the evaluations do not flush SB3's pending values
    train_steps = {event.step for tag in scalars if tag.startswith("train/") for event in accumulator.Scalars(tag)}
    assert train_steps and all(step % 16 == 0 for step in train_steps)


def test_cli_summary_end_to_end(tmp_path, capsys):
    torch.set_num_threads(1)
    args = ["train", "--algo", "ppo", "--env", ENV, "--timesteps", "64", "--n-envs", "2", "--no-progress"]
    args += ["--run-dir", str(tmp_path / "run"), *[f"--set={k}={v}" for k, v in TINY.items()]]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "held-out evaluation (" in printed and "greedy actions" in printed and "random policy" in printed
    assert "training episodes (last 100, sampled actions)" in printed


def test_progress_bar_ends_at_100_percent(tmp_path, capsys):
    torch.set_num_threads(1)
    overrides = {**TINY, "eval_freq": 0}
    mmrl.train("ppo", ENV, timesteps=50, n_envs=2, overrides=overrides, run_dir=tmp_path / "run", eval_episodes=1)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    # 4 rollouts of 8 x 2 steps: the bar reads 64 of 64, not 64 of 50
    assert final.startswith("100%") and re.search(r"\b64(\.0)?/64(\.0)? ", final), final
    assert "train_success=" in final  # the bar's figures are named as the training episodes'
