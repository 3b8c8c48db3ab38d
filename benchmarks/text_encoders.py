"""What each instruction encoder costs per call, against the image-only network it rides on.

Two calls are timed, both through :func:`mmrl.extractor.extractor.encode_text` (the path the extractor takes):

* ``train``: forward + backward on a PPO-like minibatch: 256 rows drawn from 32 distinct five-word instructions
  (what a 256-sample minibatch of ``mmrl/GoTo-v0`` holds), with the distinct-instruction cache;
* ``rollout``: a forward pass without gradients on 16 rows (one step of 16 envs), without the inference memo (a
  batch that changed since the previous step).

The reference rows: ``bag of words (embedding_bag)``, the implementation the bag of words replaced (PyTorch's fused
gather-and-mean, whose backward sorts the token ids), and ``image-only network``: the patch CNN and head that every
variant shares (forward + backward at 256, forward at 16), the cost the encoders are added to. The ratio column
divides by the GRU (the library default). CPU time of this thread, median of ``--repeats`` rounds, variants
interleaved. Run ``python benchmarks/text_encoders.py --help``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Table, add_cost_args, fmt, report
from mmrl.extractor.extractor import encode_text
from mmrl.extractor.text_encoders import TEXT_ENCODERS
from mmrl.tokenizer import PAD_ID

VOCAB_SIZE = 40
MAX_LENGTH = 16
TEXT_DIM = 64
WORDS = 5
DISTINCT = 32
EMBEDDING_BAG = "bag of words (embedding_bag)"
IMAGE_ONLY = "image-only network"
NAMES = {
    "bow": "bag of words",
    "gru": "GRU",
    "lstm": "LSTM",
    "conv": "word n-grams (conv)",
    "transformer": "Transformer",
}


def instruction_batch(batch: int, generator: torch.Generator) -> torch.Tensor:
    """``batch`` rows drawn from ``DISTINCT`` random five-word instructions, padded to ``MAX_LENGTH`` (floats, as SB3
    hands token ids to the extractor)."""
    distinct_UL = torch.full((DISTINCT, MAX_LENGTH), PAD_ID, dtype=torch.long)
    distinct_UL[:, :WORDS] = torch.randint(1, VOCAB_SIZE, (DISTINCT, WORDS), generator=generator)
    return distinct_UL[torch.randint(0, DISTINCT, (batch,), generator=generator)].float()


def train_and_rollout(
    forward: Callable[[Any], torch.Tensor], train_input: Any, rollout_input: Any
) -> dict[str, Callable]:
    """The two timed calls of one variant: forward + backward on ``train_input``, forward without gradients on
    ``rollout_input``."""

    def train() -> None:
        forward(train_input).sum().backward()

    def rollout() -> None:
        with torch.no_grad():
            forward(rollout_input)

    return {"train": train, "rollout": rollout}


def encoder_calls(name: str, tokens_train: torch.Tensor, tokens_rollout: torch.Tensor) -> dict[str, Callable]:
    """The ``train`` and ``rollout`` calls of one encoder (or of the embedding_bag reference)."""
    torch.manual_seed(0)
    if name == EMBEDDING_BAG:
        table = torch.nn.Embedding(VOCAB_SIZE, TEXT_DIM, padding_idx=PAD_ID).weight

        def bag(tokens: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.embedding_bag(tokens.long(), table, mode="mean", padding_idx=PAD_ID)

        return train_and_rollout(bag, tokens_train, tokens_rollout)
    encoder = TEXT_ENCODERS[name](VOCAB_SIZE, MAX_LENGTH, TEXT_DIM)

    def encode(tokens: torch.Tensor) -> torch.Tensor:
        return encode_text(encoder, tokens, cache_text=True).sentence_BD

    return train_and_rollout(encode, tokens_train, tokens_rollout)


def image_only_calls(train_batch: int, rollout_batch: int) -> dict[str, Callable]:
    """The shared network: the patch CNN on 56x56 RGB and a 128-wide head, as in the training benchmark."""
    import numpy as np
    from gymnasium import spaces

    from mmrl.extractor import MultimodalExtractor

    space = spaces.Dict({"image": spaces.Box(0, 255, (3, 56, 56), np.uint8)})
    extractor = MultimodalExtractor(space, fusion="concat", normalized_images=False)
    images = torch.randint(0, 256, (train_batch, 3, 56, 56)).float()
    return train_and_rollout(lambda batch: extractor({"image": batch}), images, images[:rollout_batch])


def cpu_microseconds(call: Callable[[], None], calls: int) -> float:
    start = time.thread_time()
    for _ in range(calls):
        call()
    return (time.thread_time() - start) / calls * 1e6


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cost_args(parser, default_repeats=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    calls = 10 if args.quick else 100
    generator = torch.Generator().manual_seed(0)
    tokens_train = instruction_batch(args.train_batch, generator)
    tokens_rollout = instruction_batch(args.rollout_batch, generator)
    variants = {NAMES[name]: encoder_calls(name, tokens_train, tokens_rollout) for name in TEXT_ENCODERS}
    variants[EMBEDDING_BAG] = encoder_calls(EMBEDDING_BAG, tokens_train, tokens_rollout)
    variants[IMAGE_ONLY] = image_only_calls(args.train_batch, args.rollout_batch)
    samples: dict[tuple[str, str], list[float]] = {
        (name, kind): [] for name in variants for kind in ("train", "rollout")
    }
    for call in (call for functions in variants.values() for call in functions.values()):
        call()  # warm-up
    for repeat in range(args.repeats):
        for name in variants if repeat % 2 == 0 else list(variants)[::-1]:
            for kind, call in variants[name].items():
                samples[(name, kind)].append(cpu_microseconds(call, calls))

    table = Table(
        f"Instruction encoder cost, CPU us per call ({args.threads} thread(s), {args.repeats} rounds; train: forward + "
        f"backward on {args.train_batch} rows of {DISTINCT} distinct {WORDS}-word instructions; rollout: forward on "
        f"{args.rollout_batch} rows)",
        ["encoder", "train us", "x GRU (train)", "rollout us", "x GRU (rollout)", "train x image-only network"],
    )
    median = {key: statistics.median(values) for key, values in samples.items()}
    gru = NAMES["gru"]
    for name in variants:
        train, rollout = median[(name, "train")], median[(name, "rollout")]
        table.add(
            encoder=name,
            **{"train us": train, "x GRU (train)": train / median[(gru, "train")]},
            **{"rollout us": rollout, "x GRU (rollout)": rollout / median[(gru, "rollout")]},
            **{"train x image-only network": train / median[(IMAGE_ONLY, "train")]},
        )
    bow, bag = median[(NAMES["bow"], "train")], median[(EMBEDDING_BAG, "train")]
    table.notes.append(
        f"bag of words (word frequencies x table) / embedding_bag: {fmt(bow / bag)}x the train time, "
        f"{fmt(median[(NAMES['bow'], 'rollout')] / median[(EMBEDDING_BAG, 'rollout')])}x the rollout time"
    )
    report(args, [table], "Instruction encoders")
    return table


if __name__ == "__main__":
    main()
