"""Throughput of :class:`mmrl.agents.QLearning` against a naive one-env, dict-based Q-learner.

Measured in the same run, per environment (FrozenLake-v1 4x4 slippery and Taxi-v4 by default):

* ``naive dict loop``: the textbook learner written below: a ``defaultdict`` table, one Gymnasium env
  (``gymnasium.make``, with its wrappers), a Python loop doing epsilon-greedy, ``env.step`` and the update.
* ``QLearning + DummyVecEnv(1)``: our agent on one Gymnasium env, as ``QLearning("Taxi-v4")`` builds it.
* ``QLearning + TabularVecEnv(N)``: our agent on N copies of the MDP stepped together with NumPy.
* ``TabularVecEnv(N) alone``: random actions, no learning: the env's share of the budget (an upper bound).

An *update* is one transition applied to the table (= one environment step). Each row is the median of
``--repeats`` timed runs after one warm-up run. Usage::

    python benchmarks/tabular.py                       # table on stdout
    python benchmarks/tabular.py --json out.json --markdown out.md --n-envs 4096 --repeats 5
    python benchmarks/tabular.py --quick               # small sizes, for a smoke test
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmrl.agents import QLearning, TabularVecEnv
from mmrl.atomic import write_json, write_text
from mmrl.version import __version__


def naive_q_learning(env_id: str, steps: int, seed: int = 0, alpha: float = 0.1, gamma: float = 0.99) -> None:
    """The baseline: dict table, one Gymnasium env, a plain Python loop, epsilon = 0.1."""
    env = gym.make(env_id)
    n_actions = int(env.action_space.n)
    table: defaultdict[Any, list[float]] = defaultdict(lambda: [0.0] * n_actions)
    rng = random.Random(seed)
    observation, _ = env.reset(seed=seed)
    for _ in range(steps):
        values = table[observation]
        action = rng.randrange(n_actions) if rng.random() < 0.1 else max(range(n_actions), key=values.__getitem__)
        next_observation, reward, terminated, truncated, _ = env.step(action)
        target = reward if terminated else reward + gamma * max(table[next_observation])
        values[action] += alpha * (target - values[action])
        if terminated or truncated:
            observation, _ = env.reset()
        else:
            observation = next_observation


def qlearning_on_dummy_vec_env(env_id: str, steps: int, seed: int = 0) -> None:
    QLearning(env_id, learning_rate=0.1, exploration_fraction=0.5, seed=seed).learn(steps)


def qlearning_on_tabular_vec_env(env_id: str, steps: int, n_envs: int, seed: int = 0) -> None:
    env = TabularVecEnv.from_env(env_id, n_envs, seed=seed)
    QLearning(env, learning_rate=0.1, exploration_fraction=0.5, seed=seed).learn(steps)


def tabular_vec_env_alone(env_id: str, steps: int, n_envs: int, seed: int = 0) -> None:
    env = TabularVecEnv.from_env(env_id, n_envs, seed=seed)
    rng = np.random.default_rng(seed)
    env.reset()
    n_actions = int(env.action_space.n)
    for _ in range(-(-steps // n_envs)):
        env.step_async(rng.integers(n_actions, size=n_envs))
        env.step_wait()


def median_rate(run: Callable[[], None], steps: int, repeats: int) -> tuple[float, list[float]]:
    """Median updates/s over ``repeats`` timed runs, after one untimed warm-up run."""
    run()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(steps / (time.perf_counter() - start))
    return statistics.median(rates), rates


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    rows = []
    for env_id in args.envs:
        cases = [
            ("naive dict loop", 1, args.naive_steps, lambda e=env_id: naive_q_learning(e, args.naive_steps)),
            (
                "QLearning + DummyVecEnv(1)",
                1,
                args.dummy_steps,
                lambda e=env_id: qlearning_on_dummy_vec_env(e, args.dummy_steps),
            ),
            (
                f"QLearning + TabularVecEnv({args.n_envs})",
                args.n_envs,
                args.steps,
                lambda e=env_id: qlearning_on_tabular_vec_env(e, args.steps, args.n_envs),
            ),
            (
                f"TabularVecEnv({args.n_envs}) alone, random actions",
                args.n_envs,
                args.steps,
                lambda e=env_id: tabular_vec_env_alone(e, args.steps, args.n_envs),
            ),
        ]
        naive_rate = None
        for name, n_envs, steps, run in cases:
            rate, rates = median_rate(run, steps, args.repeats)
            naive_rate = naive_rate or rate
            rows.append(
                {
                    "env": env_id,
                    "method": name,
                    "n_envs": n_envs,
                    "steps": steps,
                    "updates_per_s": rate,
                    "all_rates": rates,
                    "ratio_vs_naive": rate / naive_rate,
                }
            )
            print(f"  {env_id:16s} {name:45s} {rate:>12,.0f} /s  x{rate / naive_rate:6.1f}", file=sys.stderr)
    return {
        "benchmark": "tabular Q-learning updates per second",
        "mmrl_version": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gymnasium": gym.__version__,
        "machine": platform.machine(),
        "processor": platform.processor(),
        "repeats": args.repeats,
        "rows": rows,
    }


def markdown_table(result: dict[str, Any]) -> str:
    lines = [
        "| env | method | n_envs | updates/s (median) | x naive |",
        "|---|---|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['env']} | {row['method']} | {row['n_envs']} | {row['updates_per_s']:,.0f} | "
            f"{row['ratio_vs_naive']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", nargs="+", default=["FrozenLake-v1", "Taxi-v4"])
    parser.add_argument("--n-envs", type=int, default=4096, help="copies in the TabularVecEnv")
    parser.add_argument("--steps", type=int, default=4_000_000, help="updates per vectorised run")
    parser.add_argument("--naive-steps", type=int, default=200_000, help="updates per naive-loop run")
    parser.add_argument("--dummy-steps", type=int, default=20_000, help="updates per QLearning + DummyVecEnv(1) run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown here")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_envs, args.steps, args.naive_steps, args.dummy_steps, args.repeats = 256, 100_000, 5_000, 2_000, 1
    result = benchmark(args)
    table = markdown_table(result)
    print(table)
    if args.json:
        write_json(args.json, result)
    if args.markdown:
        write_text(args.markdown, table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
