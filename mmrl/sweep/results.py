"""Sweep results: per-configuration aggregates over seeds, read from the sweep folder alone (no Ray needed).

:func:`collect` reads every trial's run directory and trial record; :func:`write_report` writes ``results.csv``,
``results.json``, ``results.md`` and the comparison plot ``results.png``. It works on a finished or a partial
sweep (``mmrl sweep --report DIR``): trials not finished yet are counted, never guessed.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmrl.atomic import write_json, write_text
from mmrl.sweep.spec import SweepSpec, parse_spec
from mmrl.sweep.trial import RUNS_DIR, config_dir_name, config_label, trial_metrics

__all__ = ["ConfigResult", "SweepReport", "collect", "load_sweep_spec", "write_report"]

SPEC_FILE = "sweep.json"
CSV_FILE, JSON_FILE, MD_FILE, PLOT_FILE = "results.csv", "results.json", "results.md", "results.png"


@dataclass
class TrialResult:
    """One seed of one configuration."""

    seed: int
    run_dir: Path
    status: str
    """``done``, ``running`` (or interrupted), ``failed``, ``pending`` (never started)."""
    attempts: int = 0
    success: float | None = None
    mean_return: float | None = None
    frames_to_threshold: int | None = None
    wall_time_s: float | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class ConfigResult:
    """All seeds of one configuration."""

    env_id: str
    params: dict[str, Any]
    label: str
    folder: Path
    trials: list[TrialResult]

    def done(self) -> list[TrialResult]:
        return [t for t in self.trials if t.status == "done"]

    def stats(self, name: str) -> dict[str, Any]:
        """mean, std (population), min, max and n over the finished seeds that have a value for ``name``."""
        values = [float(getattr(t, name)) for t in self.done() if getattr(t, name) is not None]
        if not values:
            return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        return {"mean": mean, "std": std, "min": min(values), "max": max(values), "n": len(values)}


@dataclass
class SweepReport:
    """Every configuration of a sweep, best first."""

    sweep_dir: Path
    spec: SweepSpec
    configs: list[ConfigResult]

    @property
    def n_done(self) -> int:
        return sum(len(c.done()) for c in self.configs)

    @property
    def n_failed(self) -> int:
        return sum(1 for c in self.configs for t in c.trials if t.status == "failed")

    @property
    def n_stopped(self) -> int:
        """Trials the scheduler (ASHA) stopped early."""
        return sum(1 for c in self.configs for t in c.trials if t.status == "stopped")


def load_sweep_spec(sweep_dir: str | os.PathLike[str]) -> SweepSpec:
    """The spec stored in a sweep folder.

    Raises:
        FileNotFoundError: If ``sweep_dir`` holds no ``sweep.json``.
    """
    path = Path(sweep_dir) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{sweep_dir} is not a sweep folder (no {SPEC_FILE}); pass a folder written by 'mmrl sweep'"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON: {error}") from None
    return parse_spec(data, source=str(path))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _trial(folder: Path, seed: int, threshold: float) -> TrialResult:
    run_dir = folder / f"seed-{seed}"
    record = _read_json(folder / f"seed-{seed}.trial.json")
    metrics = _read_json(run_dir / "metrics.json")
    status = str(record.get("status", "pending"))
    trial = TrialResult(seed, run_dir, status, int(record.get("attempts", 0)), errors=list(record.get("errors", [])))
    if status == "done" and metrics:
        numbers = trial_metrics(metrics, threshold)
        trial.success = numbers["success"]
        trial.mean_return = numbers["mean_return"]
        trial.frames_to_threshold = numbers["frames_to_threshold"]
        trial.wall_time_s = record.get("wall_time_s")
    elif status == "done":
        trial.status = "failed"
        trial.errors.append(f"{run_dir}/metrics.json is missing")
    elif status == "running":
        trial.status = "unfinished"
    return trial


def collect(sweep_dir: str | os.PathLike[str]) -> SweepReport:
    """Read a (finished or partial) sweep folder.

    Raises:
        FileNotFoundError: If it is not a sweep folder.
    """
    sweep_dir = Path(sweep_dir)
    spec = load_sweep_spec(sweep_dir)
    configs: list[ConfigResult] = []
    runs = sweep_dir / RUNS_DIR
    folders = sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []
    for folder in folders:
        info = _read_json(folder / "config.json")
        env_id, params = info.get("env_id"), info.get("params")
        if not isinstance(env_id, str) or not isinstance(params, dict):
            continue
        if folder.name != config_dir_name(env_id, params):
            continue  # not written by a trial of this sweep
        trials = [_trial(folder, seed, spec.threshold) for seed in spec.seeds]
        label = config_label(env_id, params, with_env=len(spec.envs) > 1)
        configs.append(ConfigResult(env_id, params, label, folder, trials))

    def rank(config: ConfigResult) -> tuple[int, float]:
        stats = config.stats(spec.metric)
        if stats["mean"] is None:
            return (1, 0.0)
        return (0, -stats["mean"] if spec.mode == "max" else stats["mean"])

    configs.sort(key=rank)
    return SweepReport(sweep_dir, spec, configs)


def _fmt(stats: dict[str, Any], digits: int = 2, integer: bool = False) -> str:
    if stats["mean"] is None:
        return "-"
    if integer:
        return f"{stats['mean']:,.0f} ± {stats['std']:,.0f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


def rows(report: SweepReport) -> list[dict[str, Any]]:
    """One flat row per configuration (the CSV / JSON content)."""
    spec = report.spec
    out = []
    for config in report.configs:
        row: dict[str, Any] = {"config": config.label, "env_id": config.env_id}
        for dimension in spec.search:
            row[dimension.key] = config.params.get(dimension.key)
        row["seeds_done"] = len(config.done())
        row["seeds"] = len(spec.seeds)
        for name in ("success", "mean_return", "frames_to_threshold", "wall_time_s"):
            stats = config.stats(name)
            for key in ("mean", "std", "min", "max"):
                row[f"{name}_{key}"] = stats[key]
        row["frames_reached"] = config.stats("frames_to_threshold")["n"]
        row["attempts"] = sum(t.attempts for t in config.trials)
        row["failed"] = sum(1 for t in config.trials if t.status == "failed")
        row["stopped_early"] = sum(1 for t in config.trials if t.status == "stopped")
        row["folder"] = str(config.folder)
        out.append(row)
    return out


def markdown(report: SweepReport) -> str:
    """The results table in Markdown (best configuration first)."""
    spec = report.spec
    thr = f"{spec.threshold:.2f}"
    lines = [
        f"Sweep `{spec.name}`: {spec.algo} on {', '.join(spec.envs)}, {spec.timesteps:,} steps per trial, seeds "
        f"{', '.join(map(str, spec.seeds))}; ranked by {spec.metric} ({spec.mode}). Success: held-out greedy "
        f"success of the final evaluation. Frames to {thr}: first periodic held-out evaluation at or above it "
        "(mean over the seeds that reached it). Mean ± std (min-max) over finished seeds.",
        "",
        f"| configuration | seeds | success | min-max | return | frames to {thr} | wall time (s) | attempts |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for config in report.configs:
        success = config.stats("success")
        frames = config.stats("frames_to_threshold")
        span = "-" if success["mean"] is None else f"{success['min']:.2f}-{success['max']:.2f}"
        reached = f"{_fmt(frames, integer=True)} ({frames['n']}/{len(config.done())})" if config.done() else "-"
        failed = sum(1 for t in config.trials if t.status == "failed")
        stopped = sum(1 for t in config.trials if t.status == "stopped")
        seeds = f"{len(config.done())}/{len(config.trials)}" + (f", {failed} failed" if failed else "")
        seeds += f", {stopped} stopped early" if stopped else ""
        lines.append(
            f"| {config.label} | {seeds} | {_fmt(success)} | {span} | {_fmt(config.stats('mean_return'))} | "
            f"{reached} | {_fmt(config.stats('wall_time_s'), 0)} | {sum(t.attempts for t in config.trials)} |"
        )
    missing = spec.n_trials - report.n_done
    if missing:
        lines += [
            "",
            f"{report.n_done} of {spec.n_trials} trials finished ({report.n_failed} failed, {report.n_stopped} "
            "stopped early by the scheduler).",
        ]
    errors = [(c.label, t) for c in report.configs for t in c.trials if t.errors]
    if errors:
        lines += ["", "Errors:"]
        for label, trial in errors:
            lines.append(f"- {label} seed {trial.seed}: {trial.errors[-1].splitlines()[-1][:300]}")
    return "\n".join(lines) + "\n"


def write_report(sweep_dir: str | os.PathLike[str], plot: bool = True) -> SweepReport:
    """Write ``results.csv``, ``results.json``, ``results.md`` (and ``results.png``) into the sweep folder.

    Raises:
        FileNotFoundError: If ``sweep_dir`` is not a sweep folder.
    """
    report = collect(sweep_dir)
    table = rows(report)
    buffer = io.StringIO()
    if table:
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    sweep_path = Path(sweep_dir)
    write_text(sweep_path / CSV_FILE, buffer.getvalue())
    details = [
        {
            "config": c.label,
            "trials": [
                {
                    "seed": t.seed,
                    "status": t.status,
                    "attempts": t.attempts,
                    "run_dir": str(t.run_dir),
                    "success": t.success,
                    "mean_return": t.mean_return,
                    "frames_to_threshold": t.frames_to_threshold,
                    "wall_time_s": t.wall_time_s,
                    "errors": t.errors,
                }
                for t in c.trials
            ],
        }
        for c in report.configs
    ]
    write_json(
        sweep_path / JSON_FILE,
        {"spec": report.spec.to_dict(), "configs": table, "trials": details, "trials_done": report.n_done},
    )
    write_text(sweep_path / MD_FILE, markdown(report))
    if plot and report.n_done:
        from mmrl.sweep.plot import plot_sweep

        plot_sweep(report, sweep_path / PLOT_FILE)
    return report
