"""The state of N gridworlds, held in NumPy arrays (one row per world).

A :class:`Layout` is one world as a level generator or a level file produces it; :meth:`WorldState.load_layout`
writes it into one row. Everything the rules need lives here, so a checkpoint of the arrays (:meth:`to_arrays`)
restores the worlds exactly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from mmrl.engine.constants import MAX_SUBGOALS, DoorState, Kind, Verb


@dataclass
class Goal:
    """One sub-goal: ``verb`` applied to the object of ``kind`` and ``colour``."""

    verb: Verb
    kind: int
    colour: int


@dataclass
class Layout:
    """One world before it enters the batch.

    Attributes:
        kind_HW: Object code per cell (:class:`~mmrl.engine.constants.Kind`).
        colour_HW: Colour code per cell.
        state_HW: Door state per cell (:class:`~mmrl.engine.constants.DoorState`), 0 elsewhere.
        agent_pos: ``(row, col)`` of the agent; the cell must be empty or an open door.
        agent_dir: Heading (:class:`~mmrl.engine.constants.Direction`).
        goals: Sub-goals to complete in order (navigation tasks), at most ``MAX_SUBGOALS``.
        answer: Index of the correct answer action (question tasks), ``-1`` otherwise.
        mission: The instruction text.
        mission_index: Index of the instruction among the level's instructions (fixed levels), else 0.
    """

    kind_HW: np.ndarray
    colour_HW: np.ndarray
    state_HW: np.ndarray
    agent_pos: tuple[int, int] = (1, 1)
    agent_dir: int = 0
    goals: list[Goal] = field(default_factory=list)
    answer: int = -1
    mission: str = ""
    mission_index: int = 0

    @classmethod
    def empty_room(cls, height: int, width: int) -> Layout:
        """A room of ``height`` x ``width`` cells, walls included."""
        kind_HW = _room_template(height, width).copy()
        zeros = np.zeros((height, width), np.uint8)
        return cls(kind_HW, zeros, zeros.copy())

    def place(self, row: int, col: int, kind: int, colour: int = 0, state: int = DoorState.OPEN) -> None:
        self.kind_HW[row, col] = kind
        self.colour_HW[row, col] = colour
        self.state_HW[row, col] = state


@functools.lru_cache(maxsize=32)
def _room_template(height: int, width: int) -> np.ndarray:
    kind_HW = np.full((height, width), Kind.EMPTY, dtype=np.uint8)
    kind_HW[[0, -1], :] = Kind.WALL
    kind_HW[:, [0, -1]] = Kind.WALL
    kind_HW.setflags(write=False)
    return kind_HW


#: WorldState arrays no image observation reads.
_NOT_VIEWED = ("goal_verb_NG", "goal_kind_NG", "goal_colour_NG", "n_goals_N", "step_count_N", "mission_index_N")


class WorldState:
    """N worlds of identical grid size, stored as arrays.

    Attributes:
        kind_NHW, colour_NHW, state_NHW: Cell contents (uint8).
        agent_pos_N2: Agent ``(row, col)`` (int64).
        agent_dir_N: Agent heading (int64).
        carry_kind_N, carry_colour_N: What the agent carries (``Kind.EMPTY`` = nothing).
        goal_verb_NG, goal_kind_NG, goal_colour_NG: Sub-goals (``G = MAX_SUBGOALS``).
        n_goals_N: Number of sub-goals; ``stage_N`` counts those completed.
        answer_N: Correct answer action for question tasks (``-1`` for navigation).
        step_count_N: Steps taken in the current episode.
        mission_index_N: Index of the instruction among a fixed level's instructions.
        visited_NHW: Cells the agent has stood on this episode (bool; drawn with ``show_visited``).
    """

    ARRAY_NAMES = (
        "kind_NHW",
        "colour_NHW",
        "state_NHW",
        "agent_pos_N2",
        "agent_dir_N",
        "carry_kind_N",
        "carry_colour_N",
        "goal_verb_NG",
        "goal_kind_NG",
        "goal_colour_NG",
        "n_goals_N",
        "stage_N",
        "answer_N",
        "step_count_N",
        "mission_index_N",
        "visited_NHW",
    )
    #: The arrays an image observation reads (all but the instruction's goals and the counters).
    VIEW_ARRAY_NAMES = tuple(name for name in ARRAY_NAMES if name not in _NOT_VIEWED)

    def __init__(self, n_worlds: int, height: int, width: int) -> None:
        n, g = n_worlds, MAX_SUBGOALS
        self.kind_NHW = np.full((n, height, width), Kind.WALL, dtype=np.uint8)
        self.colour_NHW = np.zeros((n, height, width), dtype=np.uint8)
        self.state_NHW = np.zeros((n, height, width), dtype=np.uint8)
        self.agent_pos_N2 = np.ones((n, 2), dtype=np.int64)
        self.agent_dir_N = np.zeros(n, dtype=np.int64)
        self.carry_kind_N = np.full(n, Kind.EMPTY, dtype=np.uint8)
        self.carry_colour_N = np.zeros(n, dtype=np.uint8)
        self.goal_verb_NG = np.zeros((n, g), dtype=np.uint8)
        self.goal_kind_NG = np.zeros((n, g), dtype=np.uint8)
        self.goal_colour_NG = np.zeros((n, g), dtype=np.uint8)
        self.n_goals_N = np.zeros(n, dtype=np.int64)
        self.stage_N = np.zeros(n, dtype=np.int64)
        self.answer_N = np.full(n, -1, dtype=np.int64)
        self.step_count_N = np.zeros(n, dtype=np.int64)
        self.mission_index_N = np.zeros(n, dtype=np.int64)
        self.visited_NHW = np.zeros((n, height, width), dtype=bool)
        self.missions: list[str] = [""] * n

    @property
    def n_worlds(self) -> int:
        return self.kind_NHW.shape[0]

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.kind_NHW.shape[1], self.kind_NHW.shape[2]

    def load_layout(self, i: int, layout: Layout) -> None:
        """Write ``layout`` into world ``i`` and start a new episode there."""
        if layout.kind_HW.shape != self.grid_shape:
            raise ValueError(f"layout grid {layout.kind_HW.shape} does not match the batch's {self.grid_shape}")
        if len(layout.goals) > MAX_SUBGOALS:
            raise ValueError(f"at most {MAX_SUBGOALS} sub-goals per instruction, got {len(layout.goals)}")
        self.kind_NHW[i] = layout.kind_HW
        self.colour_NHW[i] = layout.colour_HW
        self.state_NHW[i] = layout.state_HW
        self.agent_pos_N2[i] = layout.agent_pos
        self.agent_dir_N[i] = layout.agent_dir
        self.carry_kind_N[i] = Kind.EMPTY
        self.carry_colour_N[i] = 0
        self.goal_verb_NG[i] = Verb.NONE
        self.goal_kind_NG[i] = 0
        self.goal_colour_NG[i] = 0
        for g, goal in enumerate(layout.goals):
            self.goal_verb_NG[i, g] = goal.verb
            self.goal_kind_NG[i, g] = goal.kind
            self.goal_colour_NG[i, g] = goal.colour
        self.n_goals_N[i] = len(layout.goals)
        self.stage_N[i] = 0
        self.answer_N[i] = layout.answer
        self.step_count_N[i] = 0
        self.mission_index_N[i] = layout.mission_index
        self.visited_NHW[i] = False
        self.visited_NHW[i, layout.agent_pos[0], layout.agent_pos[1]] = True
        self.missions[i] = layout.mission

    def layout(self, i: int) -> Layout:
        """World ``i`` as a :class:`Layout` (copies)."""
        goals = [
            Goal(Verb(int(self.goal_verb_NG[i, g])), int(self.goal_kind_NG[i, g]), int(self.goal_colour_NG[i, g]))
            for g in range(int(self.n_goals_N[i]))
        ]
        return Layout(
            self.kind_NHW[i].copy(),
            self.colour_NHW[i].copy(),
            self.state_NHW[i].copy(),
            (int(self.agent_pos_N2[i, 0]), int(self.agent_pos_N2[i, 1])),
            int(self.agent_dir_N[i]),
            goals,
            int(self.answer_N[i]),
            self.missions[i],
            int(self.mission_index_N[i]),
        )

    def subset(self, indices: np.ndarray, names: tuple[str, ...] = ARRAY_NAMES) -> WorldState:
        """A new batch holding copies of the worlds ``indices`` (only the arrays ``names``: enough to observe)."""
        part = WorldState.__new__(WorldState)
        for name in names:
            setattr(part, name, getattr(self, name)[indices])
        part.missions = [self.missions[i] for i in indices]
        return part

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Copies of every array, for checkpoints (missions are kept by the caller as text)."""
        return {name: getattr(self, name).copy() for name in self.ARRAY_NAMES}

    def load_arrays(self, arrays: dict[str, np.ndarray], missions: list[str]) -> None:
        """Restore from :meth:`to_arrays`; shapes and dtypes must match this batch.

        A checkpoint written before ``visited_NHW`` existed restores it as the agents' current cells only.
        """
        for name in self.ARRAY_NAMES:
            current = getattr(self, name)
            if name == "visited_NHW" and name not in arrays:
                current[...] = False
                continue
            value = np.asarray(arrays[name])
            if value.shape != current.shape or value.dtype != current.dtype:
                raise ValueError(
                    f"saved world array {name!r} has shape {value.shape} and dtype {value.dtype}; "
                    f"this environment needs {current.shape} {current.dtype}"
                )
            current[...] = value
        if len(missions) != self.n_worlds:
            raise ValueError(f"expected {self.n_worlds} missions, got {len(missions)}")
        if "visited_NHW" not in arrays:
            self.visited_NHW[np.arange(self.n_worlds), self.agent_pos_N2[:, 0], self.agent_pos_N2[:, 1]] = True
        self.missions = list(missions)
