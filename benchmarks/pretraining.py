"""Pre-training benchmarks: what a frozen language model costs per frame, and what pre-training buys.

``text-cost``: the whole extractor (patch CNN + text encoder + gated fusion) on real ``mmrl/GoTo-5x5-v0``
observations of 16 envs under random actions, per frame: ``rollout`` is a forward pass without gradients per env
step (16 rows, the inference memo / the language-model cache warm after the first steps), ``train`` is forward +
backward on minibatches of 256 frames. Variants: bag of words, GRU (the library default), ``hf`` with a tiny BERT
built from a config, and ``hf`` with a real model directory if ``--text-model`` is given (e.g. all-MiniLM-L6-v2,
22.7M parameters; see benchmarks/RESULTS.md for how to get it without a model hub). The ratio divides by the GRU.
One thread; median of ``--repeats`` interleaved rounds::

    python benchmarks/pretraining.py text-cost [--text-model DIR] [--repeats 5]

``compare``: PPO with the env's preset, from scratch and after each pre-training source (autoencoders per modality,
the fused autoencoder, a frozen language model, behaviour cloning of the planner), until the periodic greedy
evaluation reaches ``--stop-success`` (default 0.95) or the preset's budget; frames and wall time to 0.95 count the
pre-training time; then 200 held-out episodes greedy on the train, test (held-out combinations) and paraphrase
splits and with the instruction blanked. One thread; resumable (``results.jsonl``); run two processes on disjoint
seeds with the same ``--out`` to use two cores::

    python benchmarks/pretraining.py compare --env mmrl/GoTo-5x5-v0 --seeds 0 1 2 --text-model DIR
"""

from __future__ import annotations

import argparse
import functools
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


#: Variants of ``compare``: (pre-training method or None, autoencoder parts, extra ``--set`` overrides of the run).
VARIANTS: dict[str, tuple[str | None, tuple[str, ...], dict[str, Any]]] = {
    "scratch": (None, (), {}),
    "scratch-gru": (None, (), {"text_encoder": "gru"}),
    "hf": (None, (), {"text_encoder": "hf"}),
    "autoencoder": ("autoencoder", ("image", "text"), {}),
    "fused-autoencoder": ("autoencoder", ("image", "text", "fused"), {}),
    "autoencoder-frozen-image": ("autoencoder", ("image", "text"), {"freeze": "image"}),
    "bc": ("bc", (), {}),
}
DEFAULT_VARIANTS = ("scratch", "scratch-gru", "hf", "autoencoder", "fused-autoencoder", "bc")


@functools.cache
def _has_split(env_id: str, split: str) -> bool:
    """Whether ``mission_split=split`` exists for the env and changes its episodes (VisualQuery's colour questions,
    for one, accept every split but name no colour/object pair and have no paraphrases)."""
    import gymnasium as gym

    import mmrl  # noqa: F401  (registers the mmrl/ ids)

    def episodes(chosen: str) -> list[tuple[bytes, str]]:
        env = gym.make(env_id, mission_split=chosen)
        try:
            firsts = [env.reset(seed=seed) for seed in range(20)]
            return [(observation["image"].tobytes(), info.get("mission", "")) for observation, info in firsts]
        finally:
            env.close()

    try:
        return split == "train" or episodes(split) != episodes("train")
    except (TypeError, ValueError):
        return False


def _run_variant(args: argparse.Namespace, env_id: str, variant: str, seed: int, out: Path) -> dict[str, Any] | None:
    """Pre-train (timed), train PPO until ``--stop-success`` or the budget, evaluate; one results row."""
    import mmrl
    from benchmarks.zoo import time_to
    from mmrl.pretrain.cloning import clone_planner
    from mmrl.pretrain.trainer import pretrain_autoencoder

    method, parts, extra = VARIANTS[variant]
    overrides: dict[str, Any] = {"torch_threads": 1, "eval_freq": args.eval_freq, "eval_episodes": 50, **extra}
    if args.stop_success:
        overrides["stop_success"] = args.stop_success
    if extra.get("text_encoder") == "hf":
        if not args.text_model:
            print(f"skipping {variant}: needs --text-model")
            return None
        overrides["text_model"] = args.text_model
    tag = f"{env_id.split('/')[-1]}-{variant}-{seed}"
    row: dict[str, Any] = {"env": env_id, "variant": variant, "seed": seed}
    started = time.perf_counter()
    if method == "autoencoder":
        bundle = pretrain_autoencoder(
            env_id, frames=args.pretrain_frames, updates=args.pretrain_updates, seed=seed, parts=parts,
            out=out / f"{tag}-bundle", progress=False,
        )  # fmt: skip
        overrides["pretrained"] = str(bundle.resolve())
    elif method == "bc":
        try:
            run_dir = clone_planner(
                env_id, frames=args.pretrain_frames, updates=args.pretrain_updates, seed=seed,
                out=out / f"{tag}-bc", progress=False, force=True,
            )  # fmt: skip
        except ValueError as error:  # question tasks have no planner to clone
            print(f"skipping {variant} on {env_id}: {error}")
            return None
        overrides["pretrained"] = str(run_dir.resolve())
    row["pretrain_s"] = round(time.perf_counter() - started, 1)
    if method == "bc":
        row["cloned_success"] = mmrl.evaluate(run_dir, episodes=args.episodes, seed=100_000).success_rate
    result = mmrl.train(
        "ppo", env_id, timesteps=args.timesteps, seed=seed, overrides=overrides, run_dir=out / f"{tag}-run",
        force=True, progress_bar=False,
    )  # fmt: skip
    evaluations = result.metrics.get("evaluations", [])
    row["timesteps"] = int(result.metrics["timesteps"])
    row["train_s"] = round(float(result.metrics["wall_time_s"]), 1)
    for threshold in (0.9, 0.95):
        frames, seconds = time_to(evaluations, result.run_dir, threshold)
        row[f"frames_to_{threshold}"] = frames
        row[f"wall_to_{threshold}"] = None if seconds is None else round(row["pretrain_s"] + seconds, 1)
    for split in ("train", "test", "paraphrase"):
        if _has_split(env_id, split):
            report = mmrl.evaluate(result.run_dir, episodes=args.episodes, seed=100_000, split=split)
            row[f"success_{split}"] = report.success_rate
    blank = mmrl.evaluate(result.run_dir, episodes=args.episodes, seed=100_000, ablate="mission")
    row["success_blank"] = blank.success_rate  # instruction blanked: what a policy gets without reading
    return row


