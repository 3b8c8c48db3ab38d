"""Observation and demonstration collection for pre-training: random episodes and episodes the planner drives.

Random episodes show the rooms from everywhere; planner episodes (:func:`mmrl.engine.planner.plan`, run from each
episode's start) walk up to the named objects, so objects are also seen up close and every instruction is followed
to success. Planner episodes also give the (observation, action) pairs behaviour cloning learns from.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from mmrl.checks import check_int
from mmrl.engine.constants import Kind
from mmrl.limits import short_repr

EMPTY = int(Kind.EMPTY)

#: Largest collection (bytes of observations) held in memory; ``--frames`` is checked against it before collecting.
MAX_COLLECTION_BYTES = 3 << 30
#: Experts that drive demonstration episodes (:func:`expert_plan`).
DEMONSTRATORS = ("planner", "searcher")
#: Most relabelled (DAgger) rounds of a cloning; round ``r`` plays episodes seeded from ``seed + (r + 1) *``
#: :data:`ROUND_SEED_STRIDE`, clear of the demonstrations' seeds and below the held-out evaluation seeds (100000).
MAX_ROUNDS = 8
ROUND_SEED_STRIDE = 10_000

#: Chooses one step of an episode: ``decide(step, observation)`` gives the action to take, the row's action label
#: and whether an expert gave that label (rows without are not learnt from).
Decide = Callable[[int, dict[str, np.ndarray]], tuple[int, int, bool]]


@dataclass
class Collection:
    """Observations (one array per key, ``N`` rows), the action taken after each, whether a planner took it, the
    reward that action earned and whether the episode ended there (or the collection stopped in it)."""

    observations: dict[str, np.ndarray]
    actions_N: np.ndarray
    expert_N: np.ndarray
    rewards_N: np.ndarray
    ends_N: np.ndarray
    episodes: int
    successes: int

    def __len__(self) -> int:
        return len(self.actions_N)

    def returns(self, gamma: float) -> np.ndarray:
        """The discounted return from each row to the end of its episode (float32). Nothing is bootstrapped past an
        episode's last row, whether it ended, timed out or was cut short by the collection's end."""
        returns_N = np.empty(len(self), dtype=np.float32)
        following = 0.0
        for row in range(len(self) - 1, -1, -1):
            if self.ends_N[row]:
                following = 0.0
            following = float(self.rewards_N[row]) + gamma * following
            returns_N[row] = following
        return returns_N


def has_planner(env: gym.Env) -> bool:
    """Whether ``env`` is one of mmrl's navigation envs, whose worlds the planner solves (question tasks are not)."""
    task = getattr(env.unwrapped, "task", None)
    return getattr(env.unwrapped, "batch", None) is not None and task is not None and not task.is_question


def check_rounds(rounds: int) -> int:
    """Returns ``rounds`` if it is an int in [0, :data:`MAX_ROUNDS`]; raises ``ValueError`` otherwise."""
    rounds = check_int("rounds", rounds, 0)
    if rounds > MAX_ROUNDS:
        raise ValueError(f"rounds must be at most {MAX_ROUNDS}, got {rounds}")
    return rounds


def check_demonstrator(demonstrator: str) -> str:
    """Returns ``demonstrator`` if it is one of :data:`DEMONSTRATORS`; raises ``ValueError`` otherwise."""
    if demonstrator not in DEMONSTRATORS:
        raise ValueError(f"unknown demonstrator {short_repr(demonstrator)}; valid choices: {', '.join(DEMONSTRATORS)}")
    return demonstrator


def expert_plan(env: gym.Env, demonstrator: str = "planner") -> list[int] | None:
    """The expert's action list from the env's current state (an mmrl env right after ``reset``), or ``None``.

    ``demonstrator="planner"``: :func:`mmrl.engine.planner.plan`, which reads the whole world. ``"searcher"``:
    :func:`mmrl.engine.searcher.search_plan` for the env's own view (it goes to objects once they are in view and
    searches for them otherwise, so a policy that sees only the view can copy it), falling back to the planner
    where the searcher has no plan (sub-goals other than "go to", a search that circles).
    """
    check_demonstrator(demonstrator)
    if not has_planner(env):
        return None
    unwrapped: Any = env.unwrapped
    return _plan(unwrapped, unwrapped.batch.world.layout(0), demonstrator)


