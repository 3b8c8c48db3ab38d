"""Training frames/s of SB3 PPO, A2C and DQN with mmrl's extractor, against image-only and MiniGrid baselines.

Each measurement builds the env and the model, then times ``model.learn(timesteps)`` (wall time of ``learn``
only). A variant is an env path and a network:

* env paths: ``mmrl``: ``mmrl.make_vec_env("mmrl/GoTo-v0", channels_first=True)`` (one batched NumPy engine, no
  ``VecTransposeImage``); ``MiniGrid``: the path without mmrl's env: ``BabyAI-GoToRedBall-v0`` with the RGB
  partial view (``RGBImgPartialObsWrapper(tile_size=8)``, 56x56) and ``mmrl.wrappers.TokenizeText``, in SB3's
  ``DummyVecEnv`` (SB3 adds ``VecTransposeImage``).
* networks: ``gated+bow (preset)``: what the presets' ``default`` entry builds for RGB views (``agents/*.yaml``:
  gated attention, bag-of-words instruction encoder, patch CNN; PPO's own entries for GoTo-v0 and the other
  rooms read symbolic cells instead, measured in ``benchmarks/RESULTS.md``'s benchmark table);
  ``gated+gru (default)``: ``mmrl.policy_kwargs()``'s
  library defaults (GRU instruction encoder, for instructions whose word order matters); ``gated+conv``: gated
  attention with the word n-gram encoder (order-aware, cheaper than the GRU; mmrl path only); ``image-only``: the
  same patch CNN with the instruction ignored (``text_keys=[]``, ``ignore_keys=["mission"]``, concat fusion).

The ``x MiniGrid`` column compares an mmrl variant with the MiniGrid path running the *same network*;
``x image-only`` compares with the mmrl image-only variant. Repeats are interleaved (every variant once per round,
in reverse order on odd rounds, so a drift within a round favours no variant), so a slow spell of the machine hits
all variants alike, and a ratio is the median over rounds of the ratio within the round (on a shared 2-core VM
single measurements vary by +-15 %; paired ratios vary much less); each target line also gives the spread of
the rounds' own ratios and how many of them reach the target. ``x image-only (CPU)`` is the same ratio of
frames per second of the process's CPU time (with 2 threads it also counts the second thread's time, spinning
included). It would filter out time the VM's host gives to other guests; on the development VM it equals the wall
ratio at 1 thread, so there the spread is slower execution, not lost time.
``torch.set_num_threads`` is set explicitly for each measurement (``--threads``, default 1 and 2; 2 is torch's
default on this 2-core machine).
Run ``python benchmarks/training_throughput.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
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
#: Network name -> ``mmrl.policy_kwargs`` arguments.
NETWORKS: dict[str, dict[str, Any]] = {
    "gated+bow (preset)": {"fusion": "gated", "text_encoder": "bow"},
    "gated+gru (default)": {"fusion": "gated", "text_encoder": "gru"},  # policy_kwargs() defaults before concat+bow
    "gated+conv": {"fusion": "gated", "text_encoder": "conv"},
    "image-only": {"fusion": "concat", "text_keys": [], "ignore_keys": ["mission"]},
}
#: (env path, network) pairs measured by default.
VARIANTS: tuple[tuple[str, str], ...] = (
    ("mmrl", "gated+bow (preset)"),
    ("mmrl", "gated+gru (default)"),
    ("mmrl", "gated+conv"),
    ("mmrl", "image-only"),
    ("MiniGrid", "gated+bow (preset)"),
    ("MiniGrid", "gated+gru (default)"),
)


def algo_kwargs(algo: str, timesteps: int) -> dict[str, Any]:
    """Typical small-gridworld settings; DQN's buffer is capped so its memory stays modest."""
    if algo == "PPO":
        return {"n_steps": 128, "batch_size": 256, "n_epochs": 4}
    if algo == "A2C":
        return {"n_steps": 5}
    return {"buffer_size": min(timesteps, 10_000), "learning_starts": 256, "train_freq": 4, "batch_size": 64}


def make_env(path: str, n_envs: int, seed: int):
    import mmrl

    if path == "mmrl":
        return mmrl.make_vec_env(ENV_ID, n_envs, seed=seed, env_kwargs={"channels_first": True})
    from stable_baselines3.common.vec_env import DummyVecEnv

    from benchmarks.env_throughput import minigrid_env

    venv = DummyVecEnv([lambda: minigrid_env("rgb") for _ in range(n_envs)])
    venv.seed(seed)
    return venv


def network(name: str) -> dict[str, Any]:
    import mmrl

    return mmrl.policy_kwargs(**NETWORKS[name])


def round_ratios(values: list[float], references: list[float]) -> list[float]:
    """``value / reference`` of every round (both measured in the same round)."""
    return [ratio(value, reference) for value, reference in zip(values, references, strict=True)]


