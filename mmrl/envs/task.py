"""A task family: how a level is laid out and what the instruction asks. The environment is a template method
over it: :meth:`Task.generate` samples layouts until the planner proves one solvable."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from mmrl.checks import check_int
from mmrl.engine.constants import DIRECTION_DELTAS, PICKABLE_KINDS, Direction, Kind
from mmrl.engine.planner import faces_first_goal, is_solvable
from mmrl.engine.rules import WRONG_OBJECT_RULES
from mmrl.engine.world import Layout

MAX_GENERATION_ATTEMPTS = 1000
_EMPTY = int(Kind.EMPTY)
N_DIRECTIONS = len(Direction)


class Task(ABC):
    """Base class of the task families.

    Args:
        height: Grid rows, walls included.
        width: Grid columns, walls included.
        max_steps: Episode length limit (truncation).
        n_actions: Number of actions (a prefix of :class:`~mmrl.engine.constants.Action`, or answers).
        is_question: One-step question task: actions are answers, no navigation.
        wrong_object: ``"fail"`` (default): facing a key, ball or box the instruction does not name (yet), or
            toggling a door other than the one to open, ends the episode as a failure, so a policy that ignores
            the instruction cannot succeed by trying every object; ``"continue"``: the agent may go on (only a
            wrong pick-up fails). See :mod:`mmrl.engine.rules`.
    """

    def __init__(
        self,
        height: int,
        width: int,
        max_steps: int,
        n_actions: int,
        is_question: bool = False,
        wrong_object: str = "fail",
    ) -> None:
        for name, value, low in (("height", height, 3), ("width", width, 3), ("max_steps", max_steps, 1)):
            check_int(name, value, low)
        if not isinstance(wrong_object, str) or wrong_object not in WRONG_OBJECT_RULES:
            raise ValueError(
                f"wrong_object must be one of {WRONG_OBJECT_RULES} ('fail': a wrong object ends the episode as a "
                f"failure), got {wrong_object!r}"
            )
        self.wrong_object = wrong_object
        self.height = int(height)
        self.width = int(width)
        self.max_steps = int(max_steps)
        self.n_actions = n_actions
        self.is_question = is_question

    #: Instructions of a fixed level (for the compact state's ``mission_index``); one for generated levels.
    n_missions = 1

    def generate(self, rng: np.random.Generator) -> Layout:
        """A new layout, guaranteed solvable (every sub-goal's object is reachable, under ``wrong_object="fail"``
        without facing a wrong object; see ``is_solvable``) and not
        already solved (the agent does not start facing its first target) and, with ``wrong_object="fail"``, not
        one where the agent starts facing an object (it could be a wrong one)."""
        for _ in range(MAX_GENERATION_ATTEMPTS):
            layout = self.sample_layout(rng)
            if self.is_question:
                return layout
            if (
                is_solvable(layout, wrong_object_fails=self.wrong_object == "fail")
                and not faces_first_goal(layout)
                and not (self.wrong_object == "fail" and faces_object(layout))
            ):
                return layout
        raise RuntimeError(f"{type(self).__name__} found no solvable layout in {MAX_GENERATION_ATTEMPTS} attempts")

    @abstractmethod
    def sample_layout(self, rng: np.random.Generator) -> Layout:
        """One random layout (it may be unsolvable; :meth:`generate` checks)."""


def faces_object(layout: Layout) -> bool:
    """Whether the agent starts facing a key, ball or box."""
    row, col = np.asarray(layout.agent_pos) + DIRECTION_DELTAS[layout.agent_dir]
    return int(layout.kind_HW[row, col]) in PICKABLE_KINDS


def random_empty_cells(layout: Layout, rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """``count`` distinct empty cells, uniformly at random."""
    rows, cols = np.nonzero(layout.kind_HW == _EMPTY)
    if len(rows) < count:
        raise ValueError(f"the grid has {len(rows)} empty cells, {count} are needed: use a larger size")
    chosen = rng.permutation(len(rows))[:count].tolist()
    rows, cols = rows.tolist(), cols.tolist()
    return [(rows[i], cols[i]) for i in chosen]


def place_agent(layout: Layout, rng: np.random.Generator) -> None:
    """Put the agent on a random empty cell with a random heading."""
    (layout.agent_pos,) = random_empty_cells(layout, rng, 1)
    layout.agent_dir = int(rng.integers(N_DIRECTIONS))
