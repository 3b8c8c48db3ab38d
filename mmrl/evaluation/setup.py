"""Evaluation set-up: load a model (run directory, model file, policy bundle or model object) and rebuild the
environment it was trained on (env id, env kwargs, tokenizer)::

    setup = prepare("runs/mmrl_GoTo-5x5-v0/ppo/0-20250101-120000", split="test")
    venv = setup.adapt(setup.make_vec_env(8))      # wrapped as the model needs, spaces checked
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from mmrl.trust import check_env_id_from_file, check_level_from_bundle

__all__ = ["SPLITS", "EvalSetup", "ModelLike", "check_spaces", "is_bundle", "prepare"]

SPLITS = ("train", "test", "all", "paraphrase")  # mission_split values (mmrl.envs.grammar.SPLITS)

#: Largest model file ``mmrl evaluate`` opens (4 GiB).
MAX_MODEL_FILE_BYTES = 4 << 30

ModelLike = Any  # an SB3 ``BaseAlgorithm``, :class:`~mmrl.agents.QLearning` or a loaded policy bundle


@dataclass
class EvalSetup:
    """A loaded model and everything needed to rebuild its environment."""

    model: ModelLike
    name: str
    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    tokenizer_config: dict[str, Any] | None = None
    wrap_spec: dict[str, Any] | None = None
    """The wrappers training applied to another package's env (``config.yaml``'s ``env_wrappers``; checked
    against :data:`mmrl.wrappers.auto.WRAPPERS` when applied, so a spec read from a file runs no code)."""

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """One environment with the training wrappers (tokenizer included)."""
        kwargs = dict(self.env_kwargs)
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        if self.wrap_spec is not None and not self.env_id.startswith("mmrl/"):
            from mmrl.wrappers.auto import make_wrapped

            return make_wrapped(self.env_id, self.wrap_spec, **kwargs)
        try:
            env = gym.make(self.env_id, **kwargs)
        except (TypeError, gym.error.Error) as error:
            raise ValueError(
                f"cannot build environment {self.env_id!r} with env kwargs {kwargs}: {error}; "
                "check --env / --split (mission_split only exists for mmrl/ environments)"
            ) from error
        if self.tokenizer_config is not None and not self.env_id.startswith("mmrl/"):
            from mmrl.wrappers import TokenizeText

            env = TokenizeText(env, tokenizer_config=self.tokenizer_config)
        return env

    def make_vec_env(self, n_envs: int) -> VecEnv:
        """``n_envs`` environments: mmrl's batched ``VecEnv`` for ``mmrl/`` ids, else a ``DummyVecEnv``."""
        if self.env_id.startswith("mmrl/"):
            from mmrl.envs.vec_env import make_vec_env

            try:
                return make_vec_env(self.env_id, n_envs, env_kwargs=self.env_kwargs)
            except TypeError as error:
                raise ValueError(
                    f"cannot build environment {self.env_id!r} with env kwargs {self.env_kwargs}: {error}"
                ) from error
        return DummyVecEnv([self.make_env for _ in range(n_envs)])

    def adapt(self, venv: VecEnv) -> VecEnv:
        """Wrap ``venv`` as the model's algorithm would (SB3 transposes channel-last images), then check that the
        observation and action spaces match the model's.

        Raises:
            ValueError: Naming both spaces when they differ.
        """
        from stable_baselines3.common.base_class import BaseAlgorithm
        from stable_baselines3.common.policies import BasePolicy

        from mmrl.algorithms import wrap_like_sb3

        # SB3 models, and SB3 policies loaded from a bundle, see channel-last images transposed
        if isinstance(self.model, BaseAlgorithm) or isinstance(getattr(self.model, "policy", None), BasePolicy):
            venv = wrap_like_sb3(venv)
        check_spaces(self.model, venv.observation_space, venv.action_space, self.env_id)
        return venv


def check_spaces(model: ModelLike, observation_space: spaces.Space, action_space: spaces.Space, env_id: str) -> None:
    """Refuse a model whose observation or action space differs from the environment's.

    Raises:
        ValueError: Naming the model's and the environment's spaces.
    """
    problems = []
    if model.observation_space != observation_space:
        problems.append(f"observation space: model {model.observation_space}, environment {observation_space}")
    if model.action_space != action_space:
        problems.append(f"action space: model {model.action_space}, environment {action_space}")
    if problems:
        raise ValueError(
            f"the model does not fit environment {env_id!r} ({'; '.join(problems)}); evaluate on the environment "
            "(--env, env kwargs, split) the model was trained on"
        )


def is_bundle(path: Path) -> bool:
    """A policy bundle directory, or its ``manifest.json`` (see :mod:`mmrl.bundle`)."""
    from mmrl.bundle import MANIFEST_NAME

    return (path.is_dir() and (path / MANIFEST_NAME).is_file()) or (path.is_file() and path.name == MANIFEST_NAME)


