"""The Gymnasium environment: the batched engine with N = 1."""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.engine.constants import ACTION_NAMES
from mmrl.engine.view import caption, observe, wrap_caption
from mmrl.envs.batch import GridBatch
from mmrl.envs.grammar import ANSWER_WORDS, VOCABULARY, longest_instructions
from mmrl.envs.task import Task

RENDER_TILE_SIZE = 32


@functools.lru_cache(maxsize=32)
def reserved_caption_lines(width: int) -> int:
    """Caption lines that the longest instruction needs in a frame ``width`` pixels wide.

    Rendered frames reserve this many lines, so an environment's frames keep one size from episode to episode
    (videos need that) while no instruction is cut off.
    """
    return max(len(wrap_caption([text], width)) for text in longest_instructions())


class GridEnv(gym.Env):
    """Base class of mmrl's environments; the families (:mod:`mmrl.envs.goto`, ...) only supply a :class:`Task`.

    Observation: ``Dict({"image": Box(0, 255, (H, W, 3), uint8), "mission": Box(0, V - 1, (16,), int64)})``.
    Token ids use PAD = 0 and UNK = 1 and always lie inside the declared space. The raw instruction is in
    ``info["mission"]`` after every reset and step; ``info["is_success"]`` after every step (``False`` until the
    instruction is done, so it is there even when an outer ``TimeLimit`` ends the episode).

    Args:
        task: The task family instance.
        view: ``"agent"`` (egocentric ``view_size`` x ``view_size`` window, the default) or ``"full"``.
        view_size: Side of the egocentric window in cells (odd).
        image_mode: ``"rgb"`` (tiles drawn with OpenCV) or ``"symbolic"`` (kind, colour, state codes per cell).
        tile_size: Pixels per cell of RGB images (default 8: a 7 x 7 view gives 56 x 56 images).
        channels_first: Emit ``(3, H, W)`` images (saves Stable-Baselines3 a transpose).
        observation: ``"image"`` (the Dict above) or ``"compact"`` (a small integer state vector for tabular
            learners; see :class:`~mmrl.envs.batch.GridBatch`).
        render_mode: ``None`` or ``"rgb_array"``: a top-down frame with the instruction written under it, wrapped
            onto as many lines as the frame's width needs (room for the longest instruction is kept, so frames
            keep one size).
        show_progress: Mark the sub-goals done in the agent's own cell of the image (symbolic: its colour channel
            reads the count; RGB: the agent stands on a floor tile of that colour). A policy without memory needs it
            for multi-step instructions (``mmrl/Sequence-*``), where the view does not show what is done.
        show_carried: Show what the agent carries in its own cell of the egocentric window, as MiniGrid does
            (symbolic: the object's kind and colour; RGB: the agent drawn over its tile). Without it a policy
            without memory cannot tell a key in hand from one not fetched yet once the key is out of view
            (``mmrl/Open-Locked-v0``, fixed levels with locked doors). Egocentric view only.
        show_visited: Show where the agent has been this episode: the empty cells it has stood on read as grey
            floor (symbolic ``(FLOOR, GREY, 0)``; RGB: a grey floor tile; also in :meth:`render`), so a policy
            without memory can tell searched ground from new ground. On ``mmrl/GoTo-12x12-v0`` it did not lift
            greedy success (its loops are mostly turns in place, which leave the trail unchanged).
        frame_stack: The image holds the last this many frames, oldest first, stacked along the channel axis
            (``(H, W, 3 * frame_stack)``; a new episode starts with copies of its first frame): a short memory, e.g.
            of the views a turn in place has shown. ``mmrl.MultimodalExtractor(image_frames=...)`` encodes each
            frame with the same encoder (``mmrl train`` sets it from this). 1: the current frame only.
        action_history: Add an ``"actions"`` key holding the agent's last this many actions, oldest first
            (``MultiDiscrete``; the value ``n_actions`` stands for none yet): the cheapest memory, e.g. of the turns
            in place a policy without memory repeats forever when its view shows nothing. The extractor encodes it
            as a vector key. 0: no such key.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(
        self,
        task: Task,
        view: str = "agent",
        view_size: int = 7,
        image_mode: str = "rgb",
        tile_size: int = 8,
        channels_first: bool = False,
        observation: str = "image",
        render_mode: str | None = None,
        show_progress: bool = False,
        show_carried: bool = False,
        show_visited: bool = False,
        frame_stack: int = 1,
        action_history: int = 0,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.task = task
        self.observation_config: dict[str, Any] = {
            "view": view,
            "view_size": view_size,
            "image_mode": image_mode,
            "tile_size": tile_size,
            "channels_first": channels_first,
            "observation": observation,
            "show_progress": show_progress,
            "show_carried": show_carried,
            "show_visited": show_visited,
            "frame_stack": frame_stack,
            "action_history": action_history,
        }
        self.batch = GridBatch(task, 1, **self.observation_config)
        self.configure_batch(self.batch)
        self.observation_space = self.batch.observation_space
        self.action_space = spaces.Discrete(task.n_actions)
        self.render_mode = render_mode
        self._needs_reset = True
        self._last_reward = 0.0

    def configure_batch(self, batch: GridBatch) -> None:
        """Hook for families that configure the batch further (fixed levels watch their doors and objects)."""

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Every word an instruction can contain; ids are ``2 + index`` (0 = PAD, 1 = UNK)."""
        return VOCABULARY

    @property
    def tokenizer(self):
        return self.batch.tokenizer

    @property
    def action_names(self) -> tuple[str, ...]:
        """Names of the actions, in order (navigation actions or answers)."""
        return ANSWER_WORDS if self.task.is_question else ACTION_NAMES[: self.task.n_actions]

    @property
    def mission(self) -> str:
        return self.batch.world.missions[0]

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.batch.rngs[0] = self.np_random
        self.batch.reset_worlds([0])
        self._needs_reset = False
        self._last_reward = 0.0
        return self._observation(), {"mission": self.mission}

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("step() called before reset() or after the episode ended: call env.reset() first")
        actions = self.batch.validate_actions(action)
        result = self.batch.step(actions)
        terminated = bool(result.terminated_N[0])
        truncated = bool(result.truncated_N[0])
        # is_success on every step (False until the instruction is done), so that a TimeLimit wrapper that ends the
        # episode early still reports it
        info: dict[str, Any] = {"mission": self.mission, "is_success": bool(result.success_N[0])}
        if terminated or truncated:
            self._needs_reset = True
        self._last_reward = float(result.reward_N[0])
        return self._observation(), self._last_reward, terminated, truncated, info

    def _observation(self):
        obs = self.batch.observe()
        if isinstance(obs, dict):
            return {key: value[0] for key, value in obs.items()}
        return obs[0]

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; create the env with render_mode='rgb_array'")
            return None
        frame = self.render_grid()
        return caption(frame, [self.mission], min_lines=reserved_caption_lines(frame.shape[1]), wrap=True)

    def render_grid(self) -> np.ndarray:
        """The top-down ``(H, W, 3)`` uint8 frame of :meth:`render` without the instruction written under it (for
        callers that caption frames themselves, e.g. :mod:`mmrl.evaluation.video`)."""
        batch = self.batch
        return observe(
            batch.world,
            "full",
            batch.view_size,
            "rgb",
            RENDER_TILE_SIZE,
            batch.show_progress,
            show_visited=batch.show_visited,
        )[0]

    # ------------------------------------------------------------------ checkpoints
    def get_state(self) -> dict:
        """The engine state (world arrays, instruction, RNG), for exact resume."""
        return {**self.batch.get_state(), "needs_reset": self._needs_reset}

    def set_state(self, state: dict) -> None:
        self.batch.set_state(state)
        self._needs_reset = bool(state["needs_reset"])
        self._np_random = self.batch.rngs[0]
