"""Run every benchmark script and assemble ``benchmarks/RESULTS.md``.

Each script runs in its own process (so one's threads, imports and memory do not disturb the next) with
``--markdown`` when it supports it; a script without that flag has its printed output recorded in a code block. A
missing script or a failing one is recorded as such and the others still run. ``--quick`` is passed on to scripts
that accept it. Sample efficiency is expensive and only runs with ``--with-sample-efficiency``.
Run ``python benchmarks/run_all.py --help``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import REPO_ROOT, command_line, machine_line

BENCH_DIR = Path(__file__).resolve().parent
#: (script, title) in the order of RESULTS.md; the last two are owned by colleagues.
SCRIPTS = (
    ("env_throughput.py", "Environment throughput"),
    ("training_throughput.py", "Training throughput"),
    ("extractor_throughput.py", "Extractor throughput (PPO multimodal vs image-only)"),
    ("text_encoders.py", "Instruction encoders"),
    ("tabular.py", "Tabular Q-learning"),
    ("memory.py", "Memory"),
    ("sample_efficiency.py", "Sample efficiency"),
    ("scene_readout.py", "Scene read-outs (supervised probe)"),
    ("memory_need.py", "Memory need (planner demonstrations)"),
)


def script_flags(path: Path) -> str:
    """The script's ``--help`` text (empty if it cannot be read), to see which flags it takes."""
    try:
        done = subprocess.run(
            [sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout


def run_script(name: str, title: str, quick: bool, timeout: float, extra: list[str]) -> str:
    """Runs one script; returns its RESULTS.md section."""
    path = BENCH_DIR / name
    if not path.exists():
        return f"## {title}\n\n`benchmarks/{name}` is not in this checkout: not run.\n"
    flags = script_flags(path)
    argv = [sys.executable, str(path)]
    if quick and "--quick" in flags:
        argv.append("--quick")
    argv += extra
    with tempfile.TemporaryDirectory() as tmp:
        markdown = Path(tmp) / "out.md"
        if "--markdown" in flags:
            argv += ["--markdown", str(markdown)]
        shown = " ".join(["python", f"benchmarks/{name}", *argv[2:]]).replace(str(markdown), "PATH")
        print(f"== {shown}", flush=True)
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
            output, code = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as exc:
            output, code = f"{exc.stdout or ''}\n(timed out after {timeout:.0f} s)", -1
        elapsed = time.perf_counter() - start
        print(output[-3000:], flush=True)
        if code == 0 and markdown.exists():
            body = markdown.read_text().strip()
            # the script's own "## title" and command lines stay: they name the exact command
            return f"{body}\n\n_Wall time {elapsed:.0f} s._\n"
    status = "ok" if code == 0 else f"exit code {code}"
    tail = output.strip()[-6000:] if isinstance(output, str) else ""
    return f"## {title}\n\nCommand: `{shown}` ({status}, {elapsed:.0f} s)\n\n```\n{tail}\n```\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument("--only", nargs="+", help="script names to run (e.g. env_throughput.py memory.py)")
    parser.add_argument("--with-sample-efficiency", action="store_true", help="also run sample_efficiency.py")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds allowed per script")
    parser.add_argument("--output", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args(argv)

    sections = []
    for name, title in SCRIPTS:
        if args.only and name not in args.only:
            continue
        if name == "sample_efficiency.py" and not (args.with_sample_efficiency or (args.only and name in args.only)):
            sections.append(f"## {title}\n\nNot run (pass `--with-sample-efficiency`; the full run takes hours).\n")
            continue
        sections.append(run_script(name, title, args.quick, args.timeout, []))

    mode = "quick (short, noisy: for development only)" if args.quick else "full"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# mmrl benchmark results",
        "",
        f"Generated {stamp} by `{command_line()}`; mode: {mode}.",
        "",
        f"Machine: {machine_line()}",
        "",
        "Each table: median over repeats, min-max spread, ratio against the alternative measured in the same run. "
        "See `benchmarks/README.md` for what each script measures.",
        "",
    ]
    args.output.write_text("\n".join(header) + "\n" + "\n".join(sections))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
