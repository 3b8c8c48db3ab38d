"""``mmrl envs``: the registered environments with their spaces and descriptions (no torch import)."""

from __future__ import annotations

import argparse
import fnmatch

__all__ = ["register", "run"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``envs`` subcommand."""
    parser = subparsers.add_parser("envs", help="list the registered mmrl environments")
    parser.add_argument("pattern", nargs="?", default="*", help="shell pattern on the id, e.g. 'mmrl/GoTo-*'")
    parser.add_argument("--no-spaces", action="store_true", help="skip building each env to show its spaces")
    parser.set_defaults(run=run)


def _spaces(env_id: str) -> tuple[str, str]:
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        obs = env.observation_space
        if isinstance(obs, gym.spaces.Dict):
            observation = ", ".join(f"{key}: {tuple(space.shape or ())}" for key, space in obs.spaces.items())
        else:
            observation = f"{type(obs).__name__}{tuple(obs.shape or ())}"
        action = env.action_space
        action_text = f"Discrete({action.n})" if isinstance(action, gym.spaces.Discrete) else str(action)
        return observation, action_text
    finally:
        env.close()


def run(args: argparse.Namespace) -> int:
    """Print the table."""
    from mmrl.envs.registration import ENTRIES

    entries = [entry for entry in ENTRIES if fnmatch.fnmatchcase(entry.env_id, args.pattern)]
    if not entries:
        raise ValueError(f"no environment matches {args.pattern!r}; run 'mmrl envs' to list them all")
    rows = [("ID", "FAMILY", "OBSERVATION", "ACTIONS", "DESCRIPTION")]
    for entry in entries:
        observation, action = ("-", "-") if args.no_spaces else _spaces(entry.env_id)
        rows.append((entry.env_id, entry.family, observation, action, entry.description))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)) + "  " + row[4])
    return 0
