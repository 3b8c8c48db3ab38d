"""``mmrl export RUN_DIR [-o OUT]``: a thin layer over :func:`mmrl.export.export_run`."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "export",
        help="write a pickle-free policy bundle (safetensors + JSON manifest) from a run directory",
        description=(
            "Load RUN_DIR's model.zip (trusted: it is your own run) and write a policy bundle: a directory with "
            "weights.safetensors and manifest.json, loadable with mmrl.load_policy without running pickled code."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by 'mmrl train'")
    parser.add_argument(
        "-o", "--output", default=None, metavar="OUT", help="bundle directory (default RUN_DIR/policy.bundle)"
    )
    parser.add_argument("--best", action="store_true", help="export best_model.zip instead of model.zip")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle at OUT")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``mmrl export``; returns the exit status (0 ok, 1 error)."""
    from mmrl.export import export_run

    try:
        out = export_run(args.run_dir, args.output, best=args.best, force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as error:
        print(f"mmrl export: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote policy bundle {out}  (load with mmrl.load_policy({str(out)!r}); inspect with 'mmrl inspect')")
    return 0
