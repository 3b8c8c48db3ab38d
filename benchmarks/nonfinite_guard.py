"""Cost of the non-finite guard (``check_finite``, :class:`mmrl.safety.NonFiniteGuard`) in ``mmrl train``.

Trains PPO with the preset on one env with the guard on and off, alternating in the same process (paired repeats),
one torch thread, and reports the training frames per CPU second of ``learn`` (process time, so that other
processes on a shared machine do not add noise) and the ratio guarded / unguarded. The guard is on by default
only while this ratio is >= 0.98.

    python benchmarks/nonfinite_guard.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stable_baselines3.common.callbacks import BaseCallback

from benchmarks.common import Table, add_output_args, fmt, report


class _LearnClock(BaseCallback):
    """Process CPU time and env steps between the start and the end of ``learn`` (other processes' load, which
    dominates wall-clock noise on a shared machine, does not count)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = self.seconds = 0.0
        self.start_steps = self.steps = 0

    def _on_training_start(self) -> None:
        self.started, self.start_steps = time.process_time(), int(self.model.num_timesteps)

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.seconds = time.process_time() - self.started
        self.steps = int(self.model.num_timesteps) - self.start_steps


def train_fps(env_id: str, timesteps: int, check_finite: bool, folder: Path) -> float:
    """Training frames per CPU second of ``learn`` (the clock runs after mmrl's own callbacks, guard included)."""
    import mmrl

    clock = _LearnClock()
    mmrl.train(
        "ppo",
        env_id,
        timesteps=timesteps,
        overrides={"check_finite": check_finite, "torch_threads": 1},
        run_dir=folder / f"run-{check_finite}",
        force=True,
        progress_bar=False,
        eval_freq=0,
        checkpoint_freq=0,
        eval_episodes=2,
        callbacks=[clock],
    )
    return clock.steps / clock.seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mmrl/GoTo-5x5-v0")
    parser.add_argument("--timesteps", type=int, default=8192)
    add_output_args(parser, default_repeats=8)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    timesteps = 4096 if args.quick else args.timesteps
    rates: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as folder:
        train_fps(args.env, 2048, True, Path(folder))  # warm-up (imports, first allocations)
        for repeat in range(args.repeats):
            order = (False, True) if repeat % 2 == 0 else (True, False)
            for check in order:
                rates[check].append(train_fps(args.env, timesteps, check, Path(folder)))
    ratios = [on / off for on, off in zip(rates[True], rates[False], strict=True)]
    table = Table(
        f"PPO preset on {args.env}, {timesteps} steps, 1 torch thread, {args.repeats} paired repeats",
        ["check_finite", "frames/CPU-s (median)", "min-max", "x unguarded (median of pairs)"],
    )
    for check in (False, True):
        values = rates[check]
        table.add(
            **{
                "check_finite": str(check).lower(),
                "frames/CPU-s (median)": statistics.median(values),
                "min-max": f"{fmt(min(values))}-{fmt(max(values))}",
                "x unguarded (median of pairs)": statistics.median(ratios) if check else 1.0,
            }
        )
    table.notes.append(
        f"overhead {100 * (1 - statistics.median(ratios)):.1f} % (median of paired ratios "
        f"{', '.join(f'{r:.3f}' for r in ratios)}); the default stays on while it is under 2 %"
    )
    report(args, [table], "Non-finite guard overhead")
    return 0


if __name__ == "__main__":
    sys.exit(main())
