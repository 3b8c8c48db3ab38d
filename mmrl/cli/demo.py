"""``mmrl demo``: train a small PPO agent on a built-in env, evaluate it against random, write a video and a plot."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from mmrl.cli import positive_int

__all__ = ["DEMO_ENV", "DEMO_TIMESTEPS", "random_baseline", "register", "run"]

#: The demo's env and budget: two instructions in one fixed level, solved (and only by reading the instruction)
#: within the preset's 30k steps, well under a minute on one core.
DEMO_ENV = "mmrl/Level-Corridor-v0"
DEMO_TIMESTEPS = 30_000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand."""
    parser = subparsers.add_parser("demo", help="train, evaluate and film a small agent in a few CPU minutes")
    parser.add_argument("--out", default="mmrl-demo", help="output folder (default mmrl-demo/)")
    parser.add_argument("--env", dest="env_id", default=DEMO_ENV, help=f"env id (default {DEMO_ENV})")
    parser.add_argument("--timesteps", type=positive_int, default=DEMO_TIMESTEPS, help="training steps")
    parser.add_argument("--episodes", type=positive_int, default=100, help="evaluation episodes")
    parser.add_argument("--force", action="store_true", help="overwrite an existing demo run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def random_baseline(env_id: str, episodes: int, seed: int, env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The uniform random policy on ``episodes`` episodes seeded ``seed, seed + 1, ...`` of ``env_id``
    (:func:`mmrl.evaluation.baseline.random_baseline`, the figure ``mmrl train`` and ``mmrl evaluate`` print)."""
    from mmrl.envs.vec_env import make_vec_env
    from mmrl.evaluation.baseline import random_baseline as play_random

    venv = make_vec_env(env_id, n_envs=min(8, episodes), seed=seed, env_kwargs=env_kwargs)
    try:
        return play_random(venv, episodes, seed)
    finally:
        venv.close()


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, record and plot; print where the files are."""
    from mmrl.training import train
    from mmrl.training.trainer import EVAL_SEED_OFFSET

    out = Path(args.out)
    started = time.time()
    print(
        f"training PPO on {args.env_id} for {args.timesteps:,} steps (preset agents/ppo.yaml, one torch thread)",
        flush=True,
    )
    result = train(
        "ppo",
        args.env_id,
        timesteps=args.timesteps,
        run_dir=out / "run",
        force=args.force,
        progress_bar=not args.no_progress,
    )
    if result.interrupted:
        print(f"interrupted; model saved in {result.run_dir} (continue with: mmrl train --resume {result.run_dir})")
        return 130
    from mmrl.evaluation import evaluate, record_video
    from mmrl.plotting import plot_runs

    seed = EVAL_SEED_OFFSET + 7
    print(
        f"evaluating greedily on {args.episodes} held-out episodes (seeds {seed:,}-{seed + args.episodes - 1:,}), "
        "with the instruction blanked, and a random policy on the same seeds ...",
        flush=True,
    )
    # one call plays the blanked episodes, the same episodes intact (report.reference) and the random policy
    blanked = evaluate(result.run_dir, episodes=args.episodes, seed=seed, deterministic=True, ablate="mission")
    assert blanked.reference is not None and blanked.baseline is not None
    trained, baseline = blanked.reference, blanked.baseline
    print("filming 3 episodes and plotting the learning curve ...", flush=True)
    video = record_video(result.run_dir, out / "agent.mp4", episodes=3, seed=seed)
    plot = plot_runs([result.run_dir], out / "curve.png")

    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0%}"

    print(f"demo finished in {time.time() - started:.0f} s")
    print(
        f"trained PPO on {args.env_id}: success {rate(trained['success_rate'])}, mean return "
        f"{trained['mean_return']:.3f} (random policy: success {rate(baseline['success_rate'])}, "
        f"mean return {baseline['mean_return']:.3f}) over {args.episodes} held-out episodes, greedy actions"
    )
    difference = blanked.reference.get("difference")
    change = ""
    if difference is not None and blanked.reference.get("measure") == "success":
        value, low, high = (100 * x for x in difference)
        change = f" ({value:+.0f} points, 95 % CI {low:+.0f} to {high:+.0f}, paired by seed)"
    print(
        f"with the instruction blanked (--ablate mission): success {rate(blanked.success_rate)}{change}; a drop "
        "means the agent reads the instruction"
    )
    print(f"run directory: {result.run_dir}")
    print(f"video: {video}")
    print(f"learning curve: {plot}")
    return 0
