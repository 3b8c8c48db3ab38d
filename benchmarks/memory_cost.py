"""What each cheap memory costs the extractor: the last actions (``action_history``) against stacked frames
(``frame_stack`` read with ``image_frames``), on GoTo-12x12's preset network.

For each variant the script times one PPO minibatch update of the extractor (forward, backward and an Adam step on
``--train-batch`` observations) and one rollout forward pass (``--rollout-batch`` observations, no gradient), and
gives each against the network without memory measured in the same run. Observations are real ones from the env (random
walks), so the instruction cache and the cell embedding see what they see in training.

Run ``python benchmarks/memory_cost.py --help``; ``--quick`` times fewer repeats.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import mmrl  # noqa: F401  (registers the envs)
from benchmarks.common import Table, add_cost_args, report
from mmrl.extractor import MultimodalExtractor

ENV = "mmrl/GoTo-12x12-v0"
#: GoTo-12x12's preset network (agents/ppo.yaml).
NETWORK = {"image_encoder": "factored_locate", "fusion": "film", "image_channels": 48, "text_encoder": "bow"}
VARIANTS: dict[str, dict[str, int]] = {
    "no memory": {},
    "action_history=4 (the preset)": {"action_history": 4},
    "frame_stack=2": {"frame_stack": 2},
    "frame_stack=4": {"frame_stack": 4},
}


def observations(env_kwargs: dict[str, Any], count: int, seed: int) -> dict[str, torch.Tensor]:
    """``count`` observations of random walks, as the float tensors SB3 hands the extractor (one-hot actions)."""
    env = gym.make(ENV, image_mode="symbolic", channels_first=True, **env_kwargs)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, np.ndarray]] = []
    obs, _ = env.reset(seed=seed)
    while len(rows) < count:
        rows.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(3)))
        if terminated or truncated:
            obs, _ = env.reset()
    batch = {key: torch.as_tensor(np.stack([row[key] for row in rows])).float() for key in rows[0]}
    if "actions" in batch:  # SB3's preprocessing: each MultiDiscrete entry one-hot
        space = env.observation_space["actions"]
        columns = zip(batch["actions"].T, space.nvec, strict=True)
        one_hot = [torch.nn.functional.one_hot(column.long(), int(n)).float() for column, n in columns]
        batch["actions"] = torch.cat(one_hot, dim=1)
    return batch


def time_variant(env_kwargs: dict[str, int], batch: int, envs: int, repeats: int, calls: int) -> tuple[float, float]:
    """Median milliseconds of one minibatch update and of one rollout forward pass."""
    env = gym.make(ENV, image_mode="symbolic", channels_first=True, **env_kwargs)
    frames = env_kwargs.get("frame_stack", 1)
    torch.manual_seed(0)
    extractor = MultimodalExtractor(env.observation_space, image_frames=frames, **NETWORK)
    optimizer = torch.optim.Adam(extractor.parameters(), lr=1e-4)
    train = observations(env_kwargs, batch, seed=0)
    rollout = {key: value[:envs] for key, value in train.items()}

    def update() -> None:
        optimizer.zero_grad()
        extractor(train).square().mean().backward()
        optimizer.step()

    def forward() -> None:
        with torch.no_grad():
            extractor(rollout)

    results = []
    for step in (update, forward):
        step()  # warm-up
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                step()
            samples.append((time.perf_counter() - start) / calls * 1000)
        results.append(statistics.median(samples))
    return results[0], results[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_cost_args(parser, default_repeats=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    calls = 3 if args.quick else 20
    repeats = 2 if args.quick else args.repeats
    table = Table(
        f"Extractor cost of the memories on {ENV}'s preset network ({args.threads} thread(s), median of {repeats})",
        ["memory", "update ms", "x no memory (update)", "rollout ms", "x no memory (rollout)"],
    )
    base: tuple[float, float] | None = None
    for name, env_kwargs in VARIANTS.items():
        update_ms, forward_ms = time_variant(env_kwargs, args.train_batch, args.rollout_batch, repeats, calls)
        base = base or (update_ms, forward_ms)
        table.add(
            **{
                "memory": name,
                "update ms": update_ms,
                "x no memory (update)": update_ms / base[0],
                "rollout ms": forward_ms,
                "x no memory (rollout)": forward_ms / base[1],
            }
        )
    table.notes.append(
        f"update: forward + backward + Adam step on {args.train_batch} observations; rollout: forward on "
        f"{args.rollout_batch}, no gradient. Stacked frames each go through the shared cell encoder (image_frames), "
        "the last actions through one small linear layer."
    )
    report(args, [table], "memory cost")


if __name__ == "__main__":
    main()
