"""Success rate of a uniformly random policy on every registered mmrl environment (the README's table), next to
the best success a policy that ignores the instruction can have (generated families; see ``blind_bound``).

python benchmarks/random_policy.py [--episodes 500]

Each of ``episodes`` worlds (world ``i`` seeded ``1000 + i``) contributes exactly its first episode. Counting the
first ``episodes`` episodes to *finish* across the worlds instead would over-sample short episodes, and short
episodes are more often successes (a random walk that ends early mostly ended by reaching the goal).
"""

from __future__ import annotations

import argparse

import numpy as np

import mmrl
from mmrl.envs import ENTRIES


def random_success(env_id: str, episodes: int, seed: int = 1000) -> float:
    """Success rate of uniformly random actions over the first episode of ``episodes`` worlds.

    Args:
        env_id: A registered mmrl id.
        episodes: Number of episodes (one per world).
        seed: World ``i`` is seeded ``seed + i``.

    Returns:
        The fraction of those episodes that succeeded.
    """
    venv = mmrl.make_vec_env(env_id, n_envs=episodes, seed=seed)
    venv.reset()
    rng = np.random.default_rng(0)
    success = np.zeros(episodes, dtype=bool)
    finished = np.zeros(episodes, dtype=bool)
    while not finished.all():
        _, _, dones, infos = venv.step(rng.integers(venv.action_space.n, size=episodes))
        first = np.flatnonzero(dones & ~finished)  # later episodes of a world are ignored
        success[first] = [infos[i]["is_success"] for i in first]
        finished[first] = True
    venv.close()
    return float(success.mean())


def blind_bound(entry) -> str:
    """The best success of a policy that sees the scene but not the instruction, for the generated families.

    The scene does not tell which object is named (targets and distractors are distinct combinations drawn from
    the same split) and the first wrong object ends the episode, so the best such policy picks at random: among
    ``1 + n_distractors`` objects for GoTo and PickUp, among the ``k (k - 1)`` ordered pairs of ``k`` objects for
    Sequence, among the doors for Open. Questions (VisualQuery) and fixed levels get no figure here.
    """
    kwargs, family = entry.kwargs, entry.family
    if family in ("GoTo", "PickUp"):
        return f"{1 / (1 + kwargs['n_distractors']):.2f}"
    if family == "Sequence":
        k = 2 + kwargs["n_distractors"]
        return f"{1 / (k * (k - 1)):.2f}"
    if family == "Open":
        return f"{1 / kwargs['n_doors']:.2f}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=500)
    args = parser.parse_args()
    print("| id | task | random-policy success | best instruction-blind success |")
    print("|---|---|---|---|")
    for entry in ENTRIES:
        success = random_success(entry.env_id, args.episodes)
        print(f"| `{entry.env_id}` | {entry.description} | {success:.2f} | {blind_bound(entry)} |")


if __name__ == "__main__":
    main()