def compare(args: argparse.Namespace) -> None:
    import json

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = {}
    if results_path.exists():
        for line in results_path.read_text().splitlines():
            row = json.loads(line)
            done[(row["env"], row["variant"], row["seed"])] = row
    for env_id in [] if args.table else args.env or [ENV_ID]:
        for seed in args.seeds:
            for variant in args.variants:
                key = (env_id, variant, seed)
                if key in done:
                    continue
                row = _run_variant(args, env_id, variant, seed, out)
                if row is None:
                    continue
                with open(results_path, "a") as handle:  # one short append per row: safe for parallel workers
                    handle.write(json.dumps(row) + "\n")
                done[key] = row
                print(json.dumps(row), flush=True)
    print_table(list(done.values()))


def print_table(rows: list[dict[str, Any]]) -> None:
    """Markdown table of ``compare`` rows: per env and variant, the median over seeds (and the range)."""
    from benchmarks.zoo import _cell

    columns = [
        ("seeds", None), ("pre-train s", "pretrain_s"), ("clone alone", "cloned_success"),
        ("frames to 0.95", "frames_to_0.95"), ("wall to 0.95 (pre-training included)", "wall_to_0.95"),
        ("greedy", "success_train"), ("held-out combos", "success_test"), ("paraphrase", "success_paraphrase"),
        ("blank text", "success_blank"),
    ]  # fmt: skip
    kinds = {"pretrain_s": "seconds", "frames_to_0.95": "frames", "wall_to_0.95": "seconds"}
    print("| env | variant | " + " | ".join(name for name, _ in columns) + " |")
    print("|" + "---|" * (len(columns) + 2))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["env"], list(VARIANTS).index(r["variant"]), r["seed"])):
        groups.setdefault((row["env"], row["variant"]), []).append(row)
    for (env_id, variant), runs in groups.items():
        cells = []
        for _, key in columns:
            if key is None:
                cells.append(str(len(runs)))
                continue
            values = [run.get(key) for run in runs]
            if key in ("pretrain_s", "cloned_success", "success_test", "success_paraphrase") and all(
                v is None or v == 0 for v in values
            ):
                cells.append("-")
                continue
            cells.append(_cell(values, kinds.get(key, "rate")))
        print(f"| {env_id.removeprefix('mmrl/').removesuffix('-v0')} | {variant} | " + " | ".join(cells) + " |")


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
    versus.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    versus.add_argument("--seeds", nargs="+", type=int, default=[0])
    versus.add_argument("--timesteps", type=int, default=None, help="PPO budget per run (default: the preset's)")
    versus.add_argument("--eval-freq", type=int, default=10_000, help="steps between periodic evaluations")
    versus.add_argument(
        "--stop-success", type=float, default=0.95,
        help="stop a run at the first periodic evaluation with this greedy success (0: train to the budget)",
    )  # fmt: skip
    versus.add_argument("--pretrain-frames", type=int, default=20_000, help="frames collected for pre-training")
    versus.add_argument("--pretrain-updates", type=int, default=1_500, help="pre-training gradient steps")
    versus.add_argument("--episodes", type=int, default=200, help="held-out evaluation episodes (seeds 100000+)")
    versus.add_argument("--text-model", help="local Hugging Face model directory for the hf variant")
    versus.add_argument("--out", default="runs/pretraining-compare", help="run folder; results.jsonl resumes")
    versus.add_argument("--table", action="store_true", help="only print the table of the runs in --out")
    versus.set_defaults(run=compare)
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
