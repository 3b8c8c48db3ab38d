"""What the run's model file holds at the end of training (the ``final_model`` preset key).

* ``"last"`` (the default): the weights training ended with.
* ``"best"``: the best periodic evaluation's model (:func:`keep_best_as_final`), early stopping on a validation set.
* ``"average"``: the mean of the weights of the checkpoints written over the last third of training
  (:func:`average_checkpoints`; Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima and Better
  Generalization"). On mmrl/GoTo-12x12-v0 it found more held-out colour/kind pairs than the last weights on 7 of 8
  runs (benchmarks/RESULTS.md, "GoTo-12x12: the last actions as memory").

With ``"best"`` or ``"average"`` the last weights are kept as ``last_model<suffix>``, written before the model file
is replaced, so a crash in between loses nothing. Example::

    mmrl train --algo ppo --env mmrl/GoTo-5x5-v0 --set final_model=average
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import torch

from mmrl.algorithms import AlgorithmSpec
from mmrl.atomic import atomic_path
from mmrl.training.best_model import BestModelTracker
from mmrl.training.checkpointing import save_model
from mmrl.training.run_dir import RunDir, load_model

__all__ = ["AVERAGED_FRACTION", "average_checkpoints", "choose_final_model", "keep_best_as_final"]

#: ``final_model: average`` averages the checkpoints of this last fraction of the steps trained.
AVERAGED_FRACTION = 1 / 3

#: The summary fields of an evaluation that ``metrics.json`` reports for the model file.
_SUMMARY_KEYS = ("mean_return", "std_return", "success_rate", "episodes", "mean_length")


def choose_final_model(
    choice: str | None, model: Any, run_path: Path, spec: AlgorithmSpec, tracker: BestModelTracker
) -> dict[str, Any]:
    """Apply ``choice`` (``TrainConfig.final_model``) to a finished run, after its final evaluation was recorded.

    Returns:
        What ``metrics.json`` adds or replaces (empty for ``"last"`` or None).
    """
    if choice == "best":
        return keep_best_as_final(model, run_path, spec, tracker)
    if choice == "average":
        return average_checkpoints(model, run_path, spec, tracker)
    return {}


def _last_evaluation(tracker: BestModelTracker) -> dict[str, Any]:
    last = tracker.evaluations[-1] if tracker.evaluations else {}
    return {key: last[key] for key in ("timesteps", *_SUMMARY_KEYS) if key in last}


def keep_best_as_final(model: Any, run_path: Path, spec: AlgorithmSpec, tracker: BestModelTracker) -> dict[str, Any]:
    """Make the run's model file the best held-out evaluation's, keeping the last weights as ``last_model``.

    This is early stopping on a validation set: the evaluations play held-out seeds of the *training* instructions,
    never the test split, so the choice does not peek at what ``mmrl evaluate --split test`` measures.

    Args:
        model: The model as training left it (saved as ``last_model``).
        run_path: The run directory.
        spec: The algorithm.
        tracker: The periodic evaluations, final one included.

    Returns:
        ``final_model`` (``"best"``), ``final_model_timesteps`` (the step of the evaluation chosen), ``last_model``
        (the last weights' evaluation) and that evaluation's summary fields; empty when no best model was saved.
    """
    evaluations = [entry for entry in tracker.evaluations if "mean_return" in entry]
    if not evaluations or not tracker.path.is_file():
        return {}
    best = max(evaluations, key=lambda entry: entry["mean_return"])  # the first of equals: the one saved
    last = _last_evaluation(tracker)
    save_model(model, run_path / f"last_model{spec.suffix}", spec)
    with atomic_path(run_path / f"model{spec.suffix}") as tmp:
        shutil.copyfile(tracker.path, tmp)
    return {
        **{key: best[key] for key in _SUMMARY_KEYS if key in best},
        "final_model": "best",
        "final_model_timesteps": int(best["timesteps"]),
        "last_model": last,
    }


def average_checkpoints(model: Any, run_path: Path, spec: AlgorithmSpec, tracker: BestModelTracker) -> dict[str, Any]:
    """Load into ``model`` the mean weights of the run's checkpoints over the last third of its steps, evaluate it on
    the held-out seeds and save it as the run's model file, keeping the last weights as ``last_model``.

    The checkpoints are those at or after ``(1 - AVERAGED_FRACTION)`` of the final step (the final checkpoint
    included), written every ``checkpoint_freq`` steps; a resumed run finds those of its earlier sessions, so it
    ends with the same average as an uninterrupted one. Integer buffers keep the last checkpoint's values.

    Args:
        model: The model as training left it (SB3; its policy receives the mean weights).
        run_path: The run directory.
        spec: The algorithm.
        tracker: Evaluates the averaged model on the held-out seeds.

    Returns:
        ``final_model`` (``"average"``), ``final_model_checkpoints`` (the steps averaged), ``last_model`` (the last
        weights' evaluation) and the averaged model's evaluation.
    """
    steps = int(model.num_timesteps)
    first = math.ceil(steps * (1 - AVERAGED_FRACTION))
    chosen = [checkpoint for checkpoint in RunDir(run_path).checkpoints() if first <= checkpoint.steps <= steps]
    if not chosen:
        return {}
    last = _last_evaluation(tracker)
    save_model(model, run_path / f"last_model{spec.suffix}", spec)
    total: dict[str, torch.Tensor] = {}
    latest: dict[str, torch.Tensor] = {}
    for checkpoint in chosen:
        latest = load_model(checkpoint.model_path, algo=spec.name).policy.state_dict()
        for key, value in latest.items():
            if value.is_floating_point():
                total[key] = total.get(key, torch.zeros_like(value, dtype=torch.float64)) + value.double()
    averaged = {
        key: (total[key] / len(chosen)).to(value.dtype) if key in total else value for key, value in latest.items()
    }
    model.policy.load_state_dict(averaged)
    result = tracker.measure(model)
    save_model(model, run_path / f"model{spec.suffix}", spec)
    return {
        **{key: result[key] for key in _SUMMARY_KEYS if key in result},
        "final_model": "average",
        "final_model_checkpoints": [checkpoint.steps for checkpoint in chosen],
        "last_model": last,
    }
