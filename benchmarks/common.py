"""Shared helpers of the benchmark scripts: timing, tables, JSON/Markdown output and a machine description.

Every script measures mmrl and the alternative a user would otherwise pick in the same process run, repeats each
measurement, and reports the median (with the min-max spread) and the ratio against the alternative.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as ``python benchmarks/x.py`` from a checkout without installing
    sys.path.insert(0, str(REPO_ROOT))

#: Distributions whose versions are reported with every table.
VERSIONED_PACKAGES = ("numpy", "torch", "gymnasium", "stable_baselines3", "minigrid", "envpool", "opencv-python")


@dataclass
class Timing:
    """Rates of one measurement over its repeats (e.g. steps/s)."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def spread(self) -> str:
        """``min-max`` with the same formatting as the median."""
        return f"{fmt(self.low)}-{fmt(self.high)}"


def measure_rate(run: Callable[[], float], repeats: int, warmup: int = 0) -> Timing:
    """Calls ``run`` ``warmup + repeats`` times; ``run`` does a fixed amount of work and returns its unit count.

    Returns the rates (units per wall-clock second) of the timed repeats.
    """
    for _ in range(warmup):
        run()
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        units = run()
        values.append(units / max(time.perf_counter() - start, 1e-9))
    return Timing(values)


def fmt(value: Any) -> str:
    """Compact number formatting for tables (3 significant digits for floats, thousands separators)."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return str(value)


@dataclass
class Table:
    """A titled result table: ``rows`` are dicts keyed by ``columns``; ``notes`` are printed under it."""

    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, **row: Any) -> None:
        self.rows.append(row)

    def _cells(self) -> list[list[str]]:
        return [[fmt(row.get(column)) for column in self.columns] for row in self.rows]

    def text(self) -> str:
        cells = self._cells()
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(self.columns)]
        line = "  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True))
        out = [self.title, line, "  ".join("-" * w for w in widths)]
        numeric = [all(isinstance(row.get(c), int | float) for row in self.rows) for c in self.columns]
        out += [
            "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(r, widths, numeric, strict=True))
            for r in cells
        ]
        out += self.notes
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        out.append("|" + "|".join("---" for _ in self.columns) + "|")
        out += ["| " + " | ".join(r) + " |" for r in self._cells()]
        if self.notes:
            out += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "notes": self.notes}


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, OS, Python and package versions, and torch's thread setting."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "cpu": cpu_model(),
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import mmrl

        info["mmrl"] = mmrl.__version__
    except Exception:
        info["mmrl"] = None
    for name in VERSIONED_PACKAGES:
        info[name] = package_version(name)
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return info


def machine_line(info: dict[str, Any] | None = None) -> str:
    """One line describing the machine and the versions."""
    info = info or machine_info()
    versions = ", ".join(f"{k} {info[k]}" for k in ("mmrl", *VERSIONED_PACKAGES) if info.get(k))
    return (
        f"{info['cores']} cores ({info['usable_cores']} usable), {info['cpu']}; {info['os']}; "
        f"Python {info['python']}; {versions}"
    )


def command_line() -> str:
    """The command that produced the current run, as it can be pasted into a shell."""
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(REPO_ROOT)
    return shlex.join(["python", str(script), *sys.argv[1:]])


def add_output_args(parser: argparse.ArgumentParser, default_repeats: int = 3) -> None:
    """``--quick``, ``--repeats``, ``--json PATH`` and ``--markdown PATH``."""
    parser.add_argument("--quick", action="store_true", help="short runs for development (noisy numbers)")
    parser.add_argument("--repeats", type=int, default=default_repeats, help="timed repeats per measurement")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the tables and machine info as JSON")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the tables as Markdown")


def add_cost_args(parser: argparse.ArgumentParser, default_repeats: int) -> None:
    """``--train-batch``, ``--rollout-batch`` and ``--threads`` of the per-call cost benchmarks, then the output
    arguments (:func:`add_output_args`)."""
    parser.add_argument("--train-batch", type=int, default=256, help="rows of a training minibatch (PPO presets: 256)")
    parser.add_argument("--rollout-batch", type=int, default=16, help="rows of a rollout call (n_envs: 16)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (training uses 1)")
    add_output_args(parser, default_repeats=default_repeats)


def report(args: argparse.Namespace, tables: Sequence[Table], title: str) -> None:
    """Prints the tables and writes them to ``args.json`` / ``args.markdown`` when given."""
    info = machine_info()
    print(f"\nmachine: {machine_line(info)}")
    for table in tables:
        print()
        print(table.text())
    mode = "quick" if getattr(args, "quick", False) else "full"
    if args.json:
        payload = {
            "title": title,
            "command": command_line(),
            "mode": mode,
            "machine": info,
            "tables": [t.to_dict() for t in tables],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    if args.markdown:
        parts = [
            f"## {title}",
            "",
            f"Command: `{command_line()}` ({mode} mode)",
            "",
            f"Machine: {machine_line(info)}",
        ]
        parts += ["", *(t.markdown() + "\n" for t in tables)]
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(parts).rstrip() + "\n")


def ratio(value: float, reference: float | None) -> float:
    """``value / reference``, NaN when there is no reference."""
    if not reference:
        return float("nan")
    return value / reference


def check(label: str, value: float, target: float) -> str:
    """A ``PASS``/``FAIL`` line for a ratio target."""
    verdict = "n/a" if value != value else ("PASS" if value >= target else "FAIL")
    return f"target {label}: {fmt(value)}x (need >= {target}x) {verdict}"


def optional_import(name: str) -> Any | None:
    """Imports ``name`` or prints why it is skipped and returns ``None``."""
    try:
        return __import__(name)
    except Exception as exc:
        print(f"note: {name} not importable ({type(exc).__name__}: {exc}); its rows are skipped")
        return None
