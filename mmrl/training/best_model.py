"""Periodic evaluation during training and the best model it keeps (``best_model.zip`` / ``.npz``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmrl.algorithms import AlgorithmSpec
from mmrl.evaluation.baseline import random_baseline
from mmrl.evaluation.runner import run_episodes
from mmrl.training.checkpointing import save_model
from mmrl.training.interrupts import sigint_deferred

__all__ = ["BestModelTracker", "evaluate_model"]


def evaluate_model(model: Any, venv: Any, n_episodes: int, seed: int, deterministic: bool = True) -> dict[str, Any]:
    """Summary of ``n_episodes`` episodes of ``model`` on ``venv`` played by
    :func:`mmrl.evaluation.runner.run_episodes` (episode ``i`` seeded ``seed + i``).

    Returns:
        ``{"mean_return", "std_return", "success_rate", "episodes", "mean_length"}`` (``success_rate`` is None
        when the env reports no ``is_success``).
    """
    return run_episodes(model, venv, n_episodes, seed, deterministic).summary()


class BestModelTracker:
    """Evaluates the model on held-out seeds, keeps the history, and saves the model whenever it beats the best
    mean return so far. Each evaluation is also written to TensorBoard (``eval/success_rate``,
    ``eval/mean_return``, ``eval/random_success_rate``, ``eval/random_mean_return``), next to SB3's scalars.

    Args:
        run_path: The run directory (``best_model<suffix>`` is written there).
        spec: The algorithm.
        eval_env: The evaluation envs.
        episodes: Episodes per evaluation.
        seed: Seed of the first evaluation episode.
        evaluations: History to continue (a resumed run's).
        best: Best mean return so far (``-inf``: none).
    """

    def __init__(
        self,
        run_path: Path,
        spec: AlgorithmSpec,
        eval_env: Any,
        episodes: int,
        seed: int,
        evaluations: list[dict[str, Any]],
        best: float,
    ) -> None:
        self.path = run_path / f"best_model{spec.suffix}"
        self.spec = spec
        self.eval_env = eval_env
        self.episodes = episodes
        self.seed = seed
        self.evaluations = evaluations
        self.best = best
        self._baseline: dict[str, Any] | None = None

    @property
    def baseline(self) -> dict[str, Any]:
        """The uniformly random policy on the evaluation seeds (played once, on first use)."""
        if self._baseline is None:
            self._baseline = random_baseline(self.eval_env, self.episodes, self.seed)
        return self._baseline

    def history(self) -> tuple[list[dict[str, Any]], float]:
        """``(evaluations, best)``, as stored in checkpoints."""
        return self.evaluations, self.best

    @property
    def best_or_none(self) -> float | None:
        """The best mean return, None when there is none yet."""
        return self.best if np.isfinite(self.best) else None

    def measure(self, model: Any) -> dict[str, Any]:
        """Evaluate ``model`` without recording the result (:func:`evaluate_model` on the evaluation envs)."""
        return evaluate_model(model, self.eval_env, self.episodes, self.seed)

    def evaluate(self, model: Any) -> dict[str, Any]:
        """Evaluate ``model`` and :meth:`record` the result (Ctrl-C waits until a best model is saved)."""
        result = self.measure(model)
        with sigint_deferred():
            self.record(model, result)
        return result

    def record(self, model: Any, result: dict[str, Any]) -> None:
        """Add an evaluation ``result`` of ``model`` to the history; save ``model`` if it is the best so far."""
        entry = {"timesteps": int(model.num_timesteps), **result, "deterministic": True, "seed": self.seed}
        self.evaluations.append(entry)
        _log_evaluation(model, entry, self.baseline)
        if result["mean_return"] > self.best:
            self.best = result["mean_return"]
            save_model(model, self.path, self.spec)


def _log_evaluation(model: Any, entry: dict[str, Any], baseline: dict[str, Any]) -> None:
    """Write one held-out evaluation (and the random policy's figures) to the model's TensorBoard writers.

    The scalars go straight to the TensorBoard outputs of the model's SB3 logger, at the evaluation's step:
    ``logger.dump`` would also flush (and clear) the values SB3 recorded for its own next dump, and print a table
    on stdout for ``verbose=1``.
    """
    try:
        formats = model.logger.output_formats
    except AttributeError:  # a model that never started learning has no logger
        return
    from stable_baselines3.common.logger import TensorBoardOutputFormat

    values = {
        "eval/mean_return": entry["mean_return"],
        "eval/success_rate": entry.get("success_rate"),
        "eval/random_mean_return": baseline["mean_return"],
        "eval/random_success_rate": baseline.get("success_rate"),
    }
    scalars = {key: float(value) for key, value in values.items() if value is not None}
    for output in formats:
        if isinstance(output, TensorBoardOutputFormat):
            output.write(scalars, {key: () for key in scalars}, step=int(entry["timesteps"]))
