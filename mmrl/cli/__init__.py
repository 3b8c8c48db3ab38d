"""``mmrl`` command line: a thin layer over the Python API.

Each subcommand module (``train``, ``evaluate``, ``plot``, ``envs``, ``demo``, ``export``, ``inspect``) exposes
``register(subparsers)``, which adds its parser and sets ``run=<function(args) -> int>``. Errors print one line
``error: ...`` on stderr (exit 2 for usage errors, 1 otherwise, 130 on Ctrl-C), never a traceback: a last-resort
handler turns every exception into that line. ``--debug`` (anywhere on the command line) or ``MMRL_DEBUG=1`` prints
the traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

__all__ = ["SUBCOMMANDS", "UsageError", "build_parser", "main"]

#: Subcommand modules, in help order; missing ones are skipped.
SUBCOMMANDS = ("train", "evaluate", "plot", "envs", "demo", "export", "inspect", "pretrain", "sweep")


class UsageError(ValueError):
    """Bad command-line usage (exit status 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` parser that raises :class:`UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


def positive_int(text: str) -> int:
    """argparse type: an int > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an int >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {value}")
    return value


def _load_subcommands() -> list:
    modules = []
    for name in SUBCOMMANDS:
        qualified = f"{__name__}.{name}"
        try:
            modules.append(importlib.import_module(qualified))
        except ModuleNotFoundError as error:
            if error.name != qualified:  # a real missing dependency inside the module: do not hide it
                raise
    return modules


def build_parser() -> ArgumentParser:
    """The ``mmrl`` argument parser with every available subcommand."""
    from mmrl.version import __version__

    parser = ArgumentParser(prog="mmrl", description="Reinforcement learning on image + text observations.")
    parser.add_argument("--version", action="version", version=f"mmrl {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="print the traceback of an error (also: MMRL_DEBUG=1); any position"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for module in _load_subcommands():
        module.register(subparsers)
    return parser


#: Longest error message printed (a message may quote a value from a file).
MAX_MESSAGE_CHARS = 600

#: Exceptions whose message says all; others are printed with their class name.
_PLAIN_ERRORS = (ValueError, TypeError, OSError)


def _one_line(error: BaseException) -> str:
    """The error as one line of at most :data:`MAX_MESSAGE_CHARS` characters."""
    try:
        text = str(error)
    except Exception:  # a broken __str__ must not hide the failure
        text = ""
    text = " ".join(text[: 4 * MAX_MESSAGE_CHARS].split())
    if isinstance(error, MemoryError):
        text = f"out of memory{': ' + text if text else ''}; lower the sizes (n_envs, n_steps, net_arch, ...)"
    elif isinstance(error, RecursionError):
        text = f"input nested too deeply ({text or 'recursion limit'})"
    elif not isinstance(error, _PLAIN_ERRORS) or not text:
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("MMRL_DEBUG", "").strip() not in ("", "0")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmrl`` command. Returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(arguments)
    arguments = [argument for argument in arguments if argument != "--debug"]
    try:
        parser = build_parser()
        args = parser.parse_args(arguments)
        run = getattr(args, "run", None)
        if run is None:
            parser.print_help()
            return 2
        return int(run(args) or 0)
    except UsageError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (``mmrl envs | head``): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # the last-resort handler: one line, never a traceback unless asked
        if debug:
            traceback.print_exc()
        hint = "" if debug or isinstance(error, _PLAIN_ERRORS) else " (run with --debug for the traceback)"
        print(f"error: {_one_line(error)}{hint}", file=sys.stderr)
        return 1
