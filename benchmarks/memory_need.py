"""Which tasks a reactive policy cannot follow: ambiguity of the planner's demonstrations given one observation.

A reactive policy (PPO's ``MultiInputPolicy``) chooses its action from the current observation alone: the
egocentric view and the instruction. This script lets the planner (:func:`mmrl.engine.planner.plan`) solve
``--frames`` observations' worth of episodes of each env and groups the frames by what the policy sees (the
symbolic view and the instruction's sub-goals). Where one observation is followed by different planner actions, no
reactive policy can copy the planner there; the share of frames such a policy must get wrong (every frame whose
action is not its observation's most frequent one) is a lower bound on its disagreement with the planner.

Shortest-path ties give every task some ambiguity (two equally short ways round an object); a task that needs
memory shows far more. In ``mmrl/Sequence-*`` the view does not tell whether the first target has been reached, so
the same view and instruction come before the first sub-goal (go to it) and after it (go to the other one).

Run ``python benchmarks/memory_need.py --help``; ``--quick`` uses 3,000 frames per env.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import gymnasium as gym

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import mmrl  # noqa: F401  (registers the envs)
from benchmarks.common import Table, add_output_args, report
from mmrl.pretrain.collect import expert_plan, has_planner

ENVS = ("mmrl/GoTo-5x5-v0", "mmrl/PickUp-5x5-v0", "mmrl/Sequence-5x5-v0")


Key = tuple[bytes, tuple[tuple[int, int, int], ...]]


def planner_frames(env_id: str, frames: int, seed: int) -> tuple[list[tuple[Key, int, int, int]], int, int]:
    """(observation key, planner action, episode, sub-goals done) for ``frames`` planner frames; episodes; successes.

    The key is the symbolic view plus the instruction's sub-goals (its meaning: a policy that reads perfectly
    sees paraphrases of one instruction as the same instruction).
    """
    env = gym.make(env_id, image_mode="symbolic")
    if not has_planner(env):
        env.close()
        raise ValueError(f"the planner cannot solve {env_id} (question tasks have no plan); pick a navigation env")
    rows: list[tuple[Key, int, int, int]] = []
    episodes = successes = 0
    while len(rows) < frames:
        observation, _ = env.reset(seed=seed + episodes)
        episodes += 1
        world = env.unwrapped.batch.world  # type: ignore[attr-defined]
        layout = world.layout(0)
        goals = tuple((int(goal.verb), int(goal.kind), int(goal.colour)) for goal in layout.goals)
        actions = expert_plan(env)
        if actions is None:  # a rare world the planner's stricter route rules miss: skip it
            continue
        for action in actions:
            rows.append(((observation["image"].tobytes(), goals), int(action), episodes, int(world.stage_N[0])))
            observation, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                successes += bool(info.get("is_success", False))
                break
    env.close()
    return rows[:frames], episodes, successes


def ambiguity(env_id: str, frames: int, seed: int) -> dict[str, float]:
    """Planner frames of ``env_id`` grouped by observation: shares of ambiguous frames and of forced errors."""
    rows, episodes, successes = planner_frames(env_id, frames, seed)
    actions: dict[Key, Counter[int]] = defaultdict(Counter)
    by_stage: dict[Key, dict[int, Counter[int]]] = defaultdict(lambda: defaultdict(Counter))
    for key, action, _, stage in rows:
        actions[key][action] += 1
        by_stage[key][stage][action] += 1
    ambiguous = sum(sum(counts.values()) for counts in actions.values() if len(counts) > 1)
    touched = {episode for key, _, episode, _ in rows if len(actions[key]) > 1}
    seen = {episode for _, _, episode, _ in rows}
    # observations whose planner action depends on the progress made (the most frequent action differs by stage)
    staged = {
        key for key, stages in by_stage.items() if len({counts.most_common(1)[0][0] for counts in stages.values()}) > 1
    }
    forced = sum(sum(counts.values()) - max(counts.values()) for counts in actions.values())
    return {
        "episodes": episodes,
        "success": successes / max(episodes, 1),
        "observations": len(actions),
        "ambiguous": ambiguous / len(rows),
        "forced": forced / len(rows),
        "episodes touched": len(touched) / len(seen),
        "staged": sum(1 for key, *_ in rows if key in staged) / len(rows),
    }


def main(argv: list[str] | None = None) -> Table:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30_000, help="planner frames per env (default 30,000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode (default 0)")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), help=f"env ids (default: {' '.join(ENVS)})")
    add_output_args(parser, default_repeats=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.frames = 3_000
    table = Table(
        f"Planner demonstrations grouped by what a reactive policy sees (symbolic view + the instruction's "
        f"sub-goals), "
        f"{args.frames:,} frames per env, episodes from seed {args.seed}",
        [
            "env",
            "episodes",
            "planner success",
            "distinct observations",
            "ambiguous frames",
            "forced errors",
            "episodes with an ambiguous frame",
            "frames whose action depends on progress",
        ],
    )
    for env_id in args.envs:
        stats = ambiguity(env_id, args.frames, args.seed)
        table.add(
            env=env_id,
            episodes=stats["episodes"],
            **{
                "planner success": stats["success"],
                "distinct observations": stats["observations"],
                "ambiguous frames": stats["ambiguous"],
                "forced errors": stats["forced"],
                "episodes with an ambiguous frame": stats["episodes touched"],
                "frames whose action depends on progress": stats["staged"],
            },
        )
    table.notes.append(
        "ambiguous frames: share of frames whose observation is followed by more than one planner action; forced "
        "errors: share of frames any reactive policy must disagree with the planner on (a lower bound); frames whose "
        "action depends on progress: their observation comes before and after a sub-goal is reached, with a different "
        "most frequent planner action (only a policy with memory can tell the two apart)."
    )
    report(args, [table], "Memory need (planner demonstrations)")
    return table


if __name__ == "__main__":
    main()
