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
#: Largest ``frame_stack``.
MAX_FRAME_STACK = 16
#: Largest ``action_history``.
MAX_ACTION_HISTORY = 64


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
        frame_stack: Image observations hold the last this many frames, oldest first, stacked along the channel
            axis (``(H, W, 3 * frame_stack)``, or ``(3 * frame_stack, H, W)`` channel first); a new episode starts
            with copies of its first frame. 1: the current frame only.
        action_history: Add an ``"actions"`` key: the agent's last this many actions, oldest first, as a
            ``MultiDiscrete`` of ``n_actions + 1`` values each (``n_actions``: none yet, at the start of an
            episode). 0: no such key.
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
        frame_stack: int = 1,
        action_history: int = 0,
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
        if check_int("frame_stack", frame_stack, 1) > MAX_FRAME_STACK:
            raise ValueError(f"frame_stack must be an int in [1, {MAX_FRAME_STACK}], got {frame_stack!r}")
        if frame_stack > 1 and observation != "image":
            raise ValueError(
                f"frame_stack={frame_stack} stacks image observations; observation={observation!r} has none"
            )
        if check_int("action_history", action_history, 0) > MAX_ACTION_HISTORY:
            raise ValueError(f"action_history must be an int in [0, {MAX_ACTION_HISTORY}], got {action_history!r}")
        if action_history and (observation != "image" or task.is_question):
            raise ValueError(
                f"action_history={action_history} adds the agent's last actions to image observations; it needs "
                f"observation='image' and a task with an agent (not a question task)"
            )
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
        self.frame_stack = int(frame_stack)
        self.action_history = int(action_history)
        #: The last ``action_history`` actions of each world, oldest first (``task.n_actions``: none yet).
        self.actions_NK = np.full((n_worlds, self.action_history), task.n_actions, dtype=np.int64)
        self.tokenizer = make_tokenizer()
        self.world = WorldState(n_worlds, task.height, task.width)
        self.rngs: list[np.random.Generator] = [seeding.np_random(None)[0] for _ in range(n_worlds)]
        self.tokens_NL = np.zeros((n_worlds, self.tokenizer.max_length), dtype=np.int64)
        self._watch_cells: tuple[np.ndarray, np.ndarray] | None = None
        image_bytes = int(np.prod(self.image_shape())) * n_worlds * self.frame_stack
        check_limit("bytes of a batch of image observations", image_bytes, "max_obs_bytes")
        self.observation_space = self._observation_space()
        #: The last ``frame_stack`` frames of each world, oldest first (``frame_stack > 1`` only).
        self._frames_NK: np.ndarray | None = None
        #: Worlds reset since they were last observed: their next observation fills the stack with its frame.
        self._fresh_N = np.ones(n_worlds, dtype=bool)

    @property
    def n_worlds(self) -> int:
        return self.world.n_worlds

    # ------------------------------------------------------------------ spaces
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one frame (``frame_stack`` of them make an image observation)."""
        cells_h, cells_w = (
            (self.view_size, self.view_size) if self.view == "agent" else (self.task.height, self.task.width)
        )
        if self.image_mode == "rgb":
            cells_h, cells_w = cells_h * self.tile_size, cells_w * self.tile_size
        return (3, cells_h, cells_w) if self.channels_first else (cells_h, cells_w, 3)

    def image_shape_hwc(self) -> tuple[int, int, int]:
        """Shape of one frame, channel last (how frames are drawn and stacked)."""
        shape = self.image_shape()
        return (shape[1], shape[2], shape[0]) if self.channels_first else shape

    def _observation_space(self) -> spaces.Space:
        if self.observation == "compact":
            return spaces.MultiDiscrete(self._compact_nvec())
        channel_axis = 0 if self.channels_first else -1
        if self.image_mode == "rgb":
            image = spaces.Box(0, 255, self.image_shape(), dtype=np.uint8)
        else:
            high = np.zeros(self.image_shape(), dtype=np.uint8)
            maxima = np.array([N_KINDS - 1, N_COLOURS - 1, max(N_STATES - 1, 3)], dtype=np.uint8)
            shape = [1, 1, 1]
            shape[channel_axis] = 3
            high[...] = maxima.reshape(shape)
            image = spaces.Box(np.zeros_like(high), high, dtype=np.uint8)
        if self.frame_stack > 1:
            high = np.concatenate([image.high] * self.frame_stack, axis=channel_axis)
            image = spaces.Box(np.zeros_like(high), high, dtype=np.uint8)
        observation: dict[str, spaces.Space] = {"image": image, "mission": self.tokenizer.space()}
        if self.action_history:
            observation["actions"] = spaces.MultiDiscrete(np.full(self.action_history, self.task.n_actions + 1))
        return spaces.Dict(observation)

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
            self._fresh_N[i] = True
            self.actions_NK[i] = self.task.n_actions

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
        if self.action_history:
            self.actions_NK[:, :-1] = self.actions_NK[:, 1:]
            self.actions_NK[:, -1] = actions_N
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
        if self.frame_stack > 1:
            image = self._stack_frames(image, np.arange(self.n_worlds) if indices is None else np.asarray(indices))
        elif self.channels_first:
            image = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
        tokens = self.tokens_NL.copy() if indices is None else self.tokens_NL[indices]
        if self.action_history:
            actions = self.actions_NK.copy() if indices is None else self.actions_NK[indices]
            return {"image": image, "mission": tokens, "actions": actions}
        return {"image": image, "mission": tokens}

    def _stack_frames(self, frames_nHWC: np.ndarray, rows_n: np.ndarray) -> np.ndarray:
        """Push the new frames of worlds ``rows_n`` onto their stacks and return the stacks as images.

        Every observation of a world advances its stack by one frame (the envs observe each world once per reset
        and once per step); a world reset since its last observation starts a stack of copies of its new frame.
        """
        k = self.frame_stack
        if self._frames_NK is None:
            self._frames_NK = np.zeros((self.n_worlds, k, *frames_nHWC.shape[1:]), dtype=frames_nHWC.dtype)
        stacks_nK = self._frames_NK[rows_n]
        fresh_n = self._fresh_N[rows_n]
        stacks_nK[~fresh_n] = np.roll(stacks_nK[~fresh_n], -1, axis=1)
        stacks_nK[fresh_n] = frames_nHWC[fresh_n, None]
        stacks_nK[:, -1] = frames_nHWC
        self._frames_NK[rows_n] = stacks_nK
        self._fresh_N[rows_n] = False
        n, height, width, channels = frames_nHWC.shape
        if self.channels_first:  # (n, K, H, W, C) -> (n, K * C, H, W): frame by frame, each frame's channels
            return np.ascontiguousarray(stacks_nK.transpose(0, 1, 4, 2, 3)).reshape(n, k * channels, height, width)
        return np.ascontiguousarray(stacks_nK.transpose(0, 2, 3, 1, 4)).reshape(n, height, width, k * channels)

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
        state = {
            "arrays": self.world.to_arrays(),
            "missions": list(self.world.missions),
            "tokens_NL": self.tokens_NL.copy(),
            "rng_states": [rng.bit_generator.state for rng in self.rngs],
        }
        if self.action_history:
            state["actions_NK"] = self.actions_NK.copy()
        if self.frame_stack > 1:
            state["fresh_N"] = self._fresh_N.copy()
            state["frames_NK"] = None if self._frames_NK is None else self._frames_NK.copy()
        return state

    def set_state(self, state: dict) -> None:
        self.world.load_arrays(state["arrays"], state["missions"])
        self.tokens_NL[...] = state["tokens_NL"]
        if len(state["rng_states"]) != self.n_worlds:
            raise ValueError(f"saved state has {len(state['rng_states'])} worlds, this batch {self.n_worlds}")
        for rng, rng_state in zip(self.rngs, state["rng_states"], strict=True):
            rng.bit_generator.state = rng_state
        if self.action_history:
            actions = np.asarray(state.get("actions_NK", self.actions_NK))
            if actions.shape != self.actions_NK.shape or not np.issubdtype(actions.dtype, np.integer):
                raise ValueError(f"saved action history has shape {actions.shape}, this batch {self.actions_NK.shape}")
            self.actions_NK[...] = np.clip(actions, 0, self.task.n_actions)
        if self.frame_stack > 1:
            frames = state.get("frames_NK")
            expected = (self.n_worlds, self.frame_stack, *self.image_shape_hwc())
            if frames is not None and tuple(np.shape(frames)) != expected:
                raise ValueError(f"saved frame stacks have shape {np.shape(frames)}, this batch {expected}")
            self._frames_NK = None if frames is None else np.array(frames, dtype=np.uint8)
            self._fresh_N = np.array(state.get("fresh_N", np.ones(self.n_worlds, dtype=bool)), dtype=bool)
