"""Training callbacks: progress bar, periodic evaluation + checkpoints, episode statistics."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from mmrl.algorithms import complete_interrupted_step

__all__ = [
    "EpisodeStats",
    "PeriodicCallback",
    "ProgressBarCallback",
    "StopAtBoundary",
    "reset_inference_memos",
]


def reset_inference_memos(model: Any) -> None:
    """Empty the text-encoding memos of the model's extractors (:class:`mmrl.extractor.extractor.InferenceTextMemo`).

    A memo is a cache, never saved, but not a transparent one: an entry holds the encoding computed within the
    batch of the call that filled it, and batched kernels round differently for different batch compositions. DQN's
    target network keeps its parameters for ``target_update_interval`` steps, so without a reset its memo carries
    entries across rollouts, and a run resumed from a checkpoint (empty memos) computes TD targets that differ from
    the uninterrupted run's in the last bits. Resetting at every rollout boundary costs one re-encoding of the
    distinct instructions per rollout (PPO/A2C invalidate their memos at every update anyway).
    """
    policy = getattr(model, "policy", None)
    if policy is None or not hasattr(policy, "modules"):
        return
    for module in policy.modules():
        memos = getattr(module, "text_memos", None)
        if memos:
            module.text_memos = [None if memo is None else type(memo)(memo.max_entries) for memo in memos]


class StopAtBoundary(Exception):
    """Raised by :class:`PeriodicCallback` at the rollout boundary where ``stop_at`` is reached, after the
    boundary checkpoint was written.

    SB3 steps the env *before* ``callback.on_step()``, so returning False from ``on_step`` would leave the env one
    step ahead of the stored transitions; raising from ``on_rollout_start`` instead leaves the model exactly in the
    checkpointed state. :func:`mmrl.train` catches it.
    """

    def __init__(self, steps: int) -> None:
        super().__init__(f"stopped at the rollout boundary at {steps} steps")
        self.steps = steps


class EpisodeStats:
    """Recent training episodes' returns and successes, from the VecMonitor infos (``info["episode"]``).

    Args:
        window: How many recent episodes to average over.
    """

    def __init__(self, window: int = 100) -> None:
        self.returns: deque[float] = deque(maxlen=window)
        self.successes: deque[float] = deque(maxlen=window)
        self.episodes = 0

    def update(self, infos: list[dict[str, Any]]) -> None:
        """Record the episodes that finished in this step."""
        for info in infos:
            episode = info.get("episode")
            if episode is None:
                continue
            self.episodes += 1
            self.returns.append(float(episode["r"]))
            if "is_success" in info:
                self.successes.append(float(info["is_success"]))

    @property
    def mean_return(self) -> float | None:
        return float(np.mean(self.returns)) if self.returns else None

    @property
    def success_rate(self) -> float | None:
        return float(np.mean(self.successes)) if self.successes else None


def planned_total(model: Any, start: int, total: int) -> int:
    """The step count training will really end at: SB3 collects whole rollouts and stops at the first rollout
    end at or past ``total``. A rollout is ``n_steps * n_envs`` steps on-policy (PPO, A2C), ``train_freq *
    n_envs`` off-policy with a ``train_freq`` in steps (DQN), ``n_envs`` otherwise (Q-learning; off-policy with a
    ``train_freq`` in episodes, where the end cannot be known in advance: the bar is then clamped at its end)."""
    if total <= start:
        return total
    vector_steps = int(getattr(model, "n_steps", 1) or 1)
    train_freq = getattr(model, "train_freq", None)
    if train_freq is not None and getattr(getattr(train_freq, "unit", None), "value", None) == "step":
        vector_steps = int(train_freq.frequency)
    chunk = int(getattr(model, "n_envs", 1) or 1) * vector_steps
    return start + -(-(total - start) // chunk) * chunk


class ProgressBarCallback(BaseCallback):
    """A ``tqdm`` bar over environment steps with elapsed time, ETA, FPS, and the recent training episodes' mean
    return and success rate (``train_return``, ``train_success``: sampled actions, not the held-out evaluation).

    Args:
        total: Target ``num_timesteps`` at the end of training.
        stats: Shared episode statistics (updated by :class:`PeriodicCallback`).
        refresh_s: Minimum seconds between postfix refreshes.
    """

    def __init__(self, total: int, stats: EpisodeStats, refresh_s: float = 0.5) -> None:
        super().__init__()
        self.total = total
        self.stats = stats
        self.refresh_s = refresh_s
        self.bar: Any = None
        self._last_refresh = 0.0

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        start = int(self.model.num_timesteps)
        self.bar = tqdm(
            total=planned_total(self.model, start, self.total),
            initial=start,
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            smoothing=0.1,
        )

    def _on_step(self) -> bool:
        if self.bar is None:
            return True
        self.bar.update(int(self.model.num_timesteps) - self.bar.n)
        now = time.monotonic()
        if now - self._last_refresh >= self.refresh_s:
            self._last_refresh = now
            self._set_postfix()
        return True

    def _set_postfix(self) -> None:
        postfix = {}  # training episodes (sampled actions): named so, not to be read as the held-out figures
        if self.stats.mean_return is not None:
            postfix["train_return"] = f"{self.stats.mean_return:.3f}"
        if self.stats.success_rate is not None:
            postfix["train_success"] = f"{self.stats.success_rate:.0%}"
        self.bar.set_postfix(postfix, refresh=False)

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the bar (also called after Ctrl-C, when ``_on_training_end`` does not run)."""
        if self.bar is not None:
            self._set_postfix()  # the last figures, however short the run (refreshes are rate-limited)
            if self.bar.n > self.bar.total:  # never "4.1k of 4.0k": a finished bar reads 100 %
                self.bar.total = self.bar.n
            self.bar.refresh()
            self.bar.close()
            self.bar = None