def _resolve_bundle(
    path: Path, env_id: str | None, env_kwargs: dict[str, Any] | None, allowed: Collection[str] | None
) -> EvalSetup:
    """A policy bundle: loaded without unpickling; env id and kwargs from its export metadata unless given (checked
    first: no module to import, no level path)."""
    from mmrl.bundle import load_policy

    loaded = load_policy(path)
    metadata = loaded.manifest.get("metadata") or {}
    saved_env_id = metadata.get("env_id") if isinstance(metadata, dict) else None
    saved_env_kwargs = metadata.get("env_kwargs") if isinstance(metadata, dict) else None
    if saved_env_kwargs is not None and not isinstance(saved_env_kwargs, dict):
        raise ValueError(f"{path}: metadata env_kwargs must be a JSON object, got {type(saved_env_kwargs).__name__}")
    if env_id is None and saved_env_id is not None:
        check_env_id_from_file(saved_env_id, f"{path} metadata", allowed)
    if "level" not in (env_kwargs or {}):
        check_level_from_bundle(saved_env_kwargs or {}, f"{path} metadata")
    resolved_env_id = env_id or saved_env_id
    if resolved_env_id is None:
        raise ValueError(f"the bundle {path} does not name its environment (no metadata env_id); pass env_id / --env")
    kwargs = dict(saved_env_kwargs or {})  # as for run directories: e.g. the image layout trained on
    kwargs.update(env_kwargs or {})
    return EvalSetup(
        model=loaded,
        name=str(path),
        algo=str(loaded.algo or "policy"),
        env_id=resolved_env_id,
        env_kwargs=kwargs,
        tokenizer_config=loaded.tokenizer_config,
        wrap_spec=_wrap_spec(metadata.get("env_wrappers") if isinstance(metadata, dict) else None, path),
    )


def _check_source(path: Path) -> None:
    """Refuse what is not a folder or a regular file of a sane size (a device, a FIFO), before reading it."""
    info = path.stat()
    if stat.S_ISDIR(info.st_mode):
        return
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file or a folder; pass a run directory, model file or bundle")
    if info.st_size > MAX_MODEL_FILE_BYTES:
        raise ValueError(
            f"{path} is {info.st_size} bytes, over the {MAX_MODEL_FILE_BYTES}-byte limit for a model file; "
            "check the path"
        )


def _resolve(
    model_or_run_dir: ModelLike | str | os.PathLike[str],
    env_id: str | None,
    env_kwargs: dict[str, Any] | None,
    trust: bool = False,
    allowed: Collection[str] | None = None,
) -> EvalSetup:
    """Load the model and find its environment; see :func:`evaluate` for the arguments."""
    if not isinstance(model_or_run_dir, (str, os.PathLike)):
        model = model_or_run_dir
        if not hasattr(model, "predict") or not hasattr(model, "observation_space"):
            raise TypeError(
                "model_or_run_dir must be a run directory, a model file or a model with predict(), "
                f"got {type(model).__name__}"
            )
        if env_id is None:
            raise ValueError("evaluating a model object needs env_id=...; or pass its run directory instead")
        return EvalSetup(model, type(model).__name__, type(model).__name__, env_id, dict(env_kwargs or {}))

    path = Path(model_or_run_dir)
    if not path.exists():
        raise FileNotFoundError(f"no run directory or model file at {path}; check the path")
    _check_source(path)
    if is_bundle(path):
        return _resolve_bundle(path, env_id, env_kwargs, allowed)
    from mmrl.training.run_dir import RunDir, load_model, run_dir_of

    run_dir = path if path.is_dir() else run_dir_of(path)
    model_path = None if path.is_dir() else path

    run = RunDir(run_dir) if run_dir is not None else None
    target = model_path if model_path is not None else path
    try:
        model = load_model(target, trust=trust)
    except (ValueError, TypeError, FileNotFoundError):
        raise
    except Exception as error:  # SB3 / zipfile / pickle raise many kinds on damaged files
        raise ValueError(f"cannot load the model from {target}: {type(error).__name__}: {error}") from error
    algo = run.algo if run is not None else None
    saved_env_id = run.env_id if run is not None else None
    saved_env_kwargs = run.env_kwargs if run is not None else {}
    tokenizer_config = run.tokenizer_config if run is not None else None
    wrap_spec = _wrap_spec(run.config.get("env_wrappers") if run is not None else None, run_dir)

    if env_id is None and saved_env_id is not None:
        check_env_id_from_file(saved_env_id, f"{run_dir} config.yaml", allowed)
    resolved_env_id = env_id or saved_env_id
    if resolved_env_id is None:
        raise ValueError(f"no env id known for {path} (no run directory config.yaml); pass env_id / --env")
    kwargs = dict(saved_env_kwargs)
    kwargs.update(env_kwargs or {})
    return EvalSetup(
        model=model,
        name=str(path),
        algo=str(algo or type(model).__name__),
        env_id=resolved_env_id,
        env_kwargs=kwargs,
        tokenizer_config=tokenizer_config,
        wrap_spec=wrap_spec,
    )


def _wrap_spec(value: Any, where: Any) -> dict[str, Any] | None:
    """A recorded wrapper spec, checked (:func:`mmrl.wrappers.auto.check_wrap_spec`), or None."""
    if value is None:
        return None
    from mmrl.wrappers.auto import check_wrap_spec

    try:
        check_wrap_spec(value)
    except ValueError as error:
        raise ValueError(f"{where}: env_wrappers: {error}") from None
    return dict(value)


def prepare(
    model_or_run_dir: ModelLike | str | os.PathLike[str],
    env_id: str | None = None,
    split: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    trust: bool = False,
    allowed_env_ids: Collection[str] | None = None,
) -> EvalSetup:
    """Load the model and resolve its environment (``split`` sets ``mission_split``; ``trust`` and
    ``allowed_env_ids`` as in :func:`~mmrl.evaluation.evaluate.evaluate`)."""
    if env_id is not None:
        from mmrl.envs import check_env_id

        check_env_id(env_id)
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise TypeError(f"env_kwargs must be a dict, got {type(env_kwargs).__name__}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    setup = _resolve(model_or_run_dir, env_id, env_kwargs, trust, allowed_env_ids)
    if split is not None:
        setup.env_kwargs["mission_split"] = split
    return setup
