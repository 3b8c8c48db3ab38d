"""Environment steps/s: mmrl's batched VecEnv against MiniGrid/BabyAI, Gymnasium's SyncVectorEnv and EnvPool.

Random actions (drawn before timing), auto-reset included, one process. Rows:

* ``mmrl VecEnv``: ``mmrl.make_vec_env("mmrl/GoTo-v0", N)`` (one batched NumPy step for all N worlds);
* ``mmrl SyncVectorEnv``: Gymnasium's ``SyncVectorEnv`` of N single ``gymnasium.make("mmrl/GoTo-v0")`` envs;
* ``MiniGrid DummyVecEnv``: SB3 ``DummyVecEnv`` of ``BabyAI-GoToRedBall-v0`` (8x8 room, egocentric 7x7 view) with
  the same observation content as ours: the image (RGB 56x56 through ``RGBImgPartialObsWrapper(tile_size=8)``, or
  the symbolic 7x7x3 grid) and the mission tokenised by ``mmrl.wrappers.TokenizeText``;
* ``EnvPool``: ``envpool.make("BabyAI-GoToRedBall-v0")`` (C++, symbolic only) with ``num_threads=1`` (the thread
  count of our NumPy engine) and with all cores; skipped with a note when envpool cannot be imported.

Before timing, each env takes ``--warmup`` untimed batched steps so that episodes are desynchronised and the timed
window holds its share of auto-resets (level generation). The sequential baselines are measured up to
``--max-baseline-n`` (their per-step cost does not depend on N); ratios are against MiniGrid's best rate in the same
image mode. Run ``python benchmarks/env_throughput.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Table, add_output_args, check, measure_rate, optional_import, ratio, report

ENV_ID = "mmrl/GoTo-v0"
PEER_ID = "BabyAI-GoToRedBall-v0"
FULL_NS = (1, 16, 64, 256, 1024)
QUICK_NS = (1, 16, 256)


def _actions(n: int, n_steps: int, n_actions: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_actions, size=(n_steps, n))


def _steps_for(n: int, total_steps: int) -> int:
    """Batched calls per measurement: ``total_steps`` env steps, at least 16 calls."""
    return max(16, total_steps // n)


def make_runner(
    venv: Any, step: Callable[[np.ndarray], Any], n: int, total_steps: int, warmup_calls: int
) -> Callable[[], float]:
    """A run of ``total_steps`` random actions (over the env's own action set) with stdout silenced.

    MiniGrid prints a line for every rejected level sample; the printing stays in the timed work but goes to
    ``/dev/null``.
    """
    space = getattr(venv, "single_action_space", None) or venv.action_space
    actions = _actions(n, _steps_for(n, total_steps), int(space.n))
    # Warm-up (untimed): desynchronise the episodes so that every timed window holds its share of auto-resets
    # (right after reset() no episode ends for a while, which would leave level generation out of the timing).
    warmup = _actions(n, warmup_calls, int(space.n), seed=1)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        for a in warmup:
            step(a)

    def run() -> float:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            for a in actions:
                step(a)
        return float(actions.size)

    return run


def mmrl_vec_env(n: int, image_mode: str):
    import mmrl

    venv = mmrl.make_vec_env(ENV_ID, n, seed=0, env_kwargs={"image_mode": image_mode})
    venv.reset()
    return venv, lambda a: venv.step(a), venv.close


def mmrl_sync_vector_env(n: int, image_mode: str):
    import gymnasium as gym

    import mmrl  # noqa: F401  (registers the ids)

    venv = gym.vector.SyncVectorEnv([lambda: gym.make(ENV_ID, image_mode=image_mode) for _ in range(n)])
    venv.reset(seed=0)
    return venv, lambda a: venv.step(a), venv.close


def minigrid_env(image_mode: str):
    """BabyAI-GoToRedBall-v0 with an image key (RGB 56x56 or symbolic 7x7x3) and tokenised mission."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers BabyAI)
    from gymnasium.wrappers import FilterObservation
    from minigrid.wrappers import RGBImgPartialObsWrapper

    from mmrl.wrappers import TokenizeText
    from mmrl.wrappers.minigrid import MiniGridSymbolicImage

    env = gym.make(PEER_ID)
    if image_mode == "rgb":
        env = FilterObservation(RGBImgPartialObsWrapper(env, tile_size=8), ["image", "mission"])
    else:
        env = MiniGridSymbolicImage(FilterObservation(env, ["image", "mission"]))
    return TokenizeText(env, max_length=16)


def minigrid_dummy_vec_env(n: int, image_mode: str):
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: minigrid_env(image_mode) for _ in range(n)])
    venv.seed(0)
    venv.reset()
    return venv, lambda a: venv.step(a), venv.close


