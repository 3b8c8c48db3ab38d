"""``mmrl pretrain``: a thin layer over :mod:`mmrl.pretrain` (autoencoders and behaviour cloning)."""

from __future__ import annotations

import argparse

from mmrl.cli import positive_int
from mmrl.cli.choices import DEMONSTRATOR_CHOICES

__all__ = ["register", "run"]

METHODS = ("autoencoder", "bc")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` subcommand."""
    parser = subparsers.add_parser(
        "pretrain",
        help="pre-train the extractor (autoencoders) or the whole policy (behaviour cloning)",
        description="autoencoder: collect random and planner-driven episodes, train image, text and fused "
        "autoencoders on the extractor's own encoders, write a pre-trained encoder bundle (load it with "
        "'mmrl train ... --set pretrained=DIR [--set freeze=image|text|all]'). bc: clone the planner's "
        "demonstrations into the PPO preset's policy and write a run directory that 'mmrl evaluate' reads and "
        "'mmrl train --set pretrained=RUN_DIR' continues.",
    )
    parser.add_argument("--env", dest="env_id", metavar="ENV_ID", required=True, help="env id, e.g. mmrl/GoTo-5x5-v0")
    parser.add_argument("--method", choices=METHODS, default="autoencoder", help="default: autoencoder")
    parser.add_argument("--frames", type=positive_int, help="observations to collect (default 20000)")
    parser.add_argument("--updates", type=positive_int, help="gradient steps (default 1500)")
    parser.add_argument("--batch-size", type=positive_int, help="observations per step (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument(
        "--out", help="output folder (default pretrained/<env>-autoencoder, or runs/<env>/bc/<seed> for bc)"
    )
    parser.add_argument(
        "--parts",
        default="image,text,fused",
        help="autoencoders to train, comma-separated from image, text, fused (default: all three)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="PPO preset overrides that shape the extractor or env, as for 'mmrl train' (e.g. --set fusion=film)",
    )
    parser.add_argument(
        "--demonstrator",
        choices=DEMONSTRATOR_CHOICES,
        default="planner",
        help="--method bc: the expert cloned: planner (reads the whole world) or searcher (walks only to objects in "
        "view and searches for the others, which a policy that sees only its view can copy); default: planner",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="--method bc: DAgger rounds after the cloning (0-8): each, the clone plays --frames/4 frames, the expert "
        "labels every state it reached, and --updates/4 more steps fit all labels so far; default: 0",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = {
        key: value
        for key, value in (("frames", args.frames), ("updates", args.updates), ("batch_size", args.batch_size))
        if value is not None
    }
    if args.method == "bc":
        from mmrl.pretrain.cloning import clone_planner

        run_dir = clone_planner(
            args.env_id, out=args.out, seed=args.seed, overrides=args.overrides, progress=not args.no_progress,
            demonstrator=args.demonstrator, rounds=args.rounds, **options,
        )  # fmt: skip
        print(f"cloned policy: {run_dir}")
        print(f"evaluate it:   mmrl evaluate {run_dir}")
        print(f"fine-tune it:  mmrl train --algo ppo --env {args.env_id} --set pretrained={run_dir}")
        return 0
    from mmrl.pretrain.trainer import pretrain_autoencoder

    parts = tuple(part.strip() for part in args.parts.split(",") if part.strip())
    bundle = pretrain_autoencoder(
        args.env_id, out=args.out, parts=parts, seed=args.seed, overrides=args.overrides,
        progress=not args.no_progress, **options,
    )  # fmt: skip
    print(f"pre-trained encoders: {bundle} (reconstructions.png, TensorBoard logs in {bundle / 'tb'})")
    print(f"use them: mmrl train --algo ppo --env {args.env_id} --set pretrained={bundle} [--set freeze=image]")
    return 0