def paired_ratio(values: list[float], references: list[float] | None) -> float | None:
    """Median over rounds of ``value / reference`` measured in the same round (None without a reference)."""
    if not references:
        return None
    return statistics.median(round_ratios(values, references))


def target_check(label: str, values: list[float], references: list[float], target: float) -> str:
    """:func:`check` of the median paired ratio, followed by the spread of the rounds' own ratios."""
    rounds = round_ratios(values, references)
    above = sum(value >= target for value in rounds)
    return (
        f"{check(label, statistics.median(rounds), target)} (rounds: {min(rounds):.2f}-{max(rounds):.2f}, "
        f"{above} of {len(rounds)} at or above)"
    )


def train_once(
    algo: str, path: str, net: str, timesteps: int, n_envs: int, threads: int, seed: int
) -> tuple[float, float]:
    """Frames per wall-clock second and per CPU second of one ``learn(timesteps)``: env and model built first,
    outside the timing."""
    import stable_baselines3
    import torch

    torch.set_num_threads(threads)
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # MiniGrid prints rejected samples
        venv = make_env(path, n_envs, seed)
        cls = getattr(stable_baselines3, algo)
        model = cls(
            "MultiInputPolicy",
            venv,
            policy_kwargs=network(net),
            seed=seed,
            device="cpu",
            verbose=0,
            **algo_kwargs(algo, timesteps),
        )
        start, start_cpu = time.perf_counter(), time.process_time()
        model.learn(timesteps)
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    frames = model.num_timesteps
    venv.close()
    return frames / elapsed, frames / elapsed_cpu


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--no-minigrid", action="store_true", help="skip the MiniGrid path")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads values")
    parser.add_argument("--timesteps", type=int, help="timesteps per measurement (default 16384, quick 4096)")
    parser.add_argument("--n-envs", type=int, default=16)
    add_output_args(parser)
    args = parser.parse_args(argv)
    timesteps = args.timesteps or (4096 if args.quick else 16_384)
    warnings.filterwarnings("ignore")
    with_minigrid = not args.no_minigrid and optional_import("minigrid") is not None
    variants = [
        (path, net)
        for path, net in VARIANTS
        if net in args.networks and (path == "mmrl" or with_minigrid) and (path, net) != ("MiniGrid", "image-only")
    ]

    table = Table(
        f"Training frames/s on {ENV_ID} ({args.n_envs} envs, {timesteps:,} timesteps per measurement, "
        f"{args.repeats} interleaved rounds)",
        [
            "algo",
            "torch threads",
            "env path",
            "network",
            "frames/s (median)",
            "min-max",
            "x MiniGrid",
            "x image-only",
            "x image-only (CPU)",
        ],
    )
    checks: list[str] = []
    for algo in args.algos:
        for threads in args.threads:
            samples: dict[tuple[str, str], list[float]] = {variant: [] for variant in variants}
            cpu_samples: dict[tuple[str, str], list[float]] = {variant: [] for variant in variants}
            for repeat in range(args.repeats):
                for path, net in variants if repeat % 2 == 0 else variants[::-1]:
                    fps, cpu_fps = train_once(algo, path, net, timesteps, args.n_envs, threads, repeat)
                    samples[(path, net)].append(fps)
                    cpu_samples[(path, net)].append(cpu_fps)
                    print(
                        f"  {algo} threads={threads} round {repeat} {path:8s} {net:20s} {fps:9,.0f} "
                        f"({cpu_fps:,.0f} per CPU s)",
                        flush=True,
                    )
            for (path, net), values in samples.items():
                timing = Timing(values)
                peer = samples.get(("MiniGrid", net)) if path == "mmrl" else None
                image_only = samples.get(("mmrl", "image-only")) if path == "mmrl" else None
                cpu_image_only = cpu_samples.get(("mmrl", "image-only")) if path == "mmrl" else None
                to_peer = paired_ratio(values, peer)
                to_image_only = paired_ratio(values, image_only)
                table.add(
                    algo=algo,
                    **{"torch threads": threads, "env path": path, "network": net},
                    **{"frames/s (median)": timing.median, "min-max": timing.spread()},
                    **{"x MiniGrid": to_peer, "x image-only": to_image_only},
                    **{"x image-only (CPU)": paired_ratio(cpu_samples[(path, net)], cpu_image_only)},
                )
                if path != "mmrl" or net == "image-only":
                    continue
                label = f"{algo} threads={threads} {net}"
                if algo == "PPO" and peer:
                    checks.append(target_check(f"{label}: mmrl / MiniGrid (same network)", values, peer, 3.0))
                if image_only:
                    checks.append(target_check(f"{label} / image-only", values, image_only, 0.9))
    table.notes.extend(checks)
    table.notes.append("Frames = environment steps summed over all envs; wall time of model.learn() only.")
    report(args, [table], "Training throughput")
    return table


if __name__ == "__main__":
    main()
