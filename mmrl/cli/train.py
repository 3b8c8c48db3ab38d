"""``mmrl train``: a thin layer over :func:`mmrl.training.train`."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator

from mmrl.cli import non_negative_int, positive_int
from mmrl.cli.choices import FUSION_CHOICES, TEXT_ENCODER_CHOICES

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    from mmrl.algorithms import algorithm_names

    parser = subparsers.add_parser(
        "train",
        help="train an agent and write a run directory",
        description="Train PPO, A2C, DQN, recurrent PPO (multimodal extractor) or tabular Q-learning on an env. "
        "Hyperparameters come from agents/<algo>.yaml, --preset and --set. "
        "Ctrl-C stops after the current step and saves the model.",
    )
    parser.add_argument(
        "--algo",
        type=str.lower,
        choices=algorithm_names(),
        help="algorithm, any case (required unless --resume)",
    )
    parser.add_argument(
        "--env",
        dest="env_id",
        metavar="ENV_ID",
        help="env id: mmrl's (see mmrl envs) or any registered Gymnasium id (e.g. BabyAI-GoToObj-v0, "
        "CartPole-v1: mmrl applies the wrappers it needs and records them in the run)",
    )
    parser.add_argument("--timesteps", type=positive_int, help="total env steps (default: the preset's)")
    parser.add_argument("--seed", type=non_negative_int, help="seed (default 0)")
    parser.add_argument("--n-envs", type=positive_int, help="parallel envs (default: the preset's)")
    parser.add_argument("--preset", help="preset YAML (default: the built-in agents/<algo>.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset key (value parsed as YAML), e.g. --set learning_rate=3e-4 "
        "--set env_kwargs.observation=compact; repeatable",
    )
    parser.add_argument(
        "--fusion",
        metavar="FUSION",
        help=f"extractor fusion: {', '.join(FUSION_CHOICES)} (default: the preset's)",
    )
    parser.add_argument(
        "--text-encoder",
        metavar="ENCODER",
        help=f"extractor text encoder: {', '.join(TEXT_ENCODER_CHOICES)} (hf needs --set text_model=DIR; default: "
        "the preset's)",
    )
    parser.add_argument("--eval-freq", type=non_negative_int, help="steps between evaluations (0: only at the end)")
    parser.add_argument("--checkpoint-freq", type=non_negative_int, help="steps between checkpoints (0: at the end)")
    parser.add_argument("--run-dir", help="run directory (default runs/<env>/<algo>/<seed>-<time>)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing non-empty --run-dir")
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a run from its last checkpoint with its own config.yaml (only --timesteps, --stop-at and "
        "--no-progress may be added)",
    )
    parser.add_argument(
        "--stop-at",
        type=positive_int,
        metavar="N",
        help="stop this session at the first rollout boundary at or after N steps, keeping the full --timesteps "
        "horizon (schedules); continue exactly with --resume RUN_DIR",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


@contextlib.contextmanager
def _wrapper_choice_shown() -> Iterator[None]:
    """While training, print on stderr the one line :func:`mmrl.wrappers.auto_wrap` logs about another package's
    env (what it applied); the logger is restored afterwards."""
    import logging

    logger = logging.getLogger("mmrl.wrappers.auto")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def run(args: argparse.Namespace) -> int:
    """Train; print the run directory and final metrics."""
    from mmrl.cli import UsageError

    if args.resume is None and (args.algo is None or args.env_id is None):
        raise UsageError("mmrl train: --algo and --env are required (or --resume RUN_DIR)")
    if args.resume is not None:
        if args.force or args.run_dir:
            raise UsageError("mmrl train: --resume continues in the run's own folder; drop --run-dir / --force")
        from mmrl.training.trainer import RESUME_FIXED_SETTINGS, is_given

        # the same settings train() refuses with resume, as a usage error here (--run-dir/--force: above)
        ignored = ["--seed"] if args.seed is not None else []
        ignored += [flag for key, flag in RESUME_FIXED_SETTINGS.items() if is_given(getattr(args, key, None))]
        if ignored:
            raise UsageError(
                f"mmrl train: --resume continues the run with its own config.yaml; {', '.join(ignored)} cannot change "
                "it: drop them (only --timesteps, --stop-at and --no-progress may be added), or start a new run"
            )
    from mmrl.training import train

    with _wrapper_choice_shown():
        result = train(
            args.algo,
            args.env_id,
            timesteps=args.timesteps,
            seed=args.seed,
            n_envs=args.n_envs,
            preset=args.preset,
            overrides=args.overrides,
            fusion=args.fusion,
            text_encoder=args.text_encoder,
            run_dir=args.run_dir,
            force=args.force,
            resume=args.resume,
            progress_bar=not args.no_progress,
            eval_freq=args.eval_freq,
            checkpoint_freq=args.checkpoint_freq,
            stop_at=args.stop_at,
        )
    metrics = result.metrics
    if result.interrupted:
        print(
            f"interrupted at {metrics['timesteps']:,} steps; model saved in {result.run_dir}; continue with: "
            f"mmrl train --resume {result.run_dir}",
            file=sys.stderr,
        )
        return 130
    if metrics.get("stopped_on_success") is not None:
        print(
            f"stopped at {metrics['timesteps']:,} steps: the held-out evaluation at "
            f"{metrics['stopped_on_success']:,} steps reached stop_success={result.config.stop_success}"
        )
    elif metrics.get("stopped"):
        print(f"stopped at {metrics['timesteps']:,} steps (--stop-at); continue with --resume {result.run_dir}")
    from mmrl.training.summary import summary_lines

    print("\n".join(summary_lines(metrics, result.run_dir)))
    print(f"run directory: {result.run_dir}")
    return 0
