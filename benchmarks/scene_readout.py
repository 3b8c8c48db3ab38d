"""Which image read-out can answer questions about a whole scene: a supervised probe on mmrl/VisualQuery-v0.

PPO gets one bit per question (right or wrong), so an extractor that cannot learn the answers from labels will
not learn them from rewards either. This script trains each extractor variant (``MultimodalExtractor`` with FiLM,
the bag of words and a 64-unit tanh head, as the PPO preset's policy) by cross-entropy on the correct answers of
``--samples`` scenes (symbolic cells, seeds 0..) and reports the answer accuracy on 3,000 other scenes (seeds
1,000,000..) after each of ``--epochs`` epochs. Every variant starts from SB3's initialisation of an actor-critic
policy (orthogonal weights, gain sqrt(2), zero biases), the one ``mmrl train`` trains, because the scale of a
read-out matters under it: an unscaled sum over the 49 cells of the scene saturates the tanh layer.

Run ``python benchmarks/scene_readout.py --help``; ``--quick`` trains 2 epochs on 2,000 scenes.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import mmrl  # noqa: F401  (registers the envs)
from benchmarks.common import Table, add_output_args, report
from mmrl.extractor import MultimodalExtractor

ENV_ID = "mmrl/VisualQuery-v0"
TEST_SEED = 1_000_000
#: (label, image encoder, image_pool): the navigation read-out first, the VisualQuery preset last.
VARIANTS = [
    ("patch CNN, flattened map (the navigation presets' read-out)", "patch", "none"),
    ("per-cell (pointwise), flattened map", "pointwise", "none"),
    ("per-cell, mean over cells", "pointwise", "mean"),
    ("per-cell, max over cells", "pointwise", "max"),
    ("per-cell, sum over cells / 7 (image_pool=sum)", "pointwise", "sum"),
    ("per-cell, max and sum (the VisualQuery preset)", "pointwise", "max_sum"),
]


def scenes(env: gym.Env, count: int, first_seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` scenes: images, token ids and the index of the correct answer."""
    images, missions, answers = [], [], []
    unwrapped = env.unwrapped
    for seed in range(first_seed, first_seed + count):
        observation, _ = env.reset(seed=seed)
        images.append(observation["image"])
        missions.append(observation["mission"])
        answers.append(int(unwrapped.batch.world.answer_N[0]))  # type: ignore[attr-defined]
    return torch.as_tensor(np.stack(images)), torch.as_tensor(np.stack(missions)), torch.as_tensor(answers)


def train_variant(
    env: gym.Env,
    encoder: str,
    pool: str,
    train: tuple[torch.Tensor, ...],
    test: tuple[torch.Tensor, ...],
    epochs: int,
    seed: int,
) -> tuple[list[float], float]:
    """Test accuracy after each epoch and the training time in seconds."""
    from stable_baselines3.common.policies import ActorCriticPolicy

    torch.manual_seed(seed)
    extractor = MultimodalExtractor(
        env.observation_space, fusion="film", text_encoder="bow", image_encoder=encoder, image_pool=pool
    )
    head = torch.nn.Sequential(torch.nn.Linear(128, 64), torch.nn.Tanh(), torch.nn.Linear(64, env.action_space.n))
    for module in (extractor, head):
        module.apply(partial(ActorCriticPolicy.init_weights, gain=np.sqrt(2)))
    optimizer = torch.optim.Adam([*extractor.parameters(), *head.parameters()], lr=1e-3)
    images, missions, answers = train
    accuracies = []
    started = time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(len(answers)).split(256):
            logits = head(extractor({"image": images[batch].float(), "mission": missions[batch]}))
            loss = torch.nn.functional.cross_entropy(logits, answers[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            predicted = head(extractor({"image": test[0].float(), "mission": test[1]})).argmax(dim=1)
        accuracies.append(float((predicted == test[2]).float().mean()))
    return accuracies, time.perf_counter() - started


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20_000, help="training scenes (default 20,000)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs over them (default 15)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of every variant (default 0)")
    add_output_args(parser, default_repeats=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.epochs = 2_000, 2
    torch.set_num_threads(1)
    env = gym.make(ENV_ID, image_mode="symbolic", channels_first=True)
    train = scenes(env, args.samples, 0)
    test = scenes(env, 3_000, TEST_SEED)
    checkpoints = sorted({1, min(5, args.epochs), args.epochs})
    table = Table(
        f"Answer accuracy on 3,000 held-out {ENV_ID} scenes after supervised training on {args.samples:,} scenes "
        f"(FiLM, bag of words, SB3's initialisation, Adam 1e-3, batch 256, torch seed {args.seed})",
        ["read-out", *(f"epoch {epoch}" for epoch in checkpoints), "s per epoch"],
    )
    for label, encoder, pool in VARIANTS:
        accuracies, seconds = train_variant(env, encoder, pool, train, test, args.epochs, args.seed)
        table.add(
            **{"read-out": label, "s per epoch": seconds / args.epochs},
            **{f"epoch {epoch}": accuracies[epoch - 1] for epoch in checkpoints},
        )
    prior = float(np.mean([answer == np.bincount(test[2].numpy()).argmax() for answer in test[2].numpy()]))
    table.notes.append(
        f"Always giving the most frequent answer: {prior:.2f}; the best answer per question type without looking at "
        "the scene: about 0.28."
    )
    report(args, [table], "Scene read-outs (supervised probe)")
    return table


if __name__ == "__main__":
    main()