class PeriodicCallback(BaseCallback):
    """Episode statistics every step; evaluation every ``eval_freq`` and checkpoints every ``checkpoint_freq`` steps.

    Checkpoints are taken at the start of a rollout (after the previous update, when the model, its last
    observation and the env state agree), or after any step when ``checkpoint_on_step`` (QLearning, which has no
    rollouts and whose ``on_step`` runs after the table update and the ``_last_obs`` update). At every rollout start
    the extractors' inference memos are emptied (:func:`reset_inference_memos`), so that a resumed run, which starts
    with empty memos, computes exactly what the uninterrupted run computes.

    With ``stop_at``, training stops at the first such boundary at or after ``stop_at`` steps: a checkpoint is
    written there (unless one was just written at that step) and then, for rollout algorithms,
    :class:`StopAtBoundary` is raised from ``on_rollout_start`` (no env step is taken); with
    ``checkpoint_on_step``, ``on_step`` returns False. :attr:`stopped_at` and :attr:`last_checkpoint_steps` tell
    the caller what happened. With ``stop_success``, an evaluation whose success rate reaches it sets ``stop_at``
    to the current step, so training stops at the next boundary (:attr:`stopped_on_success` records the step).

    Args:
        stats: Episode statistics to update.
        evaluate: ``evaluate(model) -> None`` (keeps the best model).
        checkpoint: ``checkpoint(model) -> None``.
        eval_freq: Steps between evaluations (0: never).
        checkpoint_freq: Steps between checkpoints (0: never).
        checkpoint_on_step: Check for a due checkpoint after every step.
        stop_at: Stop at the first boundary at or after this many steps (None: never).
        stop_success: Stop after the first evaluation with ``result["success_rate"] >= stop_success`` (None:
            never; ``evaluate`` must then return the result dict).
        stop_requested: ``stop_requested() -> bool``, asked after every step; True ends training there (``on_step``
            returns False, after :func:`complete_interrupted_step`, so that the model's last observation, the
            replay buffer and the env agree): the trainer's first Ctrl-C.
    """

    def __init__(
        self,
        stats: EpisodeStats,
        evaluate: Callable[[Any], object],
        checkpoint: Callable[[Any], object],
        eval_freq: int,
        checkpoint_freq: int,
        checkpoint_on_step: bool = False,
        stop_at: int | None = None,
        stop_requested: Callable[[], bool] | None = None,
        stop_success: float | None = None,
    ) -> None:
        super().__init__()
        self.stats = stats
        self.stop_requested = stop_requested
        self.evaluate = evaluate
        self.checkpoint = checkpoint
        self.eval_freq = eval_freq
        self.checkpoint_freq = checkpoint_freq
        self.checkpoint_on_step = checkpoint_on_step
        self._next_eval: int | None = None
        self._next_checkpoint: int | None = None
        self.stop_at = stop_at
        self.stopped_at: int | None = None
        """``num_timesteps`` where ``stop_at`` stopped training (None if it did not)."""
        self.stop_success = stop_success
        self.stopped_on_success: int | None = None
        """``num_timesteps`` of the evaluation that reached ``stop_success`` (None if none did)."""
        self.last_checkpoint_steps: int | None = None
        """``num_timesteps`` of the last checkpoint this callback wrote (None if none)."""

    def _next_multiple(self, freq: int) -> int | None:
        if freq <= 0:
            return None
        return (int(self.model.num_timesteps) // freq + 1) * freq

    def _on_training_start(self) -> None:
        self._next_eval = self._next_multiple(self.eval_freq)
        self._next_checkpoint = self._next_multiple(self.checkpoint_freq)

    def _write_checkpoint(self) -> None:
        self.checkpoint(self.model)
        self.last_checkpoint_steps = int(self.model.num_timesteps)

    def _maybe_checkpoint(self) -> None:
        if self._next_checkpoint is not None and self.model.num_timesteps >= self._next_checkpoint:
            self._write_checkpoint()
            self._next_checkpoint = self._next_multiple(self.checkpoint_freq)

    def _should_stop(self) -> bool:
        """At a boundary: stop here? Writes the boundary checkpoint first when stopping."""
        if self.stop_at is None or self.model.num_timesteps < self.stop_at:
            return False
        if self.last_checkpoint_steps != int(self.model.num_timesteps):
            self._write_checkpoint()
        self.stopped_at = int(self.model.num_timesteps)
        return True

    def _check_success(self, result: object) -> None:
        """After an evaluation: stop at the next boundary if its success rate reached ``stop_success``."""
        if self.stop_success is None or self.stopped_on_success is not None or not isinstance(result, dict):
            return
        success = result.get("success_rate")
        if success is not None and success >= self.stop_success:
            steps = int(self.model.num_timesteps)
            self.stopped_on_success = steps
            self.stop_at = steps if self.stop_at is None else min(self.stop_at, steps)

    def _on_rollout_start(self) -> None:
        reset_inference_memos(self.model)
        self._maybe_checkpoint()
        if not self.checkpoint_on_step and self._should_stop():
            raise StopAtBoundary(int(self.model.num_timesteps))

    def _on_step(self) -> bool:
        self.stats.update(self.locals.get("infos", []))
        if self.stop_requested is not None and self.stop_requested():
            complete_interrupted_step(self.model, self.locals)
            return False
        if self._next_eval is not None and self.model.num_timesteps >= self._next_eval:
            result = self.evaluate(self.model)
            self._next_eval = self._next_multiple(self.eval_freq)
            self._check_success(result)
        if self.checkpoint_on_step:
            self._maybe_checkpoint()
            if self._should_stop():
                return False
        return True


class CommitAfterFirstUpdate(BaseCallback):
    """Calls ``commit(model)`` once, at the first rollout start after the session's first update (with
    ``on_step``: after its first complete step): where a replacement run has shown it can train.

    Args:
        commit: ``commit(model) -> None``.
        after_step: Commit after the first step instead (algorithms without rollouts).
    """

    def __init__(self, commit: Callable[[Any], object], after_step: bool = False) -> None:
        super().__init__()
        self.commit = commit
        self.after_step = after_step
        self.done = False
        self._start = 0

    def _on_training_start(self) -> None:
        self._start = int(self.model.num_timesteps)

    def _maybe_commit(self) -> None:
        if not self.done and int(self.model.num_timesteps) > self._start:
            self.done = True
            self.commit(self.model)

    def _on_rollout_start(self) -> None:
        if not self.after_step:
            self._maybe_commit()

    def _on_step(self) -> bool:
        if self.after_step:
            self._maybe_commit()
        return True
