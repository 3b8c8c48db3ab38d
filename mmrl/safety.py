"""Fault safety for training: stop on NaN/inf before it is checkpointed, and name the env that crashed a worker.

* :class:`NonFiniteGuard`: an SB3 callback that raises :class:`NonFiniteError` (a ``FloatingPointError`` and a
  ``ValueError``) naming where a NaN/inf appeared: ``observations``, ``rewards``, a policy parameter, or a logged
  training loss.
* :class:`SafeSubprocVecEnv`: a ``SubprocVecEnv`` whose workers catch exceptions raised by the env's ``step``/``reset``
  and send them back, so the main process raises ``RuntimeError("environment 2 raised KeyError: ...")`` with the
  worker's traceback instead of a bare ``EOFError``.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import SubprocVecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

#: Logged values that are NaN in healthy training: SB3's explained variance is NaN when a rollout's returns are
#: constant (e.g. no reward yet in a sparse-reward env).
_DIAGNOSTICS = frozenset({"train/explained_variance"})

#: Info key under which a guarded worker reports an exception raised by its env.
WORKER_ERROR_KEY = "mmrl_worker_error"


class NonFiniteError(FloatingPointError, ValueError):
    """A NaN or infinity appeared in observations, rewards, policy parameters or training losses."""


def _non_finite_summary(values: Any) -> str | None:
    """None if ``values`` is all finite (or not floating point); else a short description of the bad entries."""
    if isinstance(values, torch.Tensor):
        if not values.is_floating_point() or bool(torch.isfinite(values).all()):
            return None
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.floating) or bool(np.isfinite(array).all()):
        return None
    bad = ~np.isfinite(array)
    kinds = "/".join(k for k, present in (("NaN", np.isnan(array).any()), ("inf", np.isinf(array).any())) if present)
    where = ""
    if array.ndim >= 1:
        rows = np.flatnonzero(bad.reshape(array.shape[0], -1).any(axis=1))
        where = f" at env indices {rows[:8].tolist()}{' ...' if rows.size > 8 else ''}"
    return f"{kinds} ({int(bad.sum())} of {array.size} values{where})"


class NonFiniteGuard(BaseCallback):
    """Stops SB3 training with :class:`NonFiniteError` as soon as a NaN/inf shows up.

    Checks, in order of appearance: every step, the new observations (``self.locals["new_obs"]``, floating-point
    parts only, per key for Dict observations) and the rewards (``self.locals["rewards"]``); at the start and end
    of every rollout, and at the end of training, every policy parameter (catching a divergent update before the
    next rollout steps) and the ``train/...`` values the algorithm logged (losses, entropy, ...).

    Put it **before** the checkpoint callback in a ``CallbackList`` (``CallbackList([NonFiniteGuard(),
    CheckpointCallback(...)])``): callbacks run in list order, so the guard raises before the checkpoint callback
    gets to save a poisoned model at that step.

    Args:
        check_observations: Check ``new_obs`` each step.
        check_rewards: Check ``rewards`` each step.
        check_parameters: Check the policy's parameters around each rollout.
        check_losses: Check logged ``train/...`` values around each rollout.
        verbose: SB3 verbosity.
    """

    def __init__(
        self,
        check_observations: bool = True,
        check_rewards: bool = True,
        check_parameters: bool = True,
        check_losses: bool = True,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.check_observations = check_observations
        self.check_rewards = check_rewards
        self.check_parameters = check_parameters
        self.check_losses = check_losses

    def _raise(self, what: str, summary: str, advice: str) -> None:
        raise NonFiniteError(
            f"NonFiniteGuard: {what} contain {summary} at timestep {self.num_timesteps}; training stopped before "
            f"anything later is written. {advice}"
        )

    def _check_observations(self, observations: Any, name: str = "observations") -> None:
        if isinstance(observations, Mapping):
            for key, value in observations.items():
                self._check_observations(value, f"{name}[{key!r}]")
        elif isinstance(observations, tuple):
            for i, value in enumerate(observations):
                self._check_observations(value, f"{name}[{i}]")
        elif (summary := _non_finite_summary(observations)) is not None:
            self._raise(name, summary, "Fix the environment (or wrapper) that produces them.")

    def _check_model(self, when: str) -> None:
        if self.check_parameters:
            for name, parameter in self.model.policy.named_parameters():
                if (summary := _non_finite_summary(parameter)) is not None:
                    self._raise(
                        f"policy parameter {name!r} ({when})",
                        summary,
                        "The update diverged: lower the learning rate, clip gradients (max_grad_norm) or "
                        "normalise observations/rewards.",
                    )
        if self.check_losses and self.model.logger is not None:
            for key, value in getattr(self.model.logger, "name_to_value", {}).items():
                if key in _DIAGNOSTICS or not key.startswith("train/"):
                    continue
                if isinstance(value, float | np.floating) and not np.isfinite(value):
                    self._raise(
                        f"logged training value {key!r} ({when})",
                        str(value),
                        "The loss diverged: lower the learning rate or check the rewards' scale.",
                    )

    def _on_step(self) -> bool:
        if self.check_rewards and (summary := _non_finite_summary(self.locals.get("rewards"))) is not None:
            self._raise("rewards", summary, "Fix the environment's reward (or the reward wrapper).")
        if self.check_observations and "new_obs" in self.locals:
            self._check_observations(self.locals["new_obs"])
        return True

    def _on_rollout_start(self) -> None:
        self._check_model("before the rollout, after the last update")

    def _on_rollout_end(self) -> None:
        self._check_model("after the rollout")

    def _on_training_end(self) -> None:
        self._check_model("at the end of training")


# ---------------------------------------------------------------------------------------------- subprocess envs
class _ErrorReportingWrapper(gym.Wrapper):
    """Catches exceptions from ``step``/``reset`` inside a worker and returns them in ``info``.

    A caught step returns the last observation, reward 0 and ``terminated = truncated = False`` (so the worker
    does not reset a broken env); the main process raises before anyone uses that step.
    """

    def __init__(self, env: gym.Env, index: int) -> None:
        super().__init__(env)
        self._index = index
        self._last_observation: Any = None

    def _report(self, during: str, error: BaseException) -> dict[str, Any]:
        return {
            WORKER_ERROR_KEY: {
                "index": self._index,
                "during": during,
                "type": type(error).__name__,
                "message": str(error),
                "traceback": traceback.format_exc(),
            }
        }

    def _fallback_observation(self) -> Any:
        if self._last_observation is not None:
            return self._last_observation
        return self.observation_space.sample()

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        try:
            observation, info = self.env.reset(**kwargs)
        except Exception as error:
            return self._fallback_observation(), self._report("reset", error)
        self._last_observation = observation
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        try:
            observation, reward, terminated, truncated, info = self.env.step(action)
        except Exception as error:
            return self._fallback_observation(), 0.0, False, False, self._report("step", error)
        self._last_observation = observation
        return observation, reward, terminated, truncated, info


class _GuardedFactory:
    """Picklable env factory: ``env_fn()`` wrapped in :class:`_ErrorReportingWrapper`."""

    def __init__(self, env_fn: Callable[[], gym.Env], index: int) -> None:
        self.env_fn = env_fn
        self.index = index

    def __call__(self) -> gym.Env:
        return _ErrorReportingWrapper(self.env_fn(), self.index)


class SafeSubprocVecEnv(SubprocVecEnv):
    """``SubprocVecEnv`` that turns an env's exception in a worker into ``RuntimeError`` naming the env index.

    Each env is wrapped in the worker so exceptions in ``step``/``reset`` are caught there and sent back with
    their traceback; the main process raises ``RuntimeError("environment {i} raised {Type}: {message}")`` with the
    worker traceback appended. If a worker process dies anyway (an exception elsewhere, a segfault, being killed),
    the ``EOFError``/``BrokenPipeError`` becomes a ``RuntimeError`` naming the dead workers and exit codes. After
    either error the vec env should be closed.

    Args:
        env_fns: Env factories, as for ``SubprocVecEnv``.
        start_method: Multiprocessing start method, as for ``SubprocVecEnv``.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], start_method: str | None = None) -> None:
        guarded: list[Callable[[], gym.Env]] = [_GuardedFactory(fn, i) for i, fn in enumerate(env_fns)]
        try:
            super().__init__(guarded, start_method=start_method)
        except (EOFError, ConnectionError) as error:
            raise self._dead_workers_error("starting the environments", error) from error

    def _dead_workers_error(self, during: str, error: BaseException) -> RuntimeError:
        dead = []
        for i, process in enumerate(getattr(self, "processes", [])):
            process.join(timeout=0.2)
            if not process.is_alive():
                dead.append(f"environment {i} (worker exit code {process.exitcode})")
        who = ", ".join(dead) if dead else "an environment worker"
        return RuntimeError(
            f"{who} died while {during} ({type(error).__name__}); the worker's traceback, if any, was printed on "
            "stderr. Check the env factory and the env's methods"
        )

    @staticmethod
    def _raise_reported(infos: Sequence[Mapping[str, Any]]) -> None:
        for info in infos:
            report = info.get(WORKER_ERROR_KEY) if isinstance(info, Mapping) else None
            if report is not None:
                raise RuntimeError(
                    f"environment {report['index']} raised {report['type']}: {report['message']} "
                    f"(during {report['during']})\n\nworker traceback:\n{report['traceback']}"
                )

    def step_async(self, actions: np.ndarray) -> None:
        try:
            super().step_async(actions)
        except (EOFError, ConnectionError) as error:
            raise self._dead_workers_error("sending actions", error) from error

    def step_wait(self) -> VecEnvStepReturn:
        try:
            observations, rewards, dones, infos = super().step_wait()
        except (EOFError, ConnectionError) as error:
            self.waiting = False
            raise self._dead_workers_error("stepping", error) from error
        self._raise_reported(infos)
        return observations, rewards, dones, infos

    def reset(self) -> VecEnvObs:
        try:
            observations = super().reset()
        except (EOFError, ConnectionError) as error:
            raise self._dead_workers_error("resetting", error) from error
        self._raise_reported(self.reset_infos)
        return observations

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        try:
            return super().env_method(method_name, *method_args, indices=indices, **method_kwargs)
        except (EOFError, ConnectionError) as error:
            raise self._dead_workers_error(f"calling {method_name!r}", error) from error

    def close(self) -> None:
        """Close the workers; tolerates workers that already died (no ``BrokenPipeError`` on close)."""
        if self.closed:
            return
        for remote in self.remotes:
            with contextlib.suppress(EOFError, OSError):
                if self.waiting:
                    remote.recv()
                remote.send(("close", None))
        self.waiting = False
        for process in self.processes:
            process.join(timeout=5.0)
            if process.is_alive():
                process.terminate()
                process.join()
        self.closed = True

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        try:
            return super().get_attr(attr_name, indices=indices)
        except (EOFError, ConnectionError) as error:
            raise self._dead_workers_error(f"reading {attr_name!r}", error) from error
