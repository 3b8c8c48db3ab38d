"""Learning curves from run directories: return and success rate against timesteps, read from ``monitor.csv``
(training episodes, sampled actions), with the held-out greedy evaluations and the random-policy baseline of
``metrics.json`` when the run has them.

Runs of the same env and algorithm (several seeds) are drawn as one mean ± std band: each run's episodes are
averaged in timestep bins (empty bins interpolated) and smoothed with a moving average over a few bins, then the
runs are averaged bin by bin; success bands are clipped to [0, 1]. Drawn with Matplotlib's
Agg canvas (no display, no global backend change).
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrl.atomic import atomic_path
from mmrl.limits import check_limit, short_repr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MONITOR_FILE = "monitor.csv"
METRICS_FILE = "metrics.json"
#: metrics.json files larger than this are ignored (a run's is a few KB).
MAX_METRICS_BYTES = 16 * 2**20
DEFAULT_BINS = 50
#: Moving-average window of the training curves, in bins (``mmrl plot --smooth``; 1 = raw bins).
DEFAULT_SMOOTH = 5


@dataclass(frozen=True)
class MonitorLog:
    """Episodes of one run, in completion order."""

    path: Path
    timesteps: np.ndarray
    """Cumulative environment steps at the end of each episode (sum of the lengths so far)."""
    returns: np.ndarray
    lengths: np.ndarray
    successes: np.ndarray | None
    """1.0 / 0.0 per episode, None when ``is_success`` was not logged."""


def _monitor_path(run: str | os.PathLike[str]) -> Path:
    path = Path(run)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"no run directory or monitor file at {path}; check the path")
    if (path / MONITOR_FILE).is_file():
        return path / MONITOR_FILE
    found = sorted(path.glob("*monitor.csv"))
    if len(found) == 1:
        return found[0]
    raise ValueError(f"{path} holds no {MONITOR_FILE}; pass run directories written by 'mmrl train'")


def read_monitor(run: str | os.PathLike[str]) -> MonitorLog:
    """Read the SB3 (Vec)Monitor CSV of a run directory (or the CSV file itself).

    Raises:
        FileNotFoundError: If nothing is at the path.
        ValueError: If there is no monitor file, it is malformed, or it holds no finished episode.
    """
    path = _monitor_path(run)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            first = handle.readline()
            if not first.startswith("#"):
                handle.seek(0)
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(
            f"{path} is not an SB3 monitor CSV ({type(error).__name__}); pass a run directory written by "
            f"'mmrl train' or its {MONITOR_FILE}"
        ) from error
    if not rows:
        raise ValueError(f"{path} holds no finished episode yet; train longer before plotting")
    try:
        returns = np.array([float(row["r"]) for row in rows])
        raw_lengths = np.array([float(row["l"]) for row in rows])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is not an SB3 monitor file (columns r, l, t expected): {short_repr(error)}") from None
    if not np.all(np.isfinite(returns)) or not np.all(np.isfinite(raw_lengths)):
        raise ValueError(f"{path}: episode returns and lengths must be finite numbers; the file is damaged")
    if np.any(raw_lengths < 1) or np.any(raw_lengths != np.round(raw_lengths)) or np.any(raw_lengths > 2**40):
        raise ValueError(f"{path}: episode lengths (column l) must be whole numbers from 1 to 2^40; file damaged")
    lengths = raw_lengths.astype(np.int64)
    successes = None
    if "is_success" in rows[0]:
        truthy = ("true", "1", "1.0")
        successes = np.array([float(str(row["is_success"]).strip().lower() in truthy) for row in rows])
    return MonitorLog(path, np.cumsum(lengths), returns, lengths, successes)


def _run_folder(run: str | os.PathLike[str]) -> Path:
    path = Path(run)
    return path if path.is_dir() else path.parent


def _group(run: str | os.PathLike[str]) -> tuple[str, str | None]:
    """``(env id, algo)`` from the run's config.yaml, else ``(folder name, None)``."""
    folder = _run_folder(run)
    try:
        from mmrl.training.run_dir import RunDir

        run_dir = RunDir(folder)
        return str(run_dir.env_id), str(run_dir.algo)
    except (ImportError, FileNotFoundError, ValueError, KeyError):
        return folder.name or str(folder), None