def expert_action(env: gym.Env, demonstrator: str = "planner") -> int | None:
    """The expert's next action from the env's state mid-episode (whoever played it so far): the first action of
    its plan for the sub-goals not done yet, or ``None`` where it has none (nothing left, no plan, or the agent
    carries something, which a plan from the cells alone does not know)."""
    check_demonstrator(demonstrator)
    if not has_planner(env):
        return None
    unwrapped: Any = env.unwrapped
    world = unwrapped.batch.world
    layout = world.layout(0)
    layout.goals = layout.goals[int(world.stage_N[0]) :]
    if not layout.goals or int(world.carry_kind_N[0]) != EMPTY:
        return None
    actions = _plan(unwrapped, layout, demonstrator)
    return int(actions[0]) if actions else None


def _plan(unwrapped: Any, layout: Any, demonstrator: str) -> list[int] | None:
    from mmrl.engine.planner import plan
    from mmrl.engine.searcher import search_plan

    if demonstrator == "searcher":
        view = getattr(unwrapped, "observation_config", {})
        actions = search_plan(
            layout, view.get("view", "agent"), view.get("view_size", 7), max_steps=unwrapped.task.max_steps
        )
        if actions is not None:
            return actions
    return plan(layout)


def collect_relabelled(
    env: gym.Env,
    frames: int,
    act: Callable[[dict[str, np.ndarray], bool], int],
    seed: int = 0,
    demonstrator: str = "planner",
    progress: Callable[[int], None] | None = None,
) -> Collection:
    """Episodes that a learner plays, each observation labelled with the expert's action there (DAgger).

    ``act(observation, deterministic)`` picks the learner's actions: greedy in even episodes, sampled in odd ones, so
    the collection holds both the states greedy play loops in and those sampling wanders to. ``actions_N`` holds
    the expert's labels (:func:`expert_action`); ``expert_N`` is False where the expert had none (those rows are
    not to be learnt from). Rewards and ends are the learner's. Episode ``i`` is seeded ``seed + i``.

    Raises:
        ValueError: As :func:`collect`.
    """
    space = env.observation_space
    if not isinstance(space, gym.spaces.Dict):
        raise ValueError(f"relabelled collection needs Dict observations (image + instruction), got {space}")
    check_frames(space, frames)
    check_demonstrator(demonstrator)

    def start_episode(episode: int) -> Decide:
        deterministic = episode % 2 == 0

        def decide(step: int, observation: dict[str, np.ndarray]) -> tuple[int, int, bool]:
            label = expert_action(env, demonstrator)
            return act(observation, deterministic), label or 0, label is not None

        return decide

    return _run_episodes(env, space, frames, seed, start_episode, progress)


def check_frames(space: gym.spaces.Dict, frames: int) -> None:
    """Raises ``ValueError`` if ``frames`` observations of ``space`` would not fit :data:`MAX_COLLECTION_BYTES`."""
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive int, got {frames!r}")
    per_frame = sum(math.prod(sub.shape or ()) * np.dtype(sub.dtype).itemsize for sub in space.spaces.values())
    if frames * per_frame > MAX_COLLECTION_BYTES:
        raise ValueError(
            f"{frames} frames of {per_frame} bytes need {frames * per_frame / 2**30:.1f} GiB, more than the "
            f"{MAX_COLLECTION_BYTES / 2**30:.0f} GiB collection limit; pass fewer --frames"
        )


