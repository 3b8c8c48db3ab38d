"""``final_model``: with ``best`` the run's model file is the best periodic evaluation's (early stopping on held-out
seeds of the training instructions), with ``average`` the mean weights of the last third's checkpoints; both keep
the last weights as ``last_model``; the default keeps the last weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mmrl
from mmrl.cli import main
from mmrl.training.presets import resolve_config
from mmrl.training.run_dir import load_model
from mmrl.training.summary import summary_lines

ENV = "mmrl/GoTo-5x5-v0"
TINY = {"n_steps": 16, "batch_size": 32, "n_epochs": 2, "features_dim": 16, "learning_rate": 0.003}


def _train(run_dir: Path, stop_at: int | None = None, **overrides):
    torch.set_num_threads(1)
    return mmrl.train(
        "ppo",
        ENV,
        timesteps=1536,
        n_envs=4,
        overrides={**TINY, "eval_freq": 192, **overrides},
        run_dir=run_dir,
        progress_bar=False,
        eval_episodes=8,
        stop_at=stop_at,
    )


def _parameters(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path).policy.state_dict()


def _evaluated_return(run: Path, seed: int, scratch: Path) -> float:
    """Mean return of ``mmrl evaluate RUN`` on the run's 8 held-out evaluation episodes."""
    out = scratch / "eval.json"
    assert (
        main(["evaluate", str(run), "--episodes", "8", "--seed", str(seed), "--no-baseline", "--json", str(out)]) == 0
    )
    return float(json.loads(out.read_text())["mean_return"])


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def test_final_model_best_makes_the_model_file_the_best_evaluations(tmp_path):
    result = _train(tmp_path / "run", final_model="best")
    run = Path(result.run_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    evaluations = metrics["evaluations"]
    best = max(evaluations, key=lambda entry: entry["mean_return"])
    steps = metrics["timesteps"]
    assert len(evaluations) == 9 and evaluations[-1]["timesteps"] == steps
    assert best["mean_return"] > 0  # it learned something to choose from
    assert metrics["final_model"] == "best" and metrics["final_model_timesteps"] == best["timesteps"]
    assert metrics["mean_return"] == best["mean_return"] and metrics["success_rate"] == best["success_rate"]
    assert metrics["last_model"]["mean_return"] == evaluations[-1]["mean_return"]
    assert (run / "model.zip").read_bytes() == (run / "best_model.zip").read_bytes()
    # the last weights are the final checkpoint's, not the model file's unless the last evaluation was the best
    last = _parameters(run / "last_model.zip")
    assert _same(last, _parameters(run / "checkpoints" / f"model_{steps}_steps.zip"))
    assert _same(last, _parameters(run / "model.zip")) == (best["timesteps"] == steps)
    # `mmrl evaluate RUN` now plays the chosen model: the same episodes give the best evaluation's figures
    assert _evaluated_return(run, metrics["eval_seed"], tmp_path) == pytest.approx(best["mean_return"])
    lines = summary_lines(metrics, run)
    chosen = f"evaluation's, at {best['timesteps']:,} steps (final_model: best)"
    assert any(chosen in line and "last_model.zip" in line for line in lines)


def test_final_model_defaults_to_the_last_weights(tmp_path):
    result = _train(tmp_path / "run")
    run = Path(result.run_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    assert "final_model" not in metrics and not (run / "last_model.zip").exists()
    final = run / "checkpoints" / f"model_{metrics['timesteps']}_steps.zip"
    assert _same(_parameters(run / "model.zip"), _parameters(final))
    assert metrics["mean_return"] == metrics["evaluations"][-1]["mean_return"]


def test_final_model_average_is_the_mean_of_the_last_thirds_checkpoints(tmp_path):
    result = _train(tmp_path / "run", final_model="average", checkpoint_freq=192)
    run = Path(result.run_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    steps = metrics["timesteps"]
    # checkpoints every 192 steps and at the end; the last third of 1,536 steps starts at 1,024
    assert steps == 1536 and metrics["final_model_checkpoints"] == [1152, 1344, 1536]
    checkpoints = [_parameters(run / "checkpoints" / f"model_{n}_steps.zip") for n in (1152, 1344, 1536)]
    model = _parameters(run / "model.zip")
    for key, value in model.items():
        if value.is_floating_point():
            mean = sum(checkpoint[key].double() for checkpoint in checkpoints) / 3
            torch.testing.assert_close(value, mean.to(value.dtype))
    assert not _same(model, checkpoints[-1])  # the weights moved over the last third
    assert _same(_parameters(run / "last_model.zip"), checkpoints[-1])
    assert metrics["final_model"] == "average"
    assert metrics["last_model"]["mean_return"] == metrics["evaluations"][-1]["mean_return"]
    assert _evaluated_return(run, metrics["eval_seed"], tmp_path) == pytest.approx(metrics["mean_return"])
    lines = summary_lines(metrics, run)
    assert any("mean weights of 3 checkpoints, 1,152-1,536 steps (final_model: average)" in line for line in lines)


def test_final_model_average_of_a_resumed_run_equals_an_uninterrupted_runs(tmp_path):
    whole = _train(tmp_path / "whole", final_model="average", checkpoint_freq=192)
    split = _train(tmp_path / "split", stop_at=768, final_model="average", checkpoint_freq=192)
    assert "final_model" not in split.metrics and not (Path(split.run_dir) / "last_model.zip").exists()
    resumed = mmrl.train(resume=tmp_path / "split", algo=None, timesteps=1536, progress_bar=False)
    assert resumed.metrics["final_model_checkpoints"] == whole.metrics["final_model_checkpoints"]
    assert _same(_parameters(Path(resumed.run_dir) / "model.zip"), _parameters(Path(whole.run_dir) / "model.zip"))


def test_final_model_rejects_an_unknown_choice_and_an_average_it_cannot_take():
    assert resolve_config("ppo", ENV, overrides={"final_model": "best"}).final_model == "best"
    assert resolve_config("ppo", ENV).final_model is None
    with pytest.raises(ValueError, match="unknown final_model 'first'; valid choices: last, best, average"):
        resolve_config("ppo", ENV, overrides={"final_model": "first"})
    with pytest.raises(ValueError, match="final_model=average averages network weights; qlearning has none"):
        resolve_config("qlearning", "mmrl/Level-Corridor-v0", overrides={"final_model": "average"})
    with pytest.raises(ValueError, match="checkpoint_freq is 0: set checkpoint_freq"):
        resolve_config("ppo", ENV, overrides={"final_model": "average", "checkpoint_freq": 0})


def test_demo_runs_a_preset_that_averages(tmp_path):
    """``mmrl demo --env`` takes the preset's checkpoint cadence, so GoTo-12x12's ``final_model: average`` works."""
    args = ["demo", "--env", "mmrl/GoTo-12x12-v0", "--timesteps", "2048", "--episodes", "2", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "demo")]) == 0
    metrics = json.loads((tmp_path / "demo" / "run" / "metrics.json").read_text())
    assert metrics["final_model"] == "average" and metrics["final_model_checkpoints"] == [metrics["timesteps"]]