def read_metrics(run: str | os.PathLike[str]) -> dict[str, Any]:
    """``metrics.json`` of a run directory (next to the monitor file), or ``{}`` when it is absent or unreadable.

    Plots use its ``evaluations`` (held-out greedy evaluations during training) and ``random_baseline``; runs
    written before those keys existed simply have no such markers.
    """
    path = _run_folder(run) / METRICS_FILE
    try:
        if path.stat().st_size > MAX_METRICS_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    """``value`` as a finite float, else None (missing keys, null, damaged files)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if np.isfinite(value) else None


def evaluation_points(metrics: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Held-out evaluation points ``(timesteps_P, values_P)`` of ``key`` (``"success_rate"`` or ``"mean_return"``)
    from several runs' metrics, averaged over the runs that evaluated at the same timestep, sorted by timestep."""
    by_step: dict[float, list[float]] = {}
    for run_metrics in metrics:
        entries = run_metrics.get("evaluations")
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            step, value = _number(entry.get("timesteps")), _number(entry.get(key))
            if step is not None and value is not None:
                by_step.setdefault(step, []).append(value)
    steps = sorted(by_step)
    return np.array(steps, dtype=float), np.array([np.mean(by_step[step]) for step in steps], dtype=float)


def baseline_value(metrics: Sequence[dict[str, Any]], key: str) -> float | None:
    """Mean over runs of ``random_baseline[key]`` (random policy on the held-out seeds); None when no run has it."""
    values = []
    for run_metrics in metrics:
        baseline = run_metrics.get("random_baseline")
        value = _number(baseline.get(key)) if isinstance(baseline, dict) else None
        if value is not None:
            values.append(value)
    return float(np.mean(values)) if values else None


