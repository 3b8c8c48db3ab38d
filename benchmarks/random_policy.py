"""Success rate of a uniformly random policy on every registered mmrl environment (the README's table).

python benchmarks/random_policy.py [--episodes 500]
"""

from __future__ import annotations

import argparse

import numpy as np

import mmrl
from mmrl.envs import ENTRIES


def random_success(env_id: str, episodes: int, seed: int = 1000, n_envs: int = 64) -> float:
    venv = mmrl.make_vec_env(env_id, n_envs=n_envs, seed=seed)
    venv.reset()
    rng = np.random.default_rng(0)
    outcomes: list[bool] = []
    while len(outcomes) < episodes:
        _, _, _, infos = venv.step(rng.integers(venv.action_space.n, size=n_envs))
        outcomes += [info["is_success"] for info in infos if "is_success" in info]
    return float(np.mean(outcomes[:episodes]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=500)
    args = parser.parse_args()
    print("| id | task | random-policy success |")
    print("|---|---|---|")
    for entry in ENTRIES:
        print(f"| `{entry.env_id}` | {entry.description} | {random_success(entry.env_id, args.episodes):.2f} |")


if __name__ == "__main__":
    main()
