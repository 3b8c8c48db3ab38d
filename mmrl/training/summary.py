"""The end-of-training summary that ``mmrl train`` prints: what was measured, on which episodes, next to the
random policy on the same seeds, and which model file to use.

Example::

    result = mmrl.train("ppo", "mmrl/GoTo-5x5-v0", timesteps=40_000)
    print("\\n".join(summary_lines(result.metrics, result.run_dir)))
"""

from __future__ import annotations

import os
from typing import Any

from mmrl.algorithms import get_spec

__all__ = ["summary_lines"]

#: A best model this much better (success, else mean return) than the final one is worth pointing to.
BEST_MARGIN = 0.02


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def summary_lines(metrics: dict[str, Any], run_dir: str | os.PathLike[str]) -> list[str]:
    """Lines that say what training did and measured.

    Args:
        metrics: ``metrics.json`` of a finished run (``TrainResult.metrics``).
        run_dir: The run directory (named in the best-model hint).
    """
    total = int(metrics["timesteps"])
    session = int(metrics.get("session_timesteps", total))
    wall, fps = float(metrics["wall_time_s"]), float(metrics["fps"])
    if session != total:
        first = f"trained {session:,} more steps this session (total {total:,}) in {wall:.0f} s ({fps:,.0f} steps/s)"
    else:
        first = f"trained {total:,} steps in {wall:.0f} s ({fps:,.0f} steps/s)"
    cloning = metrics.get("cloning")
    if cloning:
        first += (
            f", after cloning {int(cloning['demonstration_frames']):,} {cloning.get('demonstrator', 'planner')} frames "
            "into the policy "
            f"({float(cloning['cloning_s']):.0f} s of that, action accuracy {float(cloning['bc_accuracy']):.2f})"
        )
    lines = [first]
    if "mean_return" in metrics:
        episodes = int(metrics["episodes"])
        seed = metrics.get("eval_seed")
        seeds = "" if seed is None else f", seeds {int(seed):,}-{int(seed) + episodes - 1:,}"
        random = metrics.get("random_baseline")
        random_text = ""
        if random is not None:
            random_text = (
                f" (random policy {_rate(random.get('success_rate'))})"
                if random.get("success_rate") is not None
                else f" (random policy return {random['mean_return']:.3f})"
            )
        lines.append(
            f"held-out evaluation ({episodes} episodes{seeds}, greedy actions): success "
            f"{_rate(metrics.get('success_rate'))}{random_text}, mean return {metrics['mean_return']:.3f} "
            f"+- {metrics['std_return']:.3f}"
        )
    if metrics.get("train_mean_return") is not None:
        lines.append(
            f"training episodes (last 100, sampled actions): success {_rate(metrics.get('train_success_rate'))}, "
            f"mean return {metrics['train_mean_return']:.3f}"
        )
    last = metrics.get("last_model")
    if metrics.get("final_model") in ("best", "average") and isinstance(last, dict):
        suffix = get_spec(str(metrics["algo"])).suffix
        if metrics["final_model"] == "best":
            what = f"the best held-out evaluation's, at {int(metrics['final_model_timesteps']):,} steps"
        else:
            averaged = metrics["final_model_checkpoints"]
            what = f"the mean weights of {len(averaged)} checkpoints, {int(averaged[0]):,}-{int(averaged[-1]):,} steps"
        lines.append(
            f"model{suffix} is {what} (final_model: {metrics['final_model']}); the last weights are "
            f"last_model{suffix} (success {_rate(last.get('success_rate'))}, mean return "
            f"{float(last['mean_return']):.3f})"
        )
    hint = _best_model_hint(metrics, run_dir)
    if hint:
        lines.append(hint)
    return lines


def _best_model_hint(metrics: dict[str, Any], run_dir: str | os.PathLike[str]) -> str | None:
    """Point to ``best_model`` when an earlier held-out evaluation beat the final model clearly."""
    evaluations = [e for e in metrics.get("evaluations") or [] if "mean_return" in e]
    if not evaluations or "mean_return" not in metrics:
        return None
    best = max(evaluations, key=lambda e: e["mean_return"])
    final_success, best_success = metrics.get("success_rate"), best.get("success_rate")
    if final_success is not None and best_success is not None:
        if best_success < final_success + BEST_MARGIN:
            return None
        what = f"success {_rate(best_success)}"
    else:
        if best["mean_return"] < metrics["mean_return"] + BEST_MARGIN:
            return None
        what = f"mean return {best['mean_return']:.3f}"
    path = os.path.join(os.fspath(run_dir), f"best_model{get_spec(str(metrics['algo'])).suffix}")
    return (
        f"the best held-out evaluation was at {int(best['timesteps']):,} steps ({what}, saved as {path}); "
        f"use it with: mmrl evaluate {os.fspath(run_dir)} --model best"
    )
