"""Memory of a long batched rollout: peak RSS, and RSS growth between early and late checkpoints.

Steps ``mmrl.make_vec_env("mmrl/GoTo-v0", 256)`` with random actions (auto-reset included) for ``--steps`` env steps
(default 100k; every batched call is 256 steps) and prints the process RSS (``/proc/self/status`` VmRSS) after 10k
steps and at the end, peak RSS (``resource.getrusage``), and the Python heap growth seen by ``tracemalloc`` between
the same checkpoints. A leak shows as RSS/heap growth between 10k and the end (the batch's arrays are allocated once,
so after warm-up the footprint should be flat). Run ``python benchmarks/memory.py --help``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Table, add_output_args, report

ENV_ID = "mmrl/GoTo-v0"
MIB = 1024 * 1024


def rss_mib() -> float:
    """Current resident set size in MiB (Linux), else the peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mib()


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MIB if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux


def rollout(n_envs: int, steps: int, early: int, image_mode: str, trace: bool) -> dict[str, float]:
    import mmrl

    venv = mmrl.make_vec_env(ENV_ID, n_envs, seed=0, env_kwargs={"image_mode": image_mode})
    venv.reset()
    rng = np.random.default_rng(0)
    n_actions = int(venv.action_space.n)
    calls = max(1, steps // n_envs)
    early_call = max(1, early // n_envs)
    result = {"rss_start": rss_mib()}
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    for call in range(1, calls + 1):
        venv.step(rng.integers(0, n_actions, size=n_envs))
        if call == early_call:
            result["rss_early"] = rss_mib()
            if trace:
                result["heap_early"] = tracemalloc.get_traced_memory()[0] / MIB
    result["seconds"] = time.perf_counter() - start
    result["rss_end"] = rss_mib()
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        result["heap_end"] = current / MIB
        result["heap_peak"] = peak / MIB
        tracemalloc.stop()
    result["rss_peak"] = peak_rss_mib()
    result["steps"] = calls * n_envs
    venv.close()
    return result


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-envs", type=int, default=256)
    parser.add_argument("--steps", type=int, help="env steps in all (default 100000, quick 20480)")
    parser.add_argument("--early", type=int, default=10_000, help="steps at the early checkpoint")
    parser.add_argument("--image-mode", default="rgb", choices=["rgb", "symbolic"])
    parser.add_argument("--no-tracemalloc", action="store_true", help="RSS only (tracemalloc slows the run)")
    parser.add_argument("--tolerance-mib", type=float, default=8.0, help="allowed RSS growth early -> end")
    add_output_args(parser, default_repeats=1)
    args = parser.parse_args(argv)
    steps = args.steps or (20_480 if args.quick else 100_000)

    r = rollout(args.n_envs, steps, args.early, args.image_mode, not args.no_tracemalloc)
    table = Table(
        f"Memory of a {args.n_envs}-env batched rollout of {r['steps']:,} steps ({ENV_ID}, {args.image_mode})",
        ["measure", "MiB"],
    )
    table.add(measure="RSS before stepping", MiB=r["rss_start"])
    table.add(measure=f"RSS after {args.early:,} steps", MiB=r["rss_early"])
    table.add(measure=f"RSS after {r['steps']:,} steps", MiB=r["rss_end"])
    table.add(measure="peak RSS (getrusage, whole process)", MiB=r["rss_peak"])
    growth = r["rss_end"] - r["rss_early"]
    table.add(measure=f"RSS growth {args.early:,} -> {r['steps']:,} steps", MiB=growth)
    if "heap_end" in r:
        table.add(measure=f"tracemalloc heap after {args.early:,} steps", MiB=r["heap_early"])
        table.add(measure=f"tracemalloc heap after {r['steps']:,} steps", MiB=r["heap_end"])
        table.add(measure="tracemalloc heap peak", MiB=r["heap_peak"])
    verdict = "PASS" if growth <= args.tolerance_mib else "FAIL"
    table.notes.append(f"no growth check: {growth:.1f} MiB (allowed {args.tolerance_mib} MiB) {verdict}")
    table.notes.append(f"rollout wall time {r['seconds']:.1f} s ({r['steps'] / r['seconds']:,.0f} steps/s)")
    report(args, [table], "Memory")
    return table


if __name__ == "__main__":
    main()
