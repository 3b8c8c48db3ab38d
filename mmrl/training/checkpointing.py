"""Checkpoints of a training run: what one holds, and how it is written and read back (layout:
:mod:`mmrl.training.run_dir`).

A checkpoint holds the model (with its last observation, step counters, optimizer and schedule state), the env
state (``venv.get_state()``), the replay buffer where the algorithm has one, the Python, NumPy and torch global RNG
states, the ``action_space.np_random`` state (DQN explores with ``action_space.sample()``), the evaluation history
and best return, and the monitor counters. ``state_<N>_steps.json`` is written last: it marks the checkpoint
complete.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.algorithms import AlgorithmSpec
from mmrl.atomic import atomic_path, write_json
from mmrl.training.interrupts import sigint_deferred
from mmrl.training.run_dir import checkpoint_paths, save_env_state

__all__ = ["CheckpointWriter", "record_evaluations", "restore_rng_states", "rng_states", "save_model"]


def rng_states() -> dict[str, Any]:
    """The Python, NumPy and torch global RNG states, as JSON."""
    import torch

    return {
        "python": _to_json(random.getstate()),
        "numpy": np.random.get_state(legacy=False),
        "torch": torch.get_rng_state().tolist(),
    }


def _to_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_json(v) for v in value]
    return value


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states` (missing entries are left as they are)."""
    import torch

    if "python" in states:
        version, internal, gauss = states["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in states:
        np.random.set_state(states["numpy"])
    if "torch" in states:
        torch.set_rng_state(torch.tensor(states["torch"], dtype=torch.uint8))


def save_model(model: Any, path: Path, spec: AlgorithmSpec) -> None:
    """Save ``model`` to ``path`` atomically (SB3 zips through a temporary file; Q-learning's save is atomic)."""
    if spec.sb3:
        with atomic_path(path) as tmp:
            model.save(tmp)
    else:
        model.save(path)


def record_evaluations(state_path: Path, evaluations: list[dict[str, Any]], best: float) -> None:
    """Add the final evaluation (and the best return it may have set) to the checkpoint at the final step, so that
    a resumed run starts from the same history and never replaces ``best_model`` with a worse model."""
    if not state_path.is_file():
        return
    state = json.loads(state_path.read_text(encoding="utf-8"))
    state["evaluations"] = evaluations
    state["best_mean_return"] = best if np.isfinite(best) else None
    write_json(state_path, state)


class CheckpointWriter:
    """Writes the checkpoints of one session into ``run_path/checkpoints``.

    Args:
        run_path: The run directory.
        spec: The algorithm.
        venv: The training envs (an :class:`~mmrl.training.monitor.EpisodeMonitor`; its counters are saved).
        env: The innermost VecEnv (its ``get_state()`` is saved when it has one).
        history: ``history() -> (evaluations, best)`` at the time of the checkpoint.
    """

    def __init__(self, run_path: Path, spec: AlgorithmSpec, venv: Any, env: Any, history: Any) -> None:
        self.run_path = run_path
        self.spec = spec
        self.venv = venv
        self.env = env
        self.history = history

    def __call__(self, model: Any) -> None:
        """Write a checkpoint of ``model`` at its current step (Ctrl-C waits until it is complete)."""
        with sigint_deferred():
            self._write(model)

    def _write(self, model: Any) -> None:
        steps = int(model.num_timesteps)
        paths = checkpoint_paths(self.run_path, steps, self.spec.name)
        save_model(model, paths["model"], self.spec)
        if self.spec.replay_buffer:
            with atomic_path(paths["replay_buffer"]) as tmp:
                model.save_replay_buffer(tmp)
        if hasattr(self.env, "get_state"):
            save_env_state(paths["env_state"], self.env.get_state())
        evaluations, best = self.history()
        write_json(
            paths["state"],
            {
                "steps": steps,
                "rng": rng_states(),
                "action_space_rng": model.action_space.np_random.bit_generator.state,
                "evaluations": evaluations,
                "best_mean_return": best if np.isfinite(best) else None,
                "monitor": self.venv.counters(),
            },
        )
        # Only now is the new checkpoint complete (state_*.json is written last): a crash before this point
        # leaves the previous checkpoint with its replay buffer. Older buffers are dropped (they are large).
        if self.spec.replay_buffer:
            for old in paths["replay_buffer"].parent.glob("replay_buffer_*_steps.pkl"):
                if old != paths["replay_buffer"]:
                    old.unlink(missing_ok=True)
