"""``mmrl sweep SPEC.yaml``: multi-seed runs and hyperparameter sweeps on Ray Tune (thin layer over
:func:`mmrl.sweep.runner.sweep`); ``mmrl sweep --report DIR`` re-renders the results of a finished or partial sweep.
"""

from __future__ import annotations

import argparse
import sys

from mmrl.cli import positive_int

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` subcommand (Ray is imported only when a sweep runs)."""
    parser = subparsers.add_parser(
        "sweep",
        help="run seeds x configurations on Ray Tune (local, or a cluster with --address)",
        description="Run a sweep spec (seeds x a grid or search space over preset keys) on Ray Tune: every trial is "
        "an mmrl run directory under the sweep folder, failed trials are retried from their last checkpoint, and "
        "the results table (mean ± std over seeds) is written as CSV, JSON, Markdown and a plot. Needs the [ray] "
        "extra. Spec schema: mmrl/sweep/spec.py and README 'Sweeps on Ray'.",
    )
    parser.add_argument("spec", nargs="?", metavar="SPEC.yaml", help="the sweep spec")
    parser.add_argument("--out", metavar="DIR", help="sweep folder (default sweeps/<name>)")
    parser.add_argument(
        "--address",
        metavar="auto|HOST:PORT",
        help="a running Ray cluster (started with 'ray start --head'); default: a local Ray on this machine's CPUs",
    )
    parser.add_argument("--max-concurrent", type=positive_int, metavar="K", help="trials at once (default: all CPUs)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted sweep in --out")
    parser.add_argument("--report", metavar="DIR", help="only re-render the results of the sweep in DIR (no Ray)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``mmrl sweep``; prints the results table."""
    from mmrl.cli import UsageError

    if args.report is not None:
        if args.spec is not None or args.resume or args.address or args.out or args.max_concurrent:
            raise UsageError("mmrl sweep: --report DIR takes no spec or other option")
        from mmrl.sweep.results import markdown, write_report

        report = write_report(args.report)
        print(markdown(report), end="")
        print(f"wrote {args.report}/results.csv, results.json, results.md" + (", results.png" if report.n_done else ""))
        return 0
    if args.spec is None:
        raise UsageError("mmrl sweep: give a SPEC.yaml (or --report DIR)")
    if args.resume and args.out is None:
        raise UsageError("mmrl sweep: --resume needs --out DIR, the sweep folder to continue")
    from mmrl.sweep.results import markdown
    from mmrl.sweep.spec import load_spec

    spec = load_spec(args.spec)  # a bad spec is refused before Ray is imported or started
    try:
        from mmrl.sweep.runner import sweep

        report = sweep(spec, out=args.out, address=args.address, max_concurrent=args.max_concurrent, resume=args.resume)
    except ModuleNotFoundError as error:
        if error.name in ("ray", "optuna"):
            print(f"error: {error.msg}", file=sys.stderr)
            return 1
        raise
    print(markdown(report), end="")
    if report.n_done < spec.n_trials:
        print(
            f"sweep incomplete: continue it with 'mmrl sweep {args.spec} --resume --out {report.sweep_dir}'",
            file=sys.stderr,
        )
        return 1
    return 0
