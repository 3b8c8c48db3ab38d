"""Registration of every ``mmrl/...`` environment with Gymnasium (string entry points), and their catalogue."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from mmrl.checks import check_int
from mmrl.env_packages import ensure_registered
from mmrl.resources import level_files


@dataclass(frozen=True)
class EnvEntry:
    """One registered id: its constructor, arguments and a one-line description.

    ``max_episode_steps`` is the catalogue's episode length (the env's default ``max_steps``, listed by
    ``mmrl envs``). It is *not* registered with Gymnasium: the engine truncates at ``max_steps`` itself (as
    MiniGrid does), so ``gymnasium.make(id, max_steps=200)`` and ``gymnasium.make_vec(id, max_steps=200)`` both
    run 200 steps, and ``info["is_success"]`` is reported on the last step.
    """

    env_id: str
    entry_point: str
    vector_entry_point: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int = 1
    family: str = ""
    description: str = ""


def _entries() -> list[EnvEntry]:
    goto, pickup, open_, seq, vq, fixed = (
        ("mmrl.envs.goto:GoToEnv", "mmrl.envs.vector_env:make_goto"),
        ("mmrl.envs.pickup:PickUpEnv", "mmrl.envs.vector_env:make_pickup"),
        ("mmrl.envs.pickup:OpenEnv", "mmrl.envs.vector_env:make_open"),
        ("mmrl.envs.sequence:SequenceEnv", "mmrl.envs.vector_env:make_sequence"),
        ("mmrl.envs.visual_query:VisualQueryEnv", "mmrl.envs.vector_env:make_visual_query"),
        ("mmrl.envs.fixed_level:FixedLevelEnv", "mmrl.envs.vector_env:make_fixed_level"),
    )
    table: list[tuple[str, tuple[str, str], dict[str, Any], str, str]] = [
        ("mmrl/GoTo-5x5-v0", goto, {"size": 5, "n_distractors": 1, "max_steps": 25}, "GoTo",
         "go to the named object; 3x3 floor, 1 distractor"),
        ("mmrl/GoTo-v0", goto, {"size": 8, "n_distractors": 3, "max_steps": 64}, "GoTo",
         "go to the named object; 6x6 floor, 3 distractors"),
        ("mmrl/GoTo-12x12-v0", goto, {"size": 12, "n_distractors": 7, "max_steps": 144}, "GoTo",
         "go to the named object; 10x10 floor, 7 distractors"),
        ("mmrl/PickUp-5x5-v0", pickup, {"size": 5, "n_distractors": 1, "max_steps": 25}, "PickUp",
         "pick up the named object (facing or picking up a wrong one fails); 1 distractor"),
        ("mmrl/PickUp-v0", pickup, {"size": 8, "n_distractors": 3, "max_steps": 64}, "PickUp",
         "pick up the named object (facing or picking up a wrong one fails); 3 distractors"),
        ("mmrl/Open-v0", open_, {"size": 6, "n_doors": 2, "locked": False, "max_steps": 72}, "Open",
         "open the named door among 2 in the walls"),
        ("mmrl/Open-Locked-v0", open_, {"size": 6, "n_doors": 2, "locked": True, "max_steps": 144}, "Open",
         "fetch the right key, then unlock the named door"),
        ("mmrl/Sequence-5x5-v0", seq, {"size": 5, "n_distractors": 0, "max_steps": 50}, "Sequence",
         "go to two objects in the order given; no distractor"),
        ("mmrl/Sequence-v0", seq, {"size": 8, "n_distractors": 2, "max_steps": 128}, "Sequence",
         "go to two objects in the order given ('X, then Y', 'Y after you X'); 2 distractors"),
        ("mmrl/VisualQuery-v0", vq, {}, "VisualQuery", "one-step questions: count, colour, existence"),
        ("mmrl/VisualQuery-Colour-v0", vq, {"questions": ["colour"]}, "VisualQuery",
         "one-step: what colour is the <kind>"),
        ("mmrl/VisualQuery-Count-v0", vq, {"questions": ["count"]}, "VisualQuery",
         "one-step: how many <colour> <kind>s are there"),
        ("mmrl/VisualQuery-Exists-v0", vq, {"questions": ["exists"]}, "VisualQuery",
         "one-step: is there a <colour> <kind>"),
    ]  # fmt: skip
    # The table's max_steps equal the constructors' defaults (tests check it); they are kept out of the registered
    # kwargs so that a user's max_steps or max_episode_steps is the only one the constructor sees.
    entries = [
        EnvEntry(
            env_id,
            *points,
            {key: value for key, value in kwargs.items() if key != "max_steps"},
            kwargs.get("max_steps", 1),
            family,
            description,
        )
        for env_id, points, kwargs, family, description in table
    ]
    from mmrl.envs.level_file import parse_level

    for name, path in level_files().items():
        level = parse_level(path)
        entries.append(
            EnvEntry(
                f"mmrl/Level-{name}-v0",
                *fixed,
                {"level": name},
                level.max_steps,
                "Level",
                f"fixed level {path.name}: " + "; ".join(level.missions),
            )
        )
    return entries


ENTRIES: list[EnvEntry] = []


def register_envs() -> None:
    """Register every mmrl environment (idempotent).

    No ``max_episode_steps`` is registered: each environment truncates at its own ``max_steps``, so no
    Gymnasium ``TimeLimit`` cuts an episode short of an overridden ``max_steps``.
    """
    if ENTRIES:
        return
    ENTRIES.extend(_entries())
    for entry in ENTRIES:
        if entry.env_id not in gym.registry:
            gym.register(
                id=entry.env_id,
                entry_point=entry.entry_point,
                vector_entry_point=entry.vector_entry_point,
                kwargs=dict(entry.kwargs),
            )
    if "mmrl/Level-v0" not in gym.registry:
        gym.register(
            id="mmrl/Level-v0",
            entry_point="mmrl.envs.fixed_level:FixedLevelEnv",
            vector_entry_point="mmrl.envs.vector_env:make_fixed_level",
        )


def resolve_max_steps(kwargs: dict[str, Any], max_episode_steps: int | None) -> dict[str, Any]:
    """Constructor kwargs with Gymnasium's ``max_episode_steps`` mapped onto mmrl's ``max_steps``.

    Args:
        kwargs: The environment constructor's keyword arguments.
        max_episode_steps: Gymnasium's episode length argument, or ``None``.

    Returns:
        A copy of ``kwargs`` with ``max_steps`` set when ``max_episode_steps`` is given.

    Raises:
        TypeError: ``max_episode_steps`` is not an int.
        ValueError: ``max_episode_steps`` is below 1, or both are given and differ.
    """
    if max_episode_steps is None:
        return dict(kwargs)
    max_episode_steps = check_int("max_episode_steps", max_episode_steps, 1)
    max_steps = kwargs.get("max_steps")
    if max_steps is not None and max_steps != max_episode_steps:
        raise ValueError(
            f"max_steps={max_steps!r} and max_episode_steps={max_episode_steps!r} disagree; both set the episode "
            "length of an mmrl environment: pass only one of them"
        )
    return {**kwargs, "max_steps": max_episode_steps}


def env_ids() -> list[str]:
    """Every registered mmrl id, in catalogue order."""
    return [entry.env_id for entry in ENTRIES]


def check_env_id(env_id: str) -> None:
    """Raise a ``ValueError`` with a "did you mean" suggestion when ``env_id`` is not registered."""
    if not isinstance(env_id, str):
        raise TypeError(f"env_id must be a str such as 'mmrl/GoTo-v0', got {type(env_id).__name__}")
    if ":" in env_id:
        raise ValueError(
            f"env id {env_id[:80]!r} names a module to import (module:id); mmrl does not import modules named by an "
            "id: import it yourself, then pass the plain id"
        )
    ensure_registered(env_id)  # BabyAI-/MiniGrid-: imports minigrid, or says which extra to install
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"unknown environment id {env_id!r}: not registered with Gymnasium.{hint} Run 'mmrl envs' to list mmrl's "
        "environments; another package's ids need that package imported first (BabyAI-/MiniGrid- ids: mmrl imports "
        "minigrid itself)"
    )
