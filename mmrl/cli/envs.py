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


#: Widest line ``mmrl envs`` prints.
LINE_WIDTH = 100


def _describe(env_id: str) -> tuple[str, str]:
    """``(observation, actions)`` texts: the Dict keys with their shapes, and the action names."""
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        obs = env.observation_space
        if isinstance(obs, gym.spaces.Dict):
            observation = " + ".join(f"{key} {tuple(space.shape or ())}" for key, space in obs.spaces.items())
        else:
            observation = f"{type(obs).__name__}{tuple(obs.shape or ())}"
        names = tuple(getattr(env.unwrapped, "action_names", ()) or ())
        action = env.action_space
        if names:
            actions = f"{len(names)} actions: {', '.join(names)}"
        elif isinstance(action, gym.spaces.Discrete):
            actions = f"Discrete({action.n})"
        else:
            actions = str(action)
        return observation, actions
    finally:
        env.close()


def run(args: argparse.Namespace) -> int:
    """Print one entry per env: the id, family and spaces, then the action names and the description, each
    wrapped to :data:`LINE_WIDTH` characters."""
    import textwrap

    from mmrl.envs.registration import ENTRIES

    entries = [entry for entry in ENTRIES if fnmatch.fnmatchcase(entry.env_id, args.pattern)]
    if not entries:
        raise ValueError(f"no environment matches {args.pattern!r}; run 'mmrl envs' to list them all")
    indent = " " * 4
    for index, entry in enumerate(entries):
        if index:
            print()
        if args.no_spaces:
            print(f"{entry.env_id}  [{entry.family}]")
        else:
            observation, actions = _describe(entry.env_id)
            print(f"{entry.env_id}  [{entry.family}]  {observation}")
            print(textwrap.fill(actions, LINE_WIDTH, initial_indent=indent, subsequent_indent=indent * 2))
        print(textwrap.fill(entry.description, LINE_WIDTH, initial_indent=indent, subsequent_indent=indent))
    return 0
