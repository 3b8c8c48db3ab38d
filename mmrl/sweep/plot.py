"""The comparison plot of a sweep: success against timesteps per configuration, mean ± std band over seeds.

Left: held-out greedy success of the periodic evaluations (``metrics.json``); right: training success rate from
each run's ``monitor.csv`` (binned as :mod:`mmrl.plotting`). Bands are clipped to [0, 1].
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmrl.atomic import atomic_path

if TYPE_CHECKING:
    from mmrl.sweep.results import SweepReport

__all__ = ["plot_sweep"]


def _evaluations(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        points = [
            (int(e["timesteps"]), float(e["success_rate"]))
            for e in metrics.get("evaluations", [])
            if e.get("success_rate") is not None
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not points:
        return None
    steps, rates = zip(*sorted(points), strict=True)
    return np.array(steps, dtype=float), np.array(rates)


def _band(axis: object, x: np.ndarray, curves: list[np.ndarray], colour: str, label: str) -> None:
    stacked = np.vstack(curves)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(stacked, axis=0), np.nanstd(stacked, axis=0)
    axis.plot(x, mean, color=colour, label=label)  # type: ignore[attr-defined]
    axis.fill_between(  # type: ignore[attr-defined]
        x, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=colour, alpha=0.2, linewidth=0
    )


def plot_sweep(report: SweepReport, output: str | os.PathLike[str], bins: int = 30) -> Path:
    """Draw the finished seeds of every configuration of ``report`` to a PNG (written atomically)."""
    from matplotlib.figure import Figure

    from mmrl.plotting import binned_curve, read_monitor

    figure = Figure(figsize=(12, 4.5), layout="constrained")
    held_out, training = figure.subplots(1, 2)
    budget = float(report.spec.timesteps)
    for index, config in enumerate(report.configs):
        done = config.done()
        if not done:
            continue
        colour = f"C{index % 10}"
        label = f"{config.label} ({len(done)} seed{'s' * (len(done) > 1)})"
        evaluations = [e for e in (_evaluations(t.run_dir) for t in done) if e is not None]
        if evaluations:
            grid = np.unique(np.concatenate([steps for steps, _ in evaluations]))
            curves = [np.interp(grid, steps, rates, right=np.nan) for steps, rates in evaluations]
            _band(held_out, grid, curves, colour, label)
        edges = np.linspace(0, budget, bins + 1)
        monitor_curves = []
        for trial in done:
            try:
                log = read_monitor(trial.run_dir)
            except (OSError, ValueError):
                continue
            if log.successes is not None:
                monitor_curves.append(binned_curve(log.timesteps, log.successes, edges))
        if monitor_curves:
            _band(training, (edges[:-1] + edges[1:]) / 2, monitor_curves, colour, label)
    spec = report.spec
    held_out.set_title("held-out greedy success (periodic evaluations)")
    training.set_title("training success (sampled actions)")
    for axis in (held_out, training):
        axis.set_xlabel("timesteps")
        axis.set_ylabel("success rate")
        axis.set_ylim(-0.02, 1.02)
        axis.set_xlim(0, budget)
        axis.grid(alpha=0.3)
    held_out.legend(loc="lower right", fontsize="small")
    figure.suptitle(f"{spec.name}: {spec.algo} on {', '.join(spec.envs)}, mean ± std over seeds")
    output = Path(output)
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    return output
