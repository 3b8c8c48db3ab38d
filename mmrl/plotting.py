"""Learning curves from run directories: return and success rate against timesteps, read from ``monitor.csv``.

Runs of the same env and algorithm (several seeds) are drawn as one mean ± std band: each run's episodes are
averaged in timestep bins (empty bins interpolated), then the runs are averaged bin by bin. Drawn with Matplotlib's
Agg canvas (no display, no global backend change).
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmrl.atomic import atomic_path
from mmrl.limits import check_limit, short_repr

MONITOR_FILE = "monitor.csv"
DEFAULT_BINS = 50


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


def _label(run: str | os.PathLike[str]) -> str:
    """``"<env id> <algo>"`` from the run's config.yaml, else the folder name."""
    path = Path(run)
    folder = path if path.is_dir() else path.parent
    try:
        from mmrl.training.run_dir import RunDir

        run_dir = RunDir(folder)
        return f"{run_dir.env_id} {run_dir.algo}"
    except (ImportError, FileNotFoundError, ValueError, KeyError):
        return folder.name or str(folder)


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


def plot_runs(
    run_dirs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] = "curves.png",
    bins: int = DEFAULT_BINS,
    title: str | None = None,
) -> Path:
    """Plot learning curves of ``run_dirs`` to a PNG: return (and success rate when logged) against timesteps.

    Args:
        run_dirs: Run directories (or monitor CSV files). Runs with the same env id and algorithm are grouped
            into one mean ± std band.
        output: PNG path, written atomically.
        bins: Number of timestep bins.
        title: Figure title.

    Returns:
        The path written.

    Raises:
        ValueError: If no run is given, ``bins`` < 1, ``output`` is not a .png, or a run has no usable monitor.csv.
        FileNotFoundError: If a path does not exist.
    """
    if isinstance(run_dirs, (str, os.PathLike)):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise ValueError("plot_runs needs at least one run directory")
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {short_repr(bins)}")
    check_limit("bins", bins, "max_plot_bins")
    output = Path(output)
    if output.suffix.lower() != ".png":
        raise ValueError(f"output must be a .png file, got {str(output)!r}")
    groups: dict[str, list[MonitorLog]] = {}
    for run in run_dirs:
        groups.setdefault(_label(run), []).append(read_monitor(run))

    from matplotlib.figure import Figure

    with_success = any(log.successes is not None for logs in groups.values() for log in logs)
    figure = Figure(figsize=(11 if with_success else 6, 4), layout="constrained")
    axes = figure.subplots(1, 2 if with_success else 1, squeeze=False)[0]
    for colour_index, (label, logs) in enumerate(groups.items()):
        colour = f"C{colour_index % 10}"
        edges = np.linspace(0, max(int(log.timesteps[-1]) for log in logs), bins + 1)
        centres = (edges[:-1] + edges[1:]) / 2
        panels = [("returns", axes[0])] + ([("successes", axes[1])] if with_success else [])
        for attribute, axis in panels:
            curves = [
                binned_curve(log.timesteps, getattr(log, attribute), edges)
                for log in logs
                if getattr(log, attribute) is not None
            ]
            if not curves:
                continue
            stacked = np.vstack(curves)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(stacked, axis=0)
                std = np.nanstd(stacked, axis=0)
            axis.plot(centres, mean, color=colour, label=f"{label} ({len(curves)} run{'s' * (len(curves) > 1)})")
            axis.fill_between(centres, mean - std, mean + std, color=colour, alpha=0.25, linewidth=0)
    axes[0].set_ylabel("episode return")
    if with_success:
        axes[1].set_ylabel("success rate")
        axes[1].set_ylim(-0.02, 1.02)
    for axis in axes:
        axis.set_xlabel("timesteps")
        axis.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize="small")
    if title:
        figure.suptitle(title)
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return output


__all__ = ["MonitorLog", "binned_curve", "plot_runs", "read_monitor"]
