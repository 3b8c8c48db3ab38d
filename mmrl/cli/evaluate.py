"""``mmrl evaluate RUN_DIR_OR_MODEL``: evaluate a trained model and print a results table (thin layer over
:func:`mmrl.evaluation.evaluate`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mmrl.cli import non_negative_int, positive_int
from mmrl.cli.choices import ABLATION_CHOICES, DEFAULT_TABLE_ROWS, SPLIT_CHOICES

#: Exit status after Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 130
#: Which model of a run directory ``--model`` picks.
MODEL_CHOICES = ("final", "best")


def register(subparsers: Any) -> None:
    """Add the ``evaluate`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained model (success rate, per-instruction table, ablations, video)",
        description=(
            "Evaluate a run directory or model file on reproducibly seeded episodes (episode i: seed + i) and print "
            "mean return, success rate with a 95 % Wilson interval, episode length, the random policy on the "
            "same seeds, and success per template and per instruction. With --ablate, the same episodes are also "
            "played without the ablation and the difference is printed with its 95 % interval (paired by seed; "
            "Newcombe's interval for success rates). "
            "Nothing is written unless --json / --video name a file."
        ),
    )
    parser.add_argument(
        "target", metavar="RUN_DIR_OR_MODEL", help="run directory, model file (.zip / .npz) or policy bundle"
    )
    parser.add_argument(
        "--model",
        choices=MODEL_CHOICES,
        default="final",
        help="with a run directory: its final model (default) or best_model, the best held-out evaluation's",
    )
    parser.add_argument("--env", dest="env_id", default=None, help="env id (default: the one trained on)")
    parser.add_argument(
        "--episodes", type=positive_int, default=100, help="number of episodes (default 100, at most 1000000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--deterministic", dest="deterministic", action="store_true", default=True, help="greedy (default)"
    )
    mode.add_argument("--stochastic", dest="deterministic", action="store_false", help="sample actions")
    parser.add_argument(
        "--split",
        choices=SPLIT_CHOICES,
        default=None,
        help="mission split of mmrl environments: test = held-out colour/object pairs, paraphrase = unseen words",
    )
    parser.add_argument(
        "--ablate",
        choices=ABLATION_CHOICES,
        action="append",
        default=None,
        help="blank a modality (mission: PAD tokens; image: black) and compare with the same episodes intact",
    )
    parser.add_argument("--shuffle-missions", action="store_true", help="show each episode another's instruction")
    parser.add_argument("--video", default=None, metavar="OUT.mp4|OUT.gif", help="record a few episodes")
    parser.add_argument(
        "--video-episodes", type=positive_int, default=3, help="episodes in the video (default 3, at most 100)"
    )
    parser.add_argument("--json", dest="json_path", default=None, metavar="OUT.json", help="write the report")
    parser.add_argument("--n-envs", type=positive_int, default=None, help="parallel envs (default min(episodes, 16))")
    parser.add_argument(
        "--rows",
        type=non_negative_int,
        default=DEFAULT_TABLE_ROWS,
        help=f"rows of the per-template and per-instruction tables (default {DEFAULT_TABLE_ROWS}; 0: all)",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the random policy on the same seeds (saves its episodes)"
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="allow an SB3 .zip from outside an mmrl run directory (loading it runs pickled code: only for files "
        "you created or trust)",
    )
    parser.add_argument(
        "--allow-env",
        dest="allowed_env_ids",
        action="append",
        default=None,
        metavar="ENV_ID",
        help="an env id the run's or bundle's own env id may be (repeatable; default: any id already registered; "
        "a module: prefix is always refused)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``mmrl evaluate``; returns the exit status (0 ok, 1 error, 130 interrupted)."""
    from mmrl.evaluation.evaluate import evaluate

    try:
        target = args.target if args.model == "final" else best_model_of(args.target)
        report = evaluate(
            target,
            env_id=args.env_id,
            episodes=args.episodes,
            seed=args.seed,
            deterministic=args.deterministic,
            split=args.split,
            ablate=args.ablate,
            shuffle_missions=args.shuffle_missions,
            video=args.video,
            json_path=args.json_path,
            n_envs=args.n_envs,
            video_episodes=args.video_episodes,
            trust=args.trust,
            allowed_env_ids=args.allowed_env_ids,
            baseline=not args.no_baseline,
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError) as error:
        message = str(error).strip().replace("\n", " ") or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    print(report.format_table(max_rows=args.rows))
    if report.video is not None:
        print(f"video: {report.video}")
    if args.json_path is not None:
        print(f"json: {args.json_path}")
    return 0


def best_model_of(run_dir: str) -> str:
    """The ``best_model`` file of a run directory (``--model best``).

    Raises:
        ValueError: If ``run_dir`` is not a run directory or holds no best model yet.
    """
    from pathlib import Path

    from mmrl.training.run_dir import RunDir, model_suffix

    path = Path(run_dir)
    if not path.is_dir():
        raise ValueError(f"--model best needs a run directory, got {run_dir}; pass the run directory or drop --model")
    run = RunDir(path)
    best = path / f"best_model{model_suffix(run.algo)}"
    if not best.is_file():
        raise ValueError(f"{path} has no {best.name} yet (no held-out evaluation finished); drop --model best")
    return str(best)
