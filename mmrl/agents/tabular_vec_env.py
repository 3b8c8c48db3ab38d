"""A NumPy-batched SB3 ``VecEnv`` over N copies of a finite MDP given by a toy-text transition table ``P``.

Gymnasium's toy-text environments (FrozenLake, Taxi, CliffWalking) define their dynamics by a table
``P[s][a] = [(probability, next_state, reward, terminated), ...]`` and an ``initial_state_distrib``; their
``step`` draws one outcome with ``categorical_sample`` (the first outcome whose cumulative probability exceeds a
uniform draw). :class:`TabularVecEnv` packs that table into dense arrays and steps all N copies with a handful of
NumPy operations, so a tabular learner is no longer bound by Gymnasium's per-step Python overhead. It applies the
same sampling rule, the same initial-state distribution and the same time limit (``max_episode_steps``, from the
env's spec by default), so the transition distribution is the original env's; only the random streams differ.

SB3 ``VecEnv`` semantics: finished copies are reset automatically, the returned observation is the first of the
next episode, ``infos[i]["terminal_observation"]`` holds the last one and ``infos[i]["TimeLimit.truncated"]``
says whether the episode was cut by the time limit rather than terminated. Finished episodes also get a
Monitor-style ``infos[i]["episode"] = {"r": return, "l": length, "t": seconds since creation}``.

References:
    Brockman et al. (2016), "OpenAI Gym" (toy-text ``DiscreteEnv`` table format); Towers et al. (2024),
    "Gymnasium: A Standard Interface for Reinforcement Learning Environments"; Raffin et al. (2021),
    "Stable-Baselines3: Reliable Reinforcement Learning Implementations", JMLR 22 (``VecEnv`` API).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from itertools import repeat, starmap
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

__all__ = ["TabularMDP", "TabularVecEnv"]

TransitionTable = Mapping[int, Mapping[int, Sequence[tuple[float, int, float, bool]]]]


class TabularMDP:
    """Dense arrays of a finite MDP: ``S`` states, ``A`` actions, at most ``K`` outcomes per ``(s, a)``.

    Attributes:
        cumulative_probabilities: ``(S, A, K)`` float64, cumulative outcome probabilities, the last real outcome
            and the padding set to exactly 1.0.
        probabilities: ``(S, A, K)`` float64 outcome probabilities (0 for padding).
        next_states, rewards, terminated: ``(S, A, K)`` outcome arrays (padding repeats the last real outcome).
        initial_cumulative: ``(S,)`` cumulative initial-state distribution (last entry 1.0).
        flat_*: The same arrays reshaped to ``(S * A * K,)`` (``(S * A, K)`` for the cumulative probabilities),
            indexed by ``(s * A + a) * K + k``.
    """

    def __init__(self, transitions: TransitionTable, initial_state_distribution: Sequence[float] | np.ndarray) -> None:
        n_states = len(transitions)
        if n_states == 0 or sorted(transitions) != list(range(n_states)):
            raise ValueError("transition table must have states 0..S-1 as keys")
        n_actions = len(transitions[0])
        if any(sorted(transitions[s]) != list(range(n_actions)) for s in range(n_states)):
            raise ValueError(f"every state of the transition table must have actions 0..{n_actions - 1}")
        max_outcomes = max(len(outcomes) for row in transitions.values() for outcomes in row.values())
        shape = (n_states, n_actions, max_outcomes)
        self.probabilities = np.zeros(shape, dtype=np.float64)
        self.next_states = np.zeros(shape, dtype=np.int64)
        self.rewards = np.zeros(shape, dtype=np.float64)
        self.terminated = np.zeros(shape, dtype=np.bool_)
        for state in range(n_states):
            for action in range(n_actions):
                outcomes = transitions[state][action]
                if not outcomes:
                    raise ValueError(f"P[{state}][{action}] has no outcomes")
                padded = list(outcomes) + [(0.0, *outcomes[-1][1:])] * (max_outcomes - len(outcomes))
                for k, (probability, next_state, reward, terminated) in enumerate(padded):
                    self.probabilities[state, action, k] = probability
                    self.next_states[state, action, k] = int(next_state)
                    self.rewards[state, action, k] = float(reward)
                    self.terminated[state, action, k] = bool(terminated)
        if self.next_states.min() < 0 or self.next_states.max() >= n_states:
            raise ValueError("transition table has next states outside 0..S-1")
        totals = self.probabilities.sum(axis=2)
        if not np.allclose(totals, 1.0, atol=1e-6):
            worst = np.unravel_index(np.argmax(np.abs(totals - 1.0)), totals.shape)
            raise ValueError(f"outcome probabilities of P[{worst[0]}][{worst[1]}] sum to {totals[worst]}, not 1")
        self.cumulative_probabilities = _exact_cumulative(
            self.probabilities, [len(o) for r in transitions.values() for o in r.values()]
        )
        initial = np.asarray(initial_state_distribution, dtype=np.float64).reshape(-1)
        if initial.shape != (n_states,) or not np.isclose(initial.sum(), 1.0, atol=1e-6) or initial.min() < 0:
            raise ValueError(f"initial state distribution must be {n_states} probabilities summing to 1")
        self.initial_probabilities = initial
        self.initial_cumulative = np.cumsum(initial)
        self.initial_cumulative[np.flatnonzero(initial)[-1] :] = 1.0
        self.n_states, self.n_actions, self.max_outcomes = shape
        self.deterministic = bool(max_outcomes == 1)
        self.flat_cumulative_probabilities = self.cumulative_probabilities.reshape(-1, max_outcomes)
        self.flat_next_states = self.next_states.reshape(-1)
        self.flat_rewards = self.rewards.reshape(-1)
        self.flat_terminated = self.terminated.reshape(-1)

    def expected_rewards(self) -> np.ndarray:
        """``(S, A)`` expected immediate reward."""
        return (self.probabilities * self.rewards).sum(axis=2)


def _exact_cumulative(probabilities: np.ndarray, lengths: list[int]) -> np.ndarray:
    cumulative = np.cumsum(probabilities, axis=2)
    lengths_array = np.asarray(lengths, dtype=np.int64).reshape(probabilities.shape[:2])
    outcome_index = np.arange(probabilities.shape[2])
    cumulative[outcome_index[None, None, :] >= lengths_array[..., None] - 1] = 1.0
    return cumulative


def _mdp_preserving_wrappers() -> tuple[type, ...]:
    """Wrapper classes that leave the MDP alone: ``gymnasium.make``'s own (checks, time limit, rendering), episode
    statistics, and auto-reset (which :class:`TabularVecEnv` does itself)."""
    from stable_baselines3.common.monitor import Monitor

    wrappers = gym.wrappers
    return (
        wrappers.TimeLimit,
        wrappers.OrderEnforcing,
        wrappers.PassiveEnvChecker,
        wrappers.Autoreset,
        wrappers.HumanRendering,
        wrappers.RenderCollection,
        wrappers.RecordEpisodeStatistics,
        Monitor,
    )


def _time_limits(env: gym.Env) -> list[int]:
    """``max_episode_steps`` of every ``TimeLimit`` in the wrapper chain of ``env``.

    Raises:
        ValueError: For a wrapper that may change the rewards, observations, actions or dynamics: the transition
            table ``P`` of the innermost env does not see it, so the copies would silently follow another MDP.
    """
    allowed = _mdp_preserving_wrappers()
    limits: list[int] = []
    layer = env
    while isinstance(layer, gym.Wrapper):
        if type(layer) not in allowed:
            names = ", ".join(sorted(cls.__name__ for cls in allowed))
            raise ValueError(
                f"TabularVecEnv.from_env copies the transition table `P` of the innermost env, so the wrapper "
                f"{type(layer).__module__}.{type(layer).__qualname__} around {env.unwrapped} would be silently "
                f"dropped (its rewards, observations or actions would not be the ones of the env you passed). Only "
                f"wrappers that leave the MDP unchanged are accepted ({names}). To learn on the wrapped env, pass it "
                f"to QLearning directly (QLearning(env) steps it through Gymnasium), or build a TabularMDP from a "
                f"transition table that includes the wrapper's effect"
            )
        if isinstance(layer, gym.wrappers.TimeLimit):
            limits.append(int(layer._max_episode_steps))
        layer = layer.env
    return limits


def _unwrap_toy_text(env: gym.Env) -> tuple[TransitionTable, np.ndarray]:
    base = env.unwrapped
    transitions = getattr(base, "P", None)
    initial = getattr(base, "initial_state_distrib", None)
    if transitions is None or initial is None:
        raise ValueError(
            f"{base} has no transition table `P` and `initial_state_distrib` (toy-text format); "
            "TabularVecEnv needs both"
        )
    if getattr(base, "fickle_passenger", False):
        raise ValueError(
            "Taxi with fickle_passenger=True has dynamics outside its table P; TabularVecEnv cannot copy it"
        )
    return transitions, np.asarray(initial, dtype=np.float64)


class TabularVecEnv(VecEnv):
    """SB3 ``VecEnv`` stepping ``num_envs`` copies of a :class:`TabularMDP` together with NumPy.

    Args:
        mdp: The MDP (see :meth:`from_env` to build one from a Gymnasium toy-text env or env id).
        num_envs: Number of copies.
        max_episode_steps: Time limit (truncation) per episode; None for no limit.
        seed: Seed of the single ``numpy.random.Generator`` that drives all copies.
    """

    render_mode: str | None = None

    def __init__(
        self, mdp: TabularMDP, num_envs: int, max_episode_steps: int | None = None, seed: int | None = None
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        super().__init__(num_envs, spaces.Discrete(mdp.n_states), spaces.Discrete(mdp.n_actions))
        self.mdp = mdp
        self.max_episode_steps = max_episode_steps
        self._rng = np.random.default_rng(seed)
        self._states = np.zeros(num_envs, dtype=np.int64)
        self._episode_steps = np.zeros(num_envs, dtype=np.int64)
        self._episode_returns = np.zeros(num_envs, dtype=np.float64)
        self._actions = np.zeros(num_envs, dtype=np.int64)
        self._created = time.monotonic()
        self._needs_reset = True

    @classmethod
    def from_env(
        cls,
        env: gym.Env | str,
        num_envs: int,
        max_episode_steps: int | str | None = "spec",
        seed: int | None = None,
        **make_kwargs: Any,
    ) -> TabularVecEnv:
        """Build from a toy-text env (or env id, made with ``gymnasium.make(env, **make_kwargs)``).

        The copies follow the transition table of the innermost env, so every wrapper around it must leave the
        MDP unchanged: the ones ``gymnasium.make`` adds (``TimeLimit``, ``OrderEnforcing``, ``PassiveEnvChecker``,
        ``HumanRendering``, ``RenderCollection``), ``Autoreset``, ``RecordEpisodeStatistics`` and SB3's
        ``Monitor``. Any other wrapper (``TransformReward``, observation or action wrappers, ...) raises
        ``ValueError`` instead of being silently dropped.

        Args:
            env: Env instance or id, e.g. ``"FrozenLake-v1"`` with ``is_slippery=False`` in ``make_kwargs``.
            num_envs: Number of copies.
            max_episode_steps: ``"spec"`` (default) takes the time limit of the env's ``TimeLimit`` wrapper(s)
                (the smallest if nested), else the env spec's (100 for FrozenLake 4x4, 200 for Taxi and FrozenLake
                8x8); an int or None overrides it.
            seed: Seed of the random stream.

        Raises:
            ValueError: If the env has no toy-text transition table, or a wrapper that may change the MDP.
        """
        if isinstance(env, str):
            env = gym.make(env, **make_kwargs)
        limits = _time_limits(env)
        transitions, initial = _unwrap_toy_text(env)
        if max_episode_steps == "spec":
            spec_limit = env.spec.max_episode_steps if env.spec is not None else None
            max_episode_steps = min(limits) if limits else spec_limit
        if isinstance(max_episode_steps, str):
            raise ValueError(f"max_episode_steps must be an int, None or 'spec', got {max_episode_steps[:50]!r}")
        return cls(TabularMDP(transitions, initial), num_envs, max_episode_steps=max_episode_steps, seed=seed)

    def _sample_initial(self, count: int) -> np.ndarray:
        uniforms = self._rng.random(count)
        return np.searchsorted(self.mdp.initial_cumulative, uniforms, side="right").astype(np.int64)

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Reseed the random stream at the next :meth:`reset` (SB3 semantics)."""
        return super().seed(seed)

    def reset(self) -> VecEnvObs:
        """Reset all copies; returns the ``(num_envs,)`` int64 initial states."""
        if self._seeds[0] is not None:
            self._rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self._states = self._sample_initial(self.num_envs)
        self._episode_steps[:] = 0
        self._episode_returns[:] = 0.0
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._needs_reset = False
        return self._states.copy()

    @property
    def states(self) -> np.ndarray:
        """Current state of every copy (copy of the internal array)."""
        return self._states.copy()

    def set_states(self, states: np.ndarray | int) -> None:
        """Put the copies in the given states and start new episodes there (exploring starts, tests).

        Args:
            states: One state for all copies or one per copy.

        Raises:
            ValueError: If a state is outside ``0..S-1``.
        """
        states_array = np.broadcast_to(np.asarray(states, dtype=np.int64), (self.num_envs,)).copy()
        if states_array.min() < 0 or states_array.max() >= self.mdp.n_states:
            raise ValueError(f"states outside 0..{self.mdp.n_states - 1}: {states_array}")
        self._states = states_array
        self._episode_steps[:] = 0
        self._episode_returns[:] = 0.0
        self._needs_reset = False

    def step_async(self, actions: np.ndarray) -> None:
        """Store the ``(num_envs,)`` actions for :meth:`step_wait`."""
        actions = np.asarray(actions).reshape(-1)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"expected {self.num_envs} actions, got shape {actions.shape}")
        self._actions = actions.astype(np.int64, copy=False)

    def step_wait(self) -> VecEnvStepReturn:
        """Step all copies: sample outcomes, auto-reset finished copies, return ``(obs, rewards, dones, infos)``."""
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        mdp, states, actions = self.mdp, self._states, self._actions
        if actions.min() < 0 or actions.max() >= mdp.n_actions:
            raise ValueError(f"actions outside Discrete({mdp.n_actions}): {actions}")
        # Flat indices into the (S * A * K,) outcome arrays: one index computation, then cheap 1-D takes.
        state_action = states * mdp.n_actions + actions
        if mdp.deterministic:
            flat = state_action
        else:
            uniforms = self._rng.random(self.num_envs)
            cumulative = mdp.flat_cumulative_probabilities[state_action]
            flat = state_action * mdp.max_outcomes + (cumulative <= uniforms[:, None]).sum(axis=1)
        next_states = mdp.flat_next_states.take(flat)
        rewards = mdp.flat_rewards.take(flat)
        terminated = mdp.flat_terminated.take(flat)
        self._episode_steps += 1
        self._episode_returns += rewards
        if self.max_episode_steps is None:
            dones = terminated
        else:
            dones = terminated | (self._episode_steps >= self.max_episode_steps)
        infos: list[dict[str, Any]] = list(starmap(dict, repeat((), self.num_envs)))  # fastest fresh dicts
        if dones.any():
            finished = np.flatnonzero(dones)
            elapsed = round(time.monotonic() - self._created, 6)
            # Python scalars via tolist(): indexing NumPy arrays element by element is several times slower.
            for i, last_state, was_terminated, episode_return, episode_length in zip(
                finished.tolist(),
                next_states[finished].tolist(),
                terminated[finished].tolist(),
                self._episode_returns[finished].tolist(),
                self._episode_steps[finished].tolist(),
                strict=True,
            ):
                infos[i] = {
                    "terminal_observation": last_state,
                    "TimeLimit.truncated": not was_terminated,
                    "episode": {"r": episode_return, "l": episode_length, "t": elapsed},
                }
            next_states = next_states.copy()
            next_states[finished] = self._sample_initial(finished.size)
            self._episode_steps[finished] = 0
            self._episode_returns[finished] = 0.0
        self._states = next_states
        return next_states.copy(), rewards.astype(np.float32), dones.copy(), infos

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attribute of this object, once per requested copy (the copies share everything)."""
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on this object (shared by all copies)."""
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method of this object once per requested copy."""
        return [getattr(self, method_name)(*method_args, **method_kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No Gymnasium wrappers are involved."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No rendering."""
        return [None for _ in self._get_indices(None)]