def envpool_env(n: int, threads: int):
    import envpool

    venv = envpool.make(PEER_ID, env_type="gymnasium", num_envs=n, num_threads=threads, seed=0)
    venv.reset()
    return venv, lambda a: venv.step(a), venv.close


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ns", type=int, nargs="+", help=f"batch sizes (default {FULL_NS}, quick {QUICK_NS})")
    parser.add_argument("--modes", nargs="+", default=["rgb", "symbolic"], choices=["rgb", "symbolic"])
    parser.add_argument("--steps", type=int, help="env steps per measurement (default 20000, quick 2048)")
    parser.add_argument("--warmup", type=int, help="untimed batched calls first (default 256 = time limit, quick 64)")
    parser.add_argument(
        "--max-baseline-n",
        type=int,
        default=64,
        help="largest N for the sequential baselines (MiniGrid, SyncVectorEnv): their per-step cost does not "
        "depend on N; ratios use the best baseline rate measured (default 64)",
    )
    parser.add_argument("--no-sync", action="store_true", help="skip the Gymnasium SyncVectorEnv rows")
    parser.add_argument("--no-minigrid", action="store_true", help="skip the MiniGrid rows")
    add_output_args(parser)
    args = parser.parse_args(argv)
    ns = args.ns or (QUICK_NS if args.quick else FULL_NS)
    total = args.steps or (2048 if args.quick else 20_000)
    warmup_calls = args.warmup or (64 if args.quick else 256)
    baseline_ns = [n for n in ns if n <= args.max_baseline_n]
    warnings.filterwarnings("ignore")  # TokenizeText/gymnasium deprecation chatter

    envpool = optional_import("envpool")
    have_minigrid = not args.no_minigrid and optional_import("minigrid") is not None
    cores = os.cpu_count() or 1

    table = Table(
        f"Env steps/s, {ENV_ID} vs {PEER_ID} (random actions, auto-reset, {total:,} steps per measurement)",
        ["image", "N", "implementation", "steps/s (median)", "min-max", "x MiniGrid (best N)"],
    )
    reference: dict[tuple[str, int], float] = {}
    best: dict[str, float] = {}

    def row(image: str, n: int, name: str, factory: Callable[[], tuple[Any, Callable, Callable]]) -> float:
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            venv, step, close = factory()
        try:
            timing = measure_rate(make_runner(venv, step, n, total, warmup_calls), args.repeats)
        finally:
            close()
        if name.startswith("MiniGrid"):
            reference[(image, n)] = timing.median
        # the sequential baseline's best rate over the Ns measured (its per-step cost does not depend on N)
        base = max((v for (m, _), v in reference.items() if m == image), default=None)
        table.add(
            image=image,
            N=n,
            implementation=name,
            **{"steps/s (median)": timing.median, "min-max": timing.spread()},
            **{"x MiniGrid (best N)": ratio(timing.median, base)},
        )
        best[f"{name}|{image}|{n}"] = timing.median
        print(f"  {image:8s} N={n:5d} {name:28s} {timing.median:12,.0f} steps/s", flush=True)
        return timing.median

    for mode in args.modes:
        for n in ns:
            if have_minigrid and n in baseline_ns:
                row(mode, n, "MiniGrid DummyVecEnv", lambda: minigrid_dummy_vec_env(n, mode))  # noqa: B023
            row(mode, n, "mmrl VecEnv (batched)", lambda: mmrl_vec_env(n, mode))  # noqa: B023
            if not args.no_sync and n in baseline_ns:
                row(mode, n, "mmrl SyncVectorEnv", lambda: mmrl_sync_vector_env(n, mode))  # noqa: B023
            if envpool is not None and mode == "symbolic":
                row(mode, n, "EnvPool C++ (1 thread)", lambda: envpool_env(n, 1))  # noqa: B023
                if cores > 1 and n >= cores:
                    row(mode, n, f"EnvPool C++ ({cores} threads)", lambda: envpool_env(n, cores))  # noqa: B023

    minigrid_rgb = max((v for (m, _), v in reference.items() if m == "rgb"), default=None)
    ours_256 = best.get("mmrl VecEnv (batched)|rgb|256")
    if ours_256 is not None:
        table.notes.append(
            check("mmrl RGB VecEnv N=256 / best MiniGrid RGB DummyVecEnv", ratio(ours_256, minigrid_rgb), 100)
        )
    sym_256 = best.get("mmrl VecEnv (batched)|symbolic|256")
    pool_256 = best.get("EnvPool C++ (1 thread)|symbolic|256")
    if sym_256 is not None and pool_256 is not None:
        table.notes.append(check("mmrl symbolic N=256 / EnvPool 1 thread N=256", ratio(sym_256, pool_256), 1.0))
    elif envpool is None:
        table.notes.append("EnvPool not importable: its rows and target are skipped.")
    table.notes.append("mmrl's engine is single-threaded NumPy: compare it with EnvPool's 1-thread rows.")
    report(args, [table], "Environment throughput")
    return table


if __name__ == "__main__":
    main()
