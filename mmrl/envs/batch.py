"""N worlds of one task, stepped together: the shared core of the single and the vectorized environments.

Each world has its own random generator, seeded like Gymnasium seeds sub-environments (world ``i`` of a batch
seeded ``s`` uses seed ``s + i``), so a batch of N reproduces N single environments episode for episode.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from mmrl.checks import check_bool, check_int
from mmrl.engine.constants import MAX_SUBGOALS, N_COLOURS, N_KINDS, N_STATES, Kind
from mmrl.engine.rules import StepResult, step_navigation, step_question
from mmrl.engine.view import IMAGE_MODES, VIEWS, observe
from mmrl.engine.world import WorldState
from mmrl.envs.grammar import make_tokenizer
from mmrl.envs.task import Task
from mmrl.limits import check_limit

OBSERVATIONS = ("image", "compact")


class GridBatch:
    """The worlds, their random generators, and how they are observed.

    Args:
        task: The task family that lays out levels.
        n_worlds: Number of worlds.
        view: ``"agent"`` (egocentric window) or ``"full"`` (top-down).
        view_size: Side of the egocentric window, in cells (odd).
        image_mode: ``"rgb"`` or ``"symbolic"``.
        tile_size: Pixels per cell in RGB images.
        channels_first: Emit images as ``(3, H, W)`` instead of ``(H, W, 3)``.
        observation: ``"image"`` for ``{"image", "mission"}`` dicts, ``"compact"`` for a small integer vector
            (agent row, column, heading, carried kind and colour, sub-goals done, instruction index, then door
            states and object presence at the cells a fixed level names): a compact state for tabular learners.
        show_progress: Mark the sub-goals done in the agent's cell of image observations
            (:func:`mmrl.engine.view.observe`).
        show_carried: Show what the agent carries in its cell of the egocentric window (``view="agent"``).
        show_visited: Show the cells the agent has stood on this episode as grey floor.
    """

    def __init__(
        self,
        task: Task,
        n_worlds: int,
        view: str = "agent",
        view_size: int = 7,
        image_mode: str = "rgb",
        tile_size: int = 8,
        channels_first: bool = False,
        observation: str = "image",
        show_progress: bool = False,
        show_carried: bool = False,
        show_visited: bool = False,
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        if image_mode not in IMAGE_MODES:
            raise ValueError(f"image_mode must be one of {IMAGE_MODES}, got {image_mode!r}")
        if observation not in OBSERVATIONS:
            raise ValueError(f"observation must be one of {OBSERVATIONS}, got {observation!r}")
        if not isinstance(view_size, int) or view_size < 3 or view_size % 2 == 0:
            raise ValueError(f"view_size must be an odd int >= 3, got {view_size!r}")
        if check_int("tile_size", tile_size, 1) > 64:
            raise ValueError(f"tile_size must be an int in [1, 64], got {tile_size!r}")
        check_bool("channels_first", channels_first, " (True for (3, H, W) images, False for (H, W, 3))")
        check_bool("show_progress", show_progress, " (True marks the sub-goals done in the agent's cell)")
        if show_progress and task.is_question:
            raise ValueError("show_progress=True needs an agent to draw on; question tasks have none: leave it False")
        check_bool("show_carried", show_carried, " (True shows what the agent carries in its own cell)")
        if show_carried and (task.is_question or view != "agent"):
            raise ValueError(
                "show_carried=True draws in the agent's cell of the egocentric window: it needs view='agent' and a "
                "task with an agent (not a question task)"
            )
        check_bool("show_visited", show_visited, " (True shows the cells the agent has stood on as grey floor)")
        if show_visited and task.is_question:
            raise ValueError("show_visited=True needs an agent that moves; question tasks have none: leave it False")
        if not isinstance(n_worlds, int) or n_worlds < 1:
            raise ValueError(f"the number of environments must be a positive int, got {n_worlds!r}")
        check_limit("grid side", max(task.height, task.width), "max_grid_side")
        check_limit("number of environments", n_worlds, "max_envs")
        self.task = task
        self.view = view
        self.view_size = view_size
        self.image_mode = image_mode
        self.tile_size = tile_size
        self.channels_first = bool(channels_first)
        self.observation = observation
        self.show_progress = bool(show_progress)
        self.show_carried = bool(show_carried)
        self.show_visited = bool(show_visited)
        self.tokenizer = make_tokenizer()
        self.world = WorldState(n_worlds, task.height, task.width)
        self.rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(n_worlds)]
        self.tokens_NL = np.zeros((n_worlds, self.tokenizer.max_length), dtype=np.int64)
        self._watch_cells: tuple[np.ndarray, np.ndarray] | None = None
        self.observation_space = self._observation_space()
        image_bytes = int(np.prod(self.image_shape())) * n_worlds
        check_limit("bytes of a batch of image observations", image_bytes, "max_obs_bytes")

    @property
    def n_worlds(self) -> int:
        return self.world.n_worlds

    # ------------------------------------------------------------------ spaces
    def image_shape(self) -> tuple[int, int, int]:
        cells_h, cells_w = (
            (self.view_size, self.view_size) if self.view == "agent" else (self.task.height, self.task.width)
        )
        if self.image_mode == "rgb":
            cells_h, cells_w = cells_h * self.tile_size, cells_w * self.tile_size
        return (3, cells_h, cells_w) if self.channels_first else (cells_h, cells_w, 3)

    def _observation_space(self) -> spaces.Space:
        if self.observation == "compact":
            return spaces.MultiDiscrete(self._compact_nvec())
        if self.image_mode == "rgb":
            image = spaces.Box(0, 255, self.image_shape(), dtype=np.uint8)
        else:
            high = np.zeros(self.image_shape(), dtype=np.uint8)
            channel_axis = 0 if self.channels_first else -1
            maxima = np.array([N_KINDS - 1, N_COLOURS - 1, max(N_STATES - 1, 3)], dtype=np.uint8)
            shape = [1, 1, 1]
            shape[channel_axis] = 3
            high[...] = maxima.reshape(shape)
            image = spaces.Box(np.zeros_like(high), high, dtype=np.uint8)
        return spaces.Dict({"image": image, "mission": self.tokenizer.space()})

    def set_watch_cells(self, rows: np.ndarray, cols: np.ndarray) -> None:
        """Cells whose door state / object presence the compact observation reports (fixed levels)."""
        self._watch_cells = (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))
        self.observation_space = self._observation_space()

    def _compact_nvec(self) -> np.ndarray:
        n_watch = 0 if self._watch_cells is None else len(self._watch_cells[0])
        head = [
            self.task.height,
            self.task.width,
            4,
            N_KINDS,
            N_COLOURS,
            MAX_SUBGOALS + 1,
            max(1, self.task.n_missions),
        ]
        return np.array(head + [N_STATES + 1] * n_watch, dtype=np.int64)

    # ------------------------------------------------------------------ seeding and resets
    def seed_world(self, i: int, seed: int | None) -> None:
        self.rngs[i] = seeding.np_random(seed)[0]

    def reset_worlds(self, indices: Iterable[int]) -> None:
        """Lay out a new level in each of ``indices`` (a Python loop: generation is allowed to be per world)."""
        for i in indices:
            layout = self.task.generate(self.rngs[i])
            self.world.load_layout(i, layout)
            self.tokens_NL[i] = self.tokenizer.encode(layout.mission)

    # ------------------------------------------------------------------ stepping and observing
    def validate_actions(self, actions: np.ndarray) -> np.ndarray:
        """Actions as an int64 array of shape (N,), or a ``ValueError`` naming the bad one."""
        array = np.asarray(actions)
        if array.shape == () and self.n_worlds == 1:
            array = array.reshape(1)
        if array.shape != (self.n_worlds,):
            raise ValueError(f"expected {self.n_worlds} action(s) in Discrete({self.task.n_actions}), got {actions!r}")
        if not np.issubdtype(array.dtype, np.integer):
            rounded = np.round(array) if np.issubdtype(array.dtype, np.floating) else None
            if rounded is None or not np.array_equal(rounded, array):
                raise ValueError(f"actions must be integers in Discrete({self.task.n_actions}), got {actions!r}")
            array = rounded
        array = array.astype(np.int64)
        bad = (array < 0) | (array >= self.task.n_actions)
        if bad.any():
            raise ValueError(
                f"action {array[bad][0]} is outside the action space Discrete({self.task.n_actions}); "
                f"valid actions are 0..{self.task.n_actions - 1}"
            )
        return array

    def step(self, actions_N: np.ndarray) -> StepResult:
        if self.task.is_question:
            return step_question(self.world, actions_N)
        return step_navigation(self.world, actions_N, self.task.max_steps, self.task.wrong_object)

    def observe(self, indices: np.ndarray | None = None) -> dict[str, np.ndarray] | np.ndarray:
        """Observations of all worlds, or of ``indices`` only (fresh arrays)."""
        if indices is None:
            world = self.world
        elif self.observation == "compact":
            world = self.world.subset(indices)
        else:
            world = self.world.subset(indices, WorldState.VIEW_ARRAY_NAMES)
        if self.observation == "compact":
            return self.compact(world)
        image = observe(
            world,
            self.view,
            self.view_size,
            self.image_mode,
            self.tile_size,
            self.show_progress,
            self.show_carried,
            self.show_visited,
        )
        if self.channels_first:
            image = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
        tokens = self.tokens_NL.copy() if indices is None else self.tokens_NL[indices]
        return {"image": image, "mission": tokens}

    def compact(self, world: WorldState | None = None) -> np.ndarray:
        w = self.world if world is None else world
        head = np.stack(
            [
                w.agent_pos_N2[:, 0],
                w.agent_pos_N2[:, 1],
                w.agent_dir_N,
                w.carry_kind_N.astype(np.int64),
                w.carry_colour_N.astype(np.int64),
                w.stage_N,
                w.mission_index_N,
            ],
            axis=1,
        )
        if self._watch_cells is None or len(self._watch_cells[0]) == 0:
            return head
        rows, cols = self._watch_cells
        kinds = w.kind_NHW[:, rows, cols]
        # door cells report their state (0..2), other cells 3 when their object is still there, else 0
        watch = np.where(kinds == Kind.DOOR, w.state_NHW[:, rows, cols], np.where(kinds == Kind.EMPTY, 0, 3))
        return np.concatenate([head, watch.astype(np.int64)], axis=1)

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        """Everything needed to continue exactly: world arrays, missions, tokens and RNG states."""
        return {
            "arrays": self.world.to_arrays(),
            "missions": list(self.world.missions),
            "tokens_NL": self.tokens_NL.copy(),
            "rng_states": [rng.bit_generator.state for rng in self.rngs],
        }

    def set_state(self, state: dict) -> None:
        self.world.load_arrays(state["arrays"], state["missions"])
        self.tokens_NL[...] = state["tokens_NL"]
        if len(state["rng_states"]) != self.n_worlds:
            raise ValueError(f"saved state has {len(state['rng_states'])} worlds, this batch {self.n_worlds}")
        for rng, rng_state in zip(self.rngs, state["rng_states"], strict=True):
            rng.bit_generator.state = rng_state
