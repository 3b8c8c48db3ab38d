"""Train every built-in env with its default PPO preset and publish one table (like RL Zoo's benchmark table).

python benchmarks/zoo.py --envs all --seeds 3                # everything (hours on 2 cores)
python benchmarks/zoo.py --envs GoTo-5x5,PickUp-5x5 --seeds 1 --out /tmp/zoo

For each env and seed, ``mmrl.train("ppo", env_id, seed=seed)`` runs with the preset's own budget (no other
setting), then ``mmrl.evaluate`` runs 200 held-out episodes (seeds 100000..100199, never used in training):
greedy, sampled, greedy on the held-out instruction combinations (``split="test"``, where the env has
``mission_split``) and greedy with the instruction blanked (``ablate="mission"``), next to the uniformly random
policy on the same seeds. Frames and wall time to 0.90 / 0.95 greedy success come from the run's periodic
evaluations (the preset's ``eval_freq`` and ``eval_episodes``, on other held-out seeds); wall time is the
training log's clock at that frame (``monitor.csv``), so it includes the periodic evaluations before it.

The command is resumable: a finished run (``metrics.json`` present) is not trained again, an interrupted one
resumes from its last checkpoint, and each evaluation is cached as JSON next to the runs. Output under ``--out``:
``runs/<env>/seed<k>/`` (run directories), ``evals/<env>/seed<k>.json``, ``zoo.md`` (the table) and
``curves_<family>.png`` (greedy success of the periodic evaluations against frames, median and min-max band
over seeds, one line per env of the family).
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import mmrl  # noqa: E402
from mmrl.atomic import atomic_path  # noqa: E402
from mmrl.envs import ENTRIES  # noqa: E402

EPISODES = 200
EVAL_SEED = 100_000
THRESHOLDS = (0.90, 0.95)


def env_names() -> dict[str, str]:
    """Short names (``GoTo-5x5``) of every built-in env, mapped to their ids."""
    return {entry.env_id.removeprefix("mmrl/").removesuffix("-v0"): entry.env_id for entry in ENTRIES}


def has_split(env_id: str) -> bool:
    """Whether the env takes ``mission_split`` (has held-out instruction combinations)."""
    entry = next(e for e in ENTRIES if e.env_id == env_id)
    module, name = entry.entry_point.split(":")
    cls = getattr(__import__(module, fromlist=[name]), name)
    return "mission_split" in inspect.signature(cls).parameters


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1), encoding="utf-8")


def train_run(env_id: str, seed: int, run_dir: Path, timesteps: int | None) -> None:
    """Train (or resume, or skip when finished) one run directory."""
    if (run_dir / "metrics.json").exists():
        return
    if (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").glob("state_*_steps.json")):
        mmrl.train(resume=run_dir, progress_bar=False)
        return
    mmrl.train("ppo", env_id, seed=seed, timesteps=timesteps, run_dir=run_dir, force=True, progress_bar=False)


def _frame_clock(run_dir: Path) -> tuple[list[int], list[float]]:
    """Cumulative frames and wall-clock seconds at the end of each logged training episode."""
    frames, clock, total = [], [], 0
    with open(run_dir / "monitor.csv", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row and not row[0].startswith("#")]
    for row in rows[1:]:
        total += int(row[1])
        frames.append(total)
        clock.append(float(row[2]))
    return frames, clock


def time_to(evaluations: list[dict[str, Any]], run_dir: Path, threshold: float) -> tuple[int | None, float | None]:
    """Frames and wall seconds at the first periodic evaluation with greedy success >= ``threshold``."""
    for evaluation in evaluations:
        if (evaluation.get("success_rate") or 0.0) >= threshold:
            steps = int(evaluation["timesteps"])
            frames, clock = _frame_clock(run_dir)
            seconds = next((t for f, t in zip(frames, clock, strict=True) if f >= steps), clock[-1] if clock else None)
            return steps, seconds
    return None, None


def evaluate_run(env_id: str, run_dir: Path, out: Path) -> dict[str, Any]:
    """Held-out evaluations of one finished run (cached in ``out``)."""
    if out.exists():
        return json.loads(out.read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
    env_kwargs = dict(config.get("env_kwargs") or {})

    def success(**kwargs: Any) -> float | None:
        report = mmrl.evaluate(run_dir, episodes=EPISODES, seed=EVAL_SEED, **kwargs)
        return report.success_rate

    from mmrl.cli.demo import random_baseline

    result: dict[str, Any] = {
        "timesteps": int(metrics.get("timesteps", 0)),
        "wall_time": float(metrics.get("wall_time_s", 0.0) or 0.0),
        "greedy": success(deterministic=True),
        "sampled": success(deterministic=False),
        "test_split": success(deterministic=True, split="test") if has_split(env_id) else None,
        "blank_text": success(deterministic=True, ablate="mission"),
        "random": random_baseline(env_id, EPISODES, EVAL_SEED, env_kwargs)["success_rate"],
        "evaluations": [
            {"timesteps": int(e["timesteps"]), "success_rate": e.get("success_rate")}
            for e in metrics.get("evaluations", [])
        ],
    }
    for threshold in THRESHOLDS:
        frames, seconds = time_to(result["evaluations"], run_dir, threshold)
        result[f"frames_to_{threshold:.2f}"] = frames
        result[f"seconds_to_{threshold:.2f}"] = seconds
    write_json(out, result)
    return result


def _median(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _cell(values: list[Any], kind: str) -> str:
    """Median over seeds, with the min-max range when seeds differ; a count of seeds that never got there."""
    present = [v for v in values if v is not None]
    if not present:
        return "not reached" if kind in ("frames", "seconds") else ""
    fmt = {"rate": "{:.2f}", "frames": "{:,.0f}", "seconds": "{:,.0f} s"}[kind]
    text = fmt.format(statistics.median(present))
    if len(present) > 1 and min(present) != max(present):
        text += f" ({fmt.format(min(present))}-{fmt.format(max(present))})".replace(" s-", "-")
    missing = len(values) - len(present)
    if missing and kind in ("frames", "seconds"):
        text += f", {missing}/{len(values)} not reached"
    return text


def table(results: dict[str, list[dict[str, Any]]]) -> str:
    header = (
        "| env | budget: frames (wall) | seeds | frames to 0.90 | wall to 0.90 | frames to 0.95 | wall to 0.95 "
        "| greedy | sampled | held-out combos | blank text | random |"
    )
    lines = [header, "|" + "---|" * 12]
    for name, runs in results.items():
        column = {key: [run.get(key) for run in runs] for key in runs[0]}
        lines.append(
            f"| `{name}` | {max(int(t or 0) for t in column['timesteps']):,} "
            f"({_median(column['wall_time']) or 0:,.0f} s) "
            f"| {len(runs)} "
            f"| {_cell(column['frames_to_0.90'], 'frames')} | {_cell(column['seconds_to_0.90'], 'seconds')} "
            f"| {_cell(column['frames_to_0.95'], 'frames')} | {_cell(column['seconds_to_0.95'], 'seconds')} "
            f"| {_cell(column['greedy'], 'rate')} | {_cell(column['sampled'], 'rate')} "
            f"| {_cell(column['test_split'], 'rate')} | {_cell(column['blank_text'], 'rate')} "
            f"| {_cell(column['random'], 'rate')} |"
        )
    return "\n".join(lines) + "\n"


def plot_families(results: dict[str, list[dict[str, Any]]], out: Path) -> list[Path]:
    """One PNG per family: greedy success of the periodic evaluations against frames (median, min-max band)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    families: dict[str, list[str]] = {}
    for name in results:
        families.setdefault(name.split("-")[0], []).append(name)
    written = []
    for family, names in families.items():
        figure, axes = plt.subplots(figsize=(6, 4))
        for name in names:
            curves = [run["evaluations"] for run in results[name] if run["evaluations"]]
            if not curves:
                continue
            steps = np.array([e["timesteps"] for e in curves[0]])
            values = np.array(
                [
                    [(e["success_rate"] or 0.0) for e in curve[: len(steps)]]
                    for curve in curves
                    if len(curve) >= len(steps)
                ]
            )
            axes.plot(steps, np.median(values, axis=0), label=f"{name} ({len(values)} seeds)")
            axes.fill_between(steps, values.min(axis=0), values.max(axis=0), alpha=0.2)
            random = _median([run["random"] for run in results[name]])
            if random is not None:
                axes.axhline(random, linestyle=":", linewidth=1, color=axes.lines[-1].get_color())
        axes.set(
            xlabel="frames", ylabel="greedy success (held-out seeds)", ylim=(0, 1.02), title=f"{family}: PPO preset"
        )
        axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
        path = out / f"curves_{family}.png"
        with atomic_path(path) as tmp:
            figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="all", help="'all' or comma-separated names, e.g. GoTo-5x5,PickUp-5x5")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per env (default 3)")
    parser.add_argument("--out", default="runs/zoo", help="output folder (default runs/zoo)")
    parser.add_argument("--timesteps", type=int, default=None, help="override every preset's budget (smoke tests only)")
    args = parser.parse_args(argv)
    names = env_names()
    wanted = list(names) if args.envs == "all" else [n.strip() for n in args.envs.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        parser.error(f"unknown env name(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = Path(args.out)
    jobs = [(name, seed) for name in wanted for seed in range(args.seeds)]
    results: dict[str, list[dict[str, Any]]] = {}
    started = time.time()
    for index, (name, seed) in enumerate(jobs, 1):
        env_id = names[name]
        run_dir = out / "runs" / name / f"seed{seed}"
        cached = out / "evals" / name / f"seed{seed}.json"
        state = "cached" if cached.exists() else "finished" if (run_dir / "metrics.json").exists() else "training"
        print(f"[{index}/{len(jobs)}] {env_id} seed {seed}: {state} ({time.time() - started:.0f} s so far)", flush=True)
        job_start = time.time()
        if not cached.exists():
            train_run(env_id, seed, run_dir, args.timesteps)
        result = evaluate_run(env_id, run_dir, cached)
        results.setdefault(name, []).append(result)
        print(
            f"    greedy {result['greedy']:.2f}, sampled {result['sampled']:.2f}, blank text "
            f"{result['blank_text']:.2f}, random {result['random']:.2f} ({time.time() - job_start:.0f} s)",
            flush=True,
        )
    markdown = table(results)
    command = "python benchmarks/zoo.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = f"`{command}`\n\n{markdown}"
    with atomic_path(out / "zoo.md") as tmp:
        Path(tmp).write_text(report, encoding="utf-8")
    plots = plot_families(results, out)
    print(report)
    print("plots: " + ", ".join(str(p) for p in plots))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
