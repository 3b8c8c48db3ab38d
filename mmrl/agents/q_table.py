"""The action-value table(s) of :class:`~mmrl.agents.QLearning`: rows found by a state index, epsilon-greedy
actions, and the batched TD update.

``Discrete`` observations index the table directly; every other observation space goes through
:class:`~mmrl.agents.state_indexer.StateIndexer` (stable digests), and the table grows on demand up to
``max_states`` rows.

Update rule, for a transition ``(s, a, r, s')`` (Watkins 1989; Watkins & Dayan 1992; Sutton & Barto 2018, eq. 6.8)::

    Q(s, a) <- Q(s, a) + alpha * [r + gamma * (1 - terminated) * max_a' Q(s', a') - Q(s, a)]

With ``double_q=True`` two tables are kept and each transition updates one of them, chosen by a fair coin, with
the other table evaluating the first one's greedy action (van Hasselt 2010, "Double Q-learning", NeurIPS)::

    Q_A(s, a) <- Q_A(s, a) + alpha * [r + gamma * (1 - terminated) * Q_B(s', argmax_a' Q_A(s', a')) - Q_A(s, a)]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.agents.state_indexer import DiscreteStateIndexer, StateIndexer, make_state_indexer
from mmrl.agents.table_update import greedy_actions, sequential_update
from mmrl.agents.vec_env_adapter import stack_observations

__all__ = ["INITIAL_HASHED_ROWS", "QTable"]

#: Rows allocated at first for a hashed (non-``Discrete``) state table; the capacity doubles as states are found.
INITIAL_HASHED_ROWS = 1024


class QTable:
    """One action-value table (two for Double Q-learning) with its visit counts and state index.

    Args:
        observation_space: The observations whose states index the rows.
        n_actions: Number of (Discrete) actions: the columns.
        double_q: Keep two tables (van Hasselt 2010) instead of one.
        initial_q_value: Value of unvisited entries.
        max_states: Largest number of rows of a hashed state table.
    """

    def __init__(
        self, observation_space: spaces.Space, n_actions: int, double_q: bool, initial_q_value: float, max_states: int
    ) -> None:
        self.n_actions = n_actions
        self.double_q = double_q
        self.initial_q_value = initial_q_value
        self.max_states = max_states
        self.indexer: DiscreteStateIndexer | StateIndexer = make_state_indexer(observation_space, max_states)
        initial_rows = (
            self.indexer.n_states
            if isinstance(self.indexer, DiscreteStateIndexer)
            else min(INITIAL_HASHED_ROWS, max_states)
        )
        self.tables: list[np.ndarray] = [
            np.full((initial_rows, n_actions), initial_q_value, dtype=np.float64) for _ in range(2 if double_q else 1)
        ]
        self.visits = np.zeros((initial_rows, n_actions), dtype=np.int64)

    @property
    def n_states(self) -> int:
        """Number of rows in use."""
        return self.indexer.n_states

    def rows(self, observations: Any, add: bool) -> np.ndarray:
        """Row of each observation of a batch (``-1`` for unseen ones unless ``add``, which grows the table)."""
        rows = self.indexer.index(observations, add=add)
        if add and self.indexer.n_states > self.visits.shape[0]:
            self._grow(self.indexer.n_states)
        return rows

    def _grow(self, needed_rows: int) -> None:
        capacity = self.visits.shape[0]
        new_capacity = min(self.max_states, max(needed_rows, 2 * capacity))
        extra = new_capacity - capacity
        self.tables = [
            np.concatenate([table, np.full((extra, self.n_actions), self.initial_q_value)]) for table in self.tables
        ]
        self.visits = np.concatenate([self.visits, np.zeros((extra, self.n_actions), dtype=np.int64)])

    def behaviour_values(self, rows: np.ndarray) -> np.ndarray:
        """Values that actions are chosen by: ``Q`` (``Q_A + Q_B`` for Double Q) of ``rows``."""
        if self.double_q:
            return self.tables[0][rows] + self.tables[1][rows]
        return self.tables[0][rows]

    def explore_actions(self, rows: np.ndarray, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Epsilon-greedy with seeded random tie-breaking among greedy actions.

        One uniform ``u`` per env decides both whether to explore (``u < epsilon``) and, if so, which action
        (``floor(u / epsilon * n_actions)``, uniform given ``u < epsilon``).
        """
        q_values = self.behaviour_values(rows)
        is_best = q_values == q_values.max(axis=1, keepdims=True)
        if np.count_nonzero(is_best) == rows.size:
            actions = np.argmax(q_values, axis=1)
        else:
            actions = np.argmax(np.where(is_best, rng.random(q_values.shape), -1.0), axis=1)
        if epsilon > 0.0:
            if epsilon > 1.0:  # a custom Schedule left [0, 1]: sampling would skip the high actions
                raise ValueError(f"exploration rate {epsilon} is above 1; the exploration schedule must stay in [0, 1]")
            uniforms = rng.random(rows.size)
            explore = uniforms < epsilon
            if explore.any():
                random_actions = np.minimum(
                    (uniforms[explore] * (self.n_actions / epsilon)).astype(np.int64), self.n_actions - 1
                )
                actions[explore] = random_actions
        return actions

    def _td_targets(
        self, rewards: np.ndarray, next_rows: np.ndarray, bootstrap: np.ndarray, table: int, gamma: float
    ) -> np.ndarray:
        if self.double_q:
            chooser, evaluator = self.tables[table], self.tables[1 - table]
            next_actions = greedy_actions(chooser[next_rows])
            next_values = evaluator[next_rows, next_actions]
        else:
            next_values = self.tables[0][next_rows].max(axis=1)
        return rewards + gamma * np.where(bootstrap, next_values, 0.0)

    def update(
        self,
        rows: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_rows: np.ndarray,
        bootstrap: np.ndarray | bool,
        alpha: float,
        gamma: float,
        rng: np.random.Generator,
    ) -> None:
        """Applies a batch of transitions (Double Q: each to one table, chosen by a fair coin from ``rng``)."""
        visits = self.visits.reshape(-1)
        bootstrap_B = np.asarray(bootstrap)
        if not self.double_q:
            targets = self._td_targets(rewards, next_rows, bootstrap_B, 0, gamma)
            unique_keys, counts = sequential_update(self.tables[0], rows, actions, targets, alpha)
            visits[unique_keys] += counts
            return
        update_a = rng.random(rows.size) < 0.5
        targets = np.where(
            update_a,
            self._td_targets(rewards, next_rows, bootstrap_B, 0, gamma),
            self._td_targets(rewards, next_rows, bootstrap_B, 1, gamma),
        )
        for table, selected in ((0, update_a), (1, ~update_a)):
            if selected.any():
                unique_keys, counts = sequential_update(
                    self.tables[table], rows[selected], actions[selected], targets[selected], alpha
                )
                visits[unique_keys] += counts

    def bootstrap_rows(
        self, observation_space: spaces.Space, new_rows: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows to bootstrap from and whether to bootstrap, for a step in which some episode finished: from
        ``new_obs`` while the episode runs, from the terminal observation on truncation, not at all on termination."""
        finished = np.flatnonzero(dones).tolist()
        truncated = [
            i for i in finished if infos[i].get("TimeLimit.truncated", False) and "terminal_observation" in infos[i]
        ]
        bootstrap = ~np.asarray(dones, dtype=bool)
        next_rows = new_rows
        if truncated:
            next_rows = new_rows.copy()
            terminal = stack_observations(observation_space, [infos[i]["terminal_observation"] for i in truncated])
            next_rows[truncated] = self.rows(terminal, add=True)
            bootstrap[truncated] = True
        return next_rows, bootstrap

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The rows in use as named arrays: ``q_table`` [``q_table_b``] and ``visit_counts`` (the state index
        saves its own, ``indexer.to_arrays()``)."""
        n_states = self.n_states
        arrays: dict[str, np.ndarray] = {"q_table": self.tables[0][:n_states]}
        if self.double_q:
            arrays["q_table_b"] = self.tables[1][:n_states]
        arrays["visit_counts"] = self.visits[:n_states]
        return arrays

    def load_arrays(self, arrays: dict[str, np.ndarray], n_states: int) -> None:
        """Restores what :meth:`to_arrays` and the state index's ``to_arrays`` wrote.

        Raises:
            ValueError: For a missing array, a wrong shape or dtype, or a table holding NaN or infinite values.
        """
        expected_tables = ["q_table", "q_table_b"] if self.double_q else ["q_table"]
        for name in [*expected_tables, "visit_counts"]:
            array = arrays.get(name)
            if array is None:
                raise ValueError(f"missing array {name!r}")
            if array.shape != (n_states, self.n_actions):
                raise ValueError(f"array {name!r} has shape {array.shape}, expected {(n_states, self.n_actions)}")
        for name in expected_tables:
            if not np.issubdtype(arrays[name].dtype, np.floating):
                raise ValueError("Q-tables must be floating point")
            if not bool(np.isfinite(arrays[name]).all()):
                raise ValueError(
                    f"array {name!r} holds NaN or infinite action values; the file is damaged (QLearning never "
                    f"saves them): retrain, or load an earlier checkpoint"
                )
        if int(arrays["visit_counts"].min(initial=0)) < 0:
            raise ValueError("array 'visit_counts' holds negative counts")
        self.indexer.load_arrays(arrays, n_states)
        capacity = max(n_states, self.visits.shape[0])
        self.tables = [
            np.concatenate(
                [arrays[name].astype(np.float64), np.full((capacity - n_states, self.n_actions), self.initial_q_value)]
            )
            for name in expected_tables
        ]
        self.visits = np.concatenate(
            [arrays["visit_counts"].astype(np.int64), np.zeros((capacity - n_states, self.n_actions), dtype=np.int64)]
        )
