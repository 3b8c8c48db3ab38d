"""SB3 callbacks for :meth:`mmrl.agents.QLearning.learn`: what a ``callback`` argument becomes, and a progress bar."""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback

__all__ = ["TqdmProgressBar", "init_callback"]


class TqdmProgressBar(BaseCallback):
    """Plain ``tqdm`` progress bar over the timesteps of one ``learn`` call."""

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=self.locals["total_timesteps"] - self.model.num_timesteps, unit="step")

    def _on_step(self) -> bool:
        self._bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self._bar.refresh()
        self._bar.close()


def init_callback(model: Any, callback: Any, progress_bar: bool) -> BaseCallback | None:
    """The callback ``learn`` runs, initialised for ``model``: ``None``, a callback, a list of them or a function
    ``f(locals, globals) -> bool``, plus a progress bar if asked (``None`` when there is nothing to call).

    ``model`` is an SB3-like model (SB3's callbacks type it as ``BaseAlgorithm``; QLearning has its surface).
    """
    if callback is None and not progress_bar:
        return None
    if isinstance(callback, list):
        callback = CallbackList(callback)
    if callback is None:
        callback = CallbackList([])
    elif not isinstance(callback, BaseCallback):
        callback = ConvertCallback(callback)
    if progress_bar:
        callback = CallbackList([callback, TqdmProgressBar()])
    callback.init_callback(model)
    return callback
