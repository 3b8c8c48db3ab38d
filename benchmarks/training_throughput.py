"""Training frames/s of SB3 PPO, A2C and DQN with mmrl's extractor, against image-only and MiniGrid baselines.

Variants, each trained for a fixed number of timesteps per measurement (median of repeats, wall time of
``model.learn`` only):

* ``mmrl multimodal``: ``mmrl.make_vec_env("mmrl/GoTo-v0", channels_first=True)`` (no ``VecTransposeImage``) with
  ``mmrl.policy_kwargs()`` (the defaults: gated-attention fusion, GRU instruction encoder, small CNN);
* ``mmrl image-only``: the same env and CNN with the instruction ignored (``text_keys=[]``, ``ignore_keys=["mission"]``,
  concat fusion);
* ``MiniGrid DummyVecEnv``: the path without mmrl's env: ``BabyAI-GoToRedBall-v0`` with the RGB partial view
  (``RGBImgPartialObsWrapper(tile_size=8)``, 56x56) and ``mmrl.wrappers.TokenizeText``, in SB3's ``DummyVecEnv``
  (SB3 adds ``VecTransposeImage``), with the same ``mmrl.policy_kwargs()`` network.

``torch.set_num_threads`` is set explicitly for each measurement (``--threads``, default 1 and 2).
Run ``python benchmarks/training_throughput.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Table, Timing, add_output_args, check, optional_import, ratio, report

ENV_ID = "mmrl/GoTo-v0"
PEER_ID = "BabyAI-GoToRedBall-v0"
ALGOS = ("PPO", "A2C", "DQN")
VARIANTS = ("mmrl multimodal", "mmrl image-only", "MiniGrid DummyVecEnv")


def algo_kwargs(algo: str, timesteps: int) -> dict[str, Any]:
    """Typical small-gridworld settings; DQN's buffer is capped so its memory stays modest."""
    if algo == "PPO":
        return {"n_steps": 128, "batch_size": 256, "n_epochs": 4}
    if algo == "A2C":
        return {"n_steps": 5}
    return {"buffer_size": min(timesteps, 10_000), "learning_starts": 256, "train_freq": 4, "batch_size": 64}


def make_env(variant: str, n_envs: int, seed: int):
    import mmrl

    if variant.startswith("mmrl"):
        return mmrl.make_vec_env(ENV_ID, n_envs, seed=seed, env_kwargs={"channels_first": True})
    from stable_baselines3.common.vec_env import DummyVecEnv

    from benchmarks.env_throughput import minigrid_env

    venv = DummyVecEnv([lambda: minigrid_env("rgb") for _ in range(n_envs)])
    venv.seed(seed)
    return venv


def network(variant: str) -> dict[str, Any]:
    import mmrl

    if variant == "mmrl image-only":
        return mmrl.policy_kwargs(fusion="concat", text_keys=[], ignore_keys=["mission"])
    return mmrl.policy_kwargs()


def train_once(algo: str, variant: str, timesteps: int, n_envs: int, threads: int, seed: int) -> float:
    """Frames/s of one ``learn(timesteps)``: env and model built first, outside the timing."""
    import stable_baselines3
    import torch

    torch.set_num_threads(threads)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # MiniGrid prints rejected samples
        venv = make_env(variant, n_envs, seed)
        cls = getattr(stable_baselines3, algo)
        model = cls(
            "MultiInputPolicy",
            venv,
            policy_kwargs=network(variant),
            seed=seed,
            device="cpu",
            verbose=0,
            **algo_kwargs(algo, timesteps),
        )
        start = time.perf_counter()
        model.learn(timesteps)
        elapsed = time.perf_counter() - start
    frames = model.num_timesteps
    venv.close()
    return frames / elapsed


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads values")
    parser.add_argument("--timesteps", type=int, help="timesteps per measurement (default 16384, quick 4096)")
    parser.add_argument("--n-envs", type=int, default=16)
    add_output_args(parser)
    args = parser.parse_args(argv)
    timesteps = args.timesteps or (4096 if args.quick else 16_384)
    warnings.filterwarnings("ignore")
    variants = list(args.variants)
    if "MiniGrid DummyVecEnv" in variants and optional_import("minigrid") is None:
        variants.remove("MiniGrid DummyVecEnv")

    table = Table(
        f"Training frames/s on {ENV_ID} ({args.n_envs} envs, {timesteps:,} timesteps per measurement)",
        ["algo", "torch threads", "variant", "frames/s (median)", "min-max", "x MiniGrid", "x image-only"],
    )
    checks: list[str] = []
    for algo in args.algos:
        for threads in args.threads:
            medians: dict[str, float] = {}
            rows: list[tuple[str, Timing]] = []
            for variant in variants:
                timing = Timing(
                    [train_once(algo, variant, timesteps, args.n_envs, threads, i) for i in range(args.repeats)]
                )
                medians[variant] = timing.median
                rows.append((variant, timing))
                print(f"  {algo} threads={threads} {variant:22s} {timing.median:9,.0f} frames/s", flush=True)
            for variant, timing in rows:
                table.add(
                    algo=algo,
                    **{"torch threads": threads, "variant": variant, "frames/s (median)": timing.median},
                    **{"min-max": timing.spread()},
                    **{"x MiniGrid": ratio(timing.median, medians.get("MiniGrid DummyVecEnv"))},
                    **{"x image-only": ratio(timing.median, medians.get("mmrl image-only"))},
                )
            multimodal = medians.get("mmrl multimodal")
            if multimodal is not None and algo == "PPO":
                checks.append(
                    check(
                        f"PPO threads={threads} mmrl / MiniGrid DummyVecEnv",
                        ratio(multimodal, medians.get("MiniGrid DummyVecEnv")),
                        3.0,
                    )
                )
            if multimodal is not None:
                checks.append(
                    check(
                        f"{algo} threads={threads} multimodal / image-only",
                        ratio(multimodal, medians.get("mmrl image-only")),
                        0.9,
                    )
                )
    table.notes.extend(checks)
    table.notes.append("Frames = environment steps summed over all envs; wall time of model.learn() only.")
    report(args, [table], "Training throughput")
    return table


if __name__ == "__main__":
    main()