def smooth_curve(curve: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of ``curve`` over ``window`` bins (1: unchanged); NaN bins stay NaN and are left out
    of their neighbours' averages."""
    if window <= 1:
        return curve.copy()
    valid = np.isfinite(curve)
    kernel = np.ones(window)
    sums = np.convolve(np.where(valid, curve, 0.0), kernel, mode="same")
    counts = np.convolve(valid.astype(float), kernel, mode="same")
    smoothed = np.full(len(curve), np.nan)
    smoothed[valid] = sums[valid] / counts[valid]
    return smoothed


def binned_curve(timesteps: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per bin of ``edges``; empty bins inside the run's range are interpolated, bins past its
    last episode are NaN."""
    centres = (edges[:-1] + edges[1:]) / 2
    index = np.clip(np.digitize(timesteps, edges) - 1, 0, len(centres) - 1)
    sums = np.bincount(index, weights=values, minlength=len(centres))
    counts = np.bincount(index, minlength=len(centres))
    filled = counts > 0
    curve = np.full(len(centres), np.nan)
    curve[filled] = sums[filled] / counts[filled]
    known = np.flatnonzero(filled)
    inside = (centres >= centres[known[0]]) & (centres <= centres[known[-1]])
    curve[inside] = np.interp(centres[inside], centres[known], curve[known])
    return curve


def default_title(groups: Sequence[tuple[str, str | None, int]]) -> str:
    """``"mmrl/GoTo-5x5-v0 — ppo, 3 seeds"`` from ``(env id, algo, runs)`` groups; several algorithms on one env
    are listed after it, different envs separated by ``"; "``."""
    envs: dict[str, list[tuple[str | None, int]]] = {}
    for env_id, algo, count in groups:
        envs.setdefault(env_id, []).append((algo, count))
    parts = []
    for env_id, algos in envs.items():
        seeds = [f"{count} seed{'s' * (count != 1)}" for _, count in algos]
        if len(algos) == 1:
            parts.append(f"{env_id} — {algos[0][0]}, {seeds[0]}" if algos[0][0] else f"{env_id} ({seeds[0]})")
        else:
            parts.append(f"{env_id} — " + ", ".join(f"{algo} ({n})" for (algo, _), n in zip(algos, seeds, strict=True)))
    return "; ".join(parts)


def learning_curve_figure(
    run_dirs: Sequence[str | os.PathLike[str]],
    bins: int = DEFAULT_BINS,
    title: str | None = None,
    smooth: int = DEFAULT_SMOOTH,
) -> Figure:
    """The Matplotlib figure of :func:`plot_runs` (not saved; Agg canvas, no display needed).

    Each panel (episode return; success rate when logged) shows per group of runs (same env id and algorithm):

    - ``"training episodes (sampled)"``: the training episodes of ``monitor.csv`` (actions sampled from the
      policy), averaged in ``bins`` timestep bins, smoothed over ``smooth`` bins, mean over runs with a ± std band
      (success bands clipped to [0, 1]);
    - ``"held-out (greedy)"``: markers at the periodic evaluations of ``metrics.json`` (held-out seeds, greedy
      actions), averaged over runs;
    - ``"random policy"``: a dashed line at ``metrics.json``'s ``random_baseline`` (mean over runs).

    With several groups each label is prefixed by the group (``"mmrl/GoTo-5x5-v0 ppo: ..."``). Runs without
    ``metrics.json`` or without those keys (older runs) just lack the markers and the line.

    Example::

        figure = learning_curve_figure(["runs/a/ppo/0-...", "runs/a/ppo/1-..."], smooth=1)  # raw bins
        figure.axes[1].get_legend_handles_labels()
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise ValueError("plot_runs needs at least one run directory")
    for name, value in (("bins", bins), ("smooth", smooth)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {short_repr(value)}")
    check_limit("bins", bins, "max_plot_bins")
    groups: dict[tuple[str, str | None], list[tuple[MonitorLog, dict[str, Any]]]] = {}
    for run in run_dirs:
        groups.setdefault(_group(run), []).append((read_monitor(run), read_metrics(run)))

    from matplotlib.figure import Figure

    with_success = any(log.successes is not None for runs in groups.values() for log, _ in runs)
    figure = Figure(figsize=(11 if with_success else 6, 4.2), layout="constrained")
    axes = figure.subplots(1, 2 if with_success else 1, squeeze=False)[0]
    panels = [("returns", "mean_return", axes[0])]
    if with_success:
        panels.append(("successes", "success_rate", axes[1]))
    for colour_index, ((env_id, algo), runs) in enumerate(groups.items()):
        colour = f"C{colour_index % 10}"
        prefix = f"{env_id} {algo or ''}".strip() + ": " if len(groups) > 1 else ""
        edges = np.linspace(0, max(int(log.timesteps[-1]) for log, _ in runs), bins + 1)
        centres = (edges[:-1] + edges[1:]) / 2
        metrics = [run_metrics for _, run_metrics in runs]
        for attribute, key, axis in panels:
            curves = [
                smooth_curve(binned_curve(log.timesteps, getattr(log, attribute), edges), min(smooth, bins))
                for log, _ in runs
                if getattr(log, attribute) is not None
            ]
            if curves:
                stacked = np.vstack(curves)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    mean = np.nanmean(stacked, axis=0)
                    std = np.nanstd(stacked, axis=0)
                count = f" ({len(curves)} runs)" if len(curves) > 1 else ""
                axis.plot(centres, mean, color=colour, label=f"{prefix}training episodes (sampled){count}")
                if len(curves) > 1:
                    low, high = mean - std, mean + std
                    if attribute == "successes":
                        low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)
                    axis.fill_between(centres, low, high, color=colour, alpha=0.2, linewidth=0)
            steps, values = evaluation_points(metrics, key)
            if len(steps):
                axis.plot(
                    steps,
                    values,
                    color=colour,
                    linestyle=":",
                    marker="o",
                    markersize=5,
                    markeredgecolor="black",
                    markeredgewidth=0.5,
                    label=f"{prefix}held-out (greedy)",
                )
            baseline = baseline_value(metrics, key)
            if baseline is not None:
                axis.axhline(
                    baseline, color=colour, linestyle="--", linewidth=1.2, alpha=0.8, label=f"{prefix}random policy"
                )
    axes[0].set_ylabel("episode return")
    if with_success:
        axes[1].set_ylabel("success rate")
        axes[1].set_ylim(-0.02, 1.02)
    for axis in axes:
        axis.set_xlabel("timesteps")
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize="small")
    figure.suptitle(title or default_title([(env, algo, len(runs)) for (env, algo), runs in groups.items()]))
    return figure


def plot_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] = "curves.png",
    bins: int = DEFAULT_BINS,
    title: str | None = None,
    smooth: int = DEFAULT_SMOOTH,
) -> Path:
    """Plot learning curves of ``run_dirs`` to a PNG: return (and success rate when logged) against timesteps,
    with held-out evaluation points and the random-policy line (see :func:`learning_curve_figure`).

    Args:
        run_dirs: Run directories (or monitor CSV files). Runs with the same env id and algorithm are grouped
            into one mean ± std band.
        output: PNG path, written atomically.
        bins: Number of timestep bins.
        title: Figure title; default ``"<env id> — <algo>, <n> seeds"``.
        smooth: Moving-average window in bins for the training curves (1: no smoothing).

    Returns:
        The path written.

    Raises:
        ValueError: If no run is given, ``bins`` or ``smooth`` < 1, ``output`` is not a .png, or a run has no
            usable monitor.csv.
        FileNotFoundError: If a path does not exist.
    """
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise ValueError(f"output must be a .png file, got {str(output)!r}")
    figure = learning_curve_figure(run_dirs, bins, title, smooth)
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return output


__all__ = [
    "MonitorLog",
    "baseline_value",
    "binned_curve",
    "default_title",
    "evaluation_points",
    "learning_curve_figure",
    "plot_runs",
    "read_metrics",
    "read_monitor",
    "smooth_curve",
]