def collect(
    env: gym.Env,
    frames: int,
    seed: int = 0,
    planner_fraction: float = 0.5,
    progress: Callable[[int], None] | None = None,
    demonstrator: str = "planner",
) -> Collection:
    """Runs episodes until ``frames`` observations are gathered.

    Args:
        env: An mmrl env (Dict observations); other envs get random episodes only.
        frames: Observations to gather.
        seed: Seed of the first episode (episode ``i`` uses ``seed + i``) and of the random actions.
        planner_fraction: Share of episodes the planner drives (``1.0``: demonstrations only); the others take
            uniformly random actions.
        progress: Called with the number of new frames after each episode (e.g. a progress bar's ``update``).
        demonstrator: The expert of the planner-driven episodes: ``"planner"`` or ``"searcher"`` (:func:`expert_plan`).

    Raises:
        ValueError: For a non-Dict observation space, a bad ``frames``, a ``planner_fraction`` outside [0, 1] or an
            unknown ``demonstrator``.
    """
    space = env.observation_space
    if not isinstance(env.action_space, gym.spaces.Discrete):
        raise ValueError(f"collecting observations needs a Discrete action space, got {env.action_space}")
    n_actions = int(env.action_space.n)
    if not isinstance(space, gym.spaces.Dict):
        raise ValueError(f"pre-training needs Dict observations (image + instruction), got {space}")
    check_frames(space, frames)
    if not 0.0 <= planner_fraction <= 1.0:
        raise ValueError(f"planner_fraction must be in [0, 1], got {planner_fraction}")
    check_demonstrator(demonstrator)
    rng = np.random.default_rng(seed)

    def start_episode(episode: int) -> Decide:
        actions = expert_plan(env, demonstrator) if rng.random() < planner_fraction else None

        def decide(step: int, observation: dict[str, np.ndarray]) -> tuple[int, int, bool]:
            if actions is not None and step < len(actions):
                return int(actions[step]), int(actions[step]), True
            action = int(rng.integers(n_actions))
            return action, action, False

        return decide

    return _run_episodes(env, space, frames, seed, start_episode, progress)


def _run_episodes(
    env: gym.Env,
    space: gym.spaces.Dict,
    frames: int,
    seed: int,
    start_episode: Callable[[int], Decide],
    progress: Callable[[int], None] | None,
) -> Collection:
    """Plays episodes seeded ``seed + i`` until ``frames`` rows are stored; ``start_episode(i)``, called right after
    episode ``i``'s reset, gives the function that picks each of its steps. Each row holds the observation, the
    label (``actions_N``; ``expert_N`` False where no expert gave it), and the reward and end of the action taken."""
    buffers = {key: np.empty((frames, *(sub.shape or ())), dtype=sub.dtype) for key, sub in space.spaces.items()}
    labels_N = np.zeros(frames, dtype=np.int64)
    labelled_N = np.zeros(frames, dtype=bool)
    rewards_N = np.zeros(frames, dtype=np.float32)
    ends_N = np.zeros(frames, dtype=bool)
    count = episodes = successes = 0
    while count < frames:
        observation, _ = env.reset(seed=seed + episodes)
        decide = start_episode(episodes)
        episodes += 1
        start, done = count, False
        while not done and count < frames:
            action, labels_N[count], labelled_N[count] = decide(count - start, observation)
            for key, buffer in buffers.items():
                buffer[count] = observation[key]
            observation, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            rewards_N[count] = float(reward)
            successes += bool(done and info.get("is_success", False))
            count += 1
        ends_N[count - 1] = True  # the episode ended, or the collection stopped in it
        if progress is not None:
            progress(count - start)
    return Collection(buffers, labels_N, labelled_N, rewards_N, ends_N, episodes, successes)


def make_env(env_id: str, env_kwargs: dict[str, Any]) -> gym.Env:
    """``gym.make(env_id, **env_kwargs)`` for a registered mmrl id (checked first)."""
    import mmrl  # noqa: F401  (registers the envs)
    from mmrl.envs import check_env_id

    check_env_id(env_id)
    return gym.make(env_id, **env_kwargs)
