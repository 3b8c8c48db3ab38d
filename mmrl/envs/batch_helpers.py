"""Shared helpers of the vectorized environments."""

from __future__ import annotations

import numpy as np

from mmrl.engine.view import caption, observe
from mmrl.envs.batch import GridBatch
from mmrl.envs.grid_env import RENDER_TILE_SIZE, GridEnv, reserved_caption_lines


def batch_like(env: GridEnv, n_envs: int) -> GridBatch:
    """A batch of ``n_envs`` worlds with ``env``'s task and observation options."""
    batch = GridBatch(env.task, n_envs, **env.observation_config)
    env.configure_batch(batch)
    return batch


def select(obs: dict[str, np.ndarray] | np.ndarray, i: int):
    """A copy of observation ``i`` of a batched observation."""
    if isinstance(obs, dict):
        return {key: value[i].copy() for key, value in obs.items()}
    return obs[i].copy()


def frames(batch: GridBatch) -> list[np.ndarray]:
    """Top-down frames of every world with the instruction written under each."""
    images = observe(batch.world, "full", batch.view_size, "rgb", RENDER_TILE_SIZE)
    lines = reserved_caption_lines(images.shape[2])
    return [
        caption(frame, [mission], min_lines=lines, wrap=True)
        for frame, mission in zip(images, batch.world.missions, strict=True)
    ]
