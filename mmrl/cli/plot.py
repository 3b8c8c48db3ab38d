"""``mmrl plot RUN_DIR ... [-o curves.png]``: learning curves from ``monitor.csv`` (thin layer over
:func:`mmrl.plotting.plot_runs`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mmrl.cli import positive_int
from mmrl.plotting import DEFAULT_BINS, DEFAULT_SMOOTH


def register(subparsers: Any) -> None:
    """Add the ``plot`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "plot",
        help="plot learning curves (return, success) of run directories",
        description=(
            "Plot return and success rate against timesteps. Solid line: the training episodes of each run's "
            "monitor.csv (sampled actions), smoothed; runs of the same env and algorithm (e.g. several seeds) are "
            "drawn as mean ± std bands (success clipped to [0, 1]). Markers: the held-out greedy evaluations of "
            "metrics.json; dashed line: the random policy on the held-out seeds (both absent for older runs)."
        ),
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (or monitor.csv files)")
    parser.add_argument("-o", "--output", default="curves.png", help="output PNG (default curves.png)")
    parser.add_argument("--bins", type=positive_int, default=DEFAULT_BINS, help=f"timestep bins ({DEFAULT_BINS})")
    parser.add_argument(
        "--smooth",
        type=positive_int,
        default=DEFAULT_SMOOTH,
        metavar="BINS",
        help=f"moving-average window of the training curves in bins ({DEFAULT_SMOOTH}; 1 = no smoothing)",
    )
    parser.add_argument("--title", default=None, help="figure title (default: env id — algo, number of seeds)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``mmrl plot``; returns the exit status (0 ok, 1 error, 130 interrupted)."""
    from mmrl.plotting import plot_runs

    try:
        path = plot_runs(args.run_dirs, args.output, bins=args.bins, title=args.title, smooth=args.smooth)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError) as error:
        message = str(error).strip().replace("\n", " ") or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    print(path)
    return 0
