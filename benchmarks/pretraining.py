"""Pre-training benchmarks: what a frozen language model costs per frame, and what pre-training buys.

``text-cost``: the whole extractor (patch CNN + text encoder + gated fusion) on real ``mmrl/GoTo-5x5-v0``
observations of 16 envs under random actions, per frame: ``rollout`` is a forward pass without gradients per env
step (16 rows, the inference memo / the language-model cache warm after the first steps), ``train`` is forward +
backward on minibatches of 256 frames. Variants: bag of words, GRU (the library default), ``hf`` with a tiny BERT
built from a config, and ``hf`` with a real model directory if ``--text-model`` is given (e.g. all-MiniLM-L6-v2,
22.7M parameters; see benchmarks/RESULTS.md for how to get it without a model hub). The ratio divides by the GRU.
One thread; median of ``--repeats`` interleaved rounds::

    python benchmarks/pretraining.py text-cost [--text-model DIR] [--repeats 5]

``compare``: short PPO runs on one env, from scratch and with pre-trained encoders / behaviour cloning, each
evaluated greedily on held-out seeds (one process, one thread, sequential)::

    python benchmarks/pretraining.py compare --env mmrl/GoTo-5x5-v0 --timesteps 20000 --seeds 0
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

ENV_ID = "mmrl/GoTo-5x5-v0"


def _rollout_observations(env_id: str, n_envs: int, steps: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    import mmrl

    venv = mmrl.make_vec_env(env_id, n_envs, seed=seed)
    rng = np.random.default_rng(seed)
    observation = venv.reset()
    frames = []
    for _ in range(steps):
        frames.append({key: torch.as_tensor(value).float() for key, value in observation.items()})
        observation, *_ = venv.step(rng.integers(venv.action_space.n, size=n_envs))
    return frames


def text_cost(args: argparse.Namespace) -> None:
    import gymnasium as gym

    from mmrl.envs.grammar import VOCABULARY
    from mmrl.extractor import MultimodalExtractor
    from mmrl.pretrain.tiny_lm import save_tiny_bert

    torch.set_num_threads(1)
    space = gym.make(args.env).observation_space
    rollout = _rollout_observations(args.env, 16, args.steps)
    stacked = {key: torch.cat([frame[key] for frame in rollout]) for key in rollout[0]}
    generator = torch.Generator().manual_seed(0)
    minibatches = [
        {key: value[index] for key, value in stacked.items()}
        for index in torch.randperm(len(stacked["mission"]), generator=generator).split(256)
        if len(index) == 256
    ]
    with tempfile.TemporaryDirectory() as folder:
        tiny = str(save_tiny_bert(Path(folder) / "tiny-bert", VOCABULARY))
        variants: dict[str, dict[str, Any]] = {
            "bag of words": {"text_encoder": "bow"},
            "GRU": {"text_encoder": "gru"},
            "hf: tiny BERT (2 x 32)": {"text_encoder": "hf", "text_model": tiny},
        }
        if args.text_model:
            variants[f"hf: {Path(args.text_model).resolve().name}"] = {
                "text_encoder": "hf",
                "text_model": args.text_model,
            }
        extractors = {name: MultimodalExtractor(space, **kwargs) for name, kwargs in variants.items()}
        results: dict[str, dict[str, list[float]]] = {name: {"rollout": [], "train": []} for name in variants}
        for _ in range(args.repeats):
            for name, extractor in extractors.items():
                start = time.thread_time()
                with torch.no_grad():
                    for frame in rollout:
                        extractor(frame)
                results[name]["rollout"].append(1e6 * (time.thread_time() - start) / (16 * len(rollout)))
                start = time.thread_time()
                for batch in minibatches:
                    extractor.zero_grad()
                    extractor(batch).sum().backward()
                results[name]["train"].append(1e6 * (time.thread_time() - start) / (256 * len(minibatches)))
    gru = {phase: statistics.median(results["GRU"][phase]) for phase in ("rollout", "train")}
    print(f"extractor cost per frame on {args.env}, 16 envs x {args.steps} steps, 1 thread, median of {args.repeats}")
    print(
        "| text encoder | rollout us/frame | x GRU | train us/frame (fwd+bwd, batch 256) | x GRU "
        "| instructions run through the LM |"
    )
    print("|---|---|---|---|---|---|")
    for name, extractor in extractors.items():
        rollout_us = statistics.median(results[name]["rollout"])
        train_us = statistics.median(results[name]["train"])
        encoder = extractor.text_encoders[0]
        calls = getattr(encoder, "cached_instructions", "-")
        print(
            f"| {name} | {rollout_us:.1f} | {rollout_us / gru['rollout']:.2f} | {train_us:.1f} | "
            f"{train_us / gru['train']:.2f} | {calls} |"
        )


#: Variants of ``compare``: (pre-training method or None, extra ``--set`` overrides of the training run).
VARIANTS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "scratch": (None, {}),
    "scratch-gru": (None, {"text_encoder": "gru"}),
    "hf": (None, {"text_encoder": "hf"}),
    "autoencoder": ("autoencoder", {}),
    "autoencoder-frozen-image": ("autoencoder", {"freeze": "image"}),
    "bc": ("bc", {}),
}


def _frames_to(evaluations: list[dict[str, Any]], threshold: float) -> int | None:
    return next((e["timesteps"] for e in evaluations if (e.get("success_rate") or 0) >= threshold), None)


def compare(args: argparse.Namespace) -> None:
    import json

    import mmrl
    from mmrl.pretrain.cloning import clone_planner
    from mmrl.pretrain.trainer import pretrain_autoencoder

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = {}
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            row = json.loads(line)
            done[(row["env"], row["variant"], row["seed"])] = row
    for env_id in args.env or [ENV_ID]:
        for seed in args.seeds:
            for variant in args.variants:
                key = (env_id, variant, seed)
                if key in done:
                    continue
                method, extra = VARIANTS[variant]
                overrides = {"torch_threads": 1, "eval_freq": max(args.timesteps // 8, 1), "eval_episodes": 50, **extra}
                if extra.get("text_encoder") == "hf":
                    if not args.text_model:
                        print(f"skipping {variant}: needs --text-model")
                        continue
                    overrides["text_model"] = args.text_model
                tag = f"{env_id.split('/')[-1]}-{variant}-{seed}"
                started = time.perf_counter()
                pretrain_metrics: dict[str, Any] = {}
                if method == "autoencoder":
                    bundle = pretrain_autoencoder(
                        env_id, frames=args.pretrain_frames, updates=args.pretrain_updates, seed=seed,
                        out=out / f"{tag}-bundle", progress=False,
                    )  # fmt: skip
                    overrides["pretrained"] = str(bundle.resolve())
                elif method == "bc":
                    run_dir = clone_planner(
                        env_id, frames=args.pretrain_frames, updates=args.pretrain_updates, seed=seed,
                        out=out / f"{tag}-bc", progress=False,
                    )  # fmt: skip
                    overrides["pretrained"] = str(run_dir.resolve())
                    cloned = mmrl.evaluate(run_dir, episodes=args.episodes, seed=100_000)
                    pretrain_metrics["cloned_success"] = cloned.success_rate
                pretrain_s = time.perf_counter() - started
                result = mmrl.train(
                    "ppo", env_id, timesteps=args.timesteps, seed=seed, overrides=overrides,
                    run_dir=out / f"{tag}-run", force=True, progress_bar=False,
                )  # fmt: skip
                train_s = time.perf_counter() - started - pretrain_s
                row = {
                    "env": env_id, "variant": variant, "seed": seed, "timesteps": args.timesteps,
                    "pretrain_s": round(pretrain_s, 1), "train_s": round(train_s, 1), **pretrain_metrics,
                    "frames_to_0.9": _frames_to(result.metrics.get("evaluations", []), 0.9),
                    "frames_to_0.95": _frames_to(result.metrics.get("evaluations", []), 0.95),
                }  # fmt: skip
                for split in ("train", "paraphrase"):
                    report = mmrl.evaluate(
                        result.run_dir, episodes=args.episodes, seed=100_000, env_kwargs={"mission_split": split}
                    )
                    row[f"success_{split}"] = report.success_rate
                blank = mmrl.evaluate(result.run_dir, episodes=args.episodes, seed=100_000, ablate="mission")
                row["success_blank"] = blank.success_rate  # instruction blanked: what a policy gets without reading
                with open(results_path, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
                done[key] = row
                print(json.dumps(row), flush=True)
    print_table(list(done.values()))


def print_table(rows: list[dict[str, Any]]) -> None:
    """Markdown table of ``compare`` rows (one per env, variant and seed)."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    columns = [
        "env", "variant", "seed", "timesteps", "pretrain_s", "train_s", "cloned_success", "frames_to_0.9",
        "frames_to_0.95", "success_train", "success_paraphrase", "success_blank",
    ]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in sorted(rows, key=lambda r: (r["env"], list(VARIANTS).index(r["variant"]), r["seed"])):
        print("| " + " | ".join(cell(row.get(column)) for column in columns) + " |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cost = commands.add_parser("text-cost", help="per-frame extractor cost of hf vs GRU vs bag of words")
    cost.add_argument("--env", default=ENV_ID)
    cost.add_argument("--text-model", help="a local Hugging Face model directory (e.g. all-MiniLM-L6-v2)")
    cost.add_argument("--steps", type=int, default=64, help="env steps of the 16-env rollout (default 64)")
    cost.add_argument("--repeats", type=int, default=5)
    cost.set_defaults(run=text_cost)
    versus = commands.add_parser("compare", help="PPO from scratch vs with pre-training, greedy held-out success")
    versus.add_argument("--env", action="append", default=None, help="env id (repeatable; default GoTo-5x5)")
    versus.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    versus.add_argument("--seeds", nargs="+", type=int, default=[0])
    versus.add_argument("--timesteps", type=int, default=20_000, help="PPO steps per run (default 20000)")
    versus.add_argument("--pretrain-frames", type=int, default=5_000, help="frames collected for pre-training")
    versus.add_argument("--pretrain-updates", type=int, default=400, help="pre-training gradient steps")
    versus.add_argument("--episodes", type=int, default=200, help="held-out evaluation episodes (seeds 100000+)")
    versus.add_argument("--text-model", help="local Hugging Face model directory for the hf variant")
    versus.add_argument("--out", default="runs/pretraining-compare", help="run folder; results.jsonl resumes")
    versus.set_defaults(run=compare)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
