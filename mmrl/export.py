"""Exporting a run: write the policy of a run directory's SB3 model as a pickle-free policy bundle.

The run's own ``model.zip`` is trusted (it is the user's own training output), so it is loaded with SB3's ``load``;
the bundle (default ``RUN_DIR/policy.bundle``) can then be shared and loaded with :func:`mmrl.load_policy` without
unpickling anything (format: :mod:`mmrl.bundle`)::

    bundle = mmrl.export_run("runs/mmrl_GoTo-5x5-v0/ppo/0-20250101-120000")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmrl.algorithms import get_spec
from mmrl.bundle import export_bundle
from mmrl.training.run_dir import RUN_MARKER, RunDir, is_run_dir
from mmrl.trust import check_env_id_from_file

__all__ = ["DEFAULT_BUNDLE_NAME", "export_run"]

#: Bundle folder name inside the run directory when no output is given.
DEFAULT_BUNDLE_NAME = "policy.bundle"


def _tokenizer_from_env(config: dict[str, Any]) -> dict[str, Any] | None:
    """The tokenizer config of the run's env (built from ``env_id`` / ``env_kwargs``), or None."""
    try:
        import gymnasium as gym

        import mmrl  # noqa: F401  (registers the envs)

        env_id = check_env_id_from_file(config.get("env_id"), "config.yaml")
        env = gym.make(env_id, **dict(config.get("env_kwargs") or {}))
    except Exception:
        return None
    try:
        tokenizer = getattr(env.unwrapped, "tokenizer", None)
        return tokenizer.to_config() if tokenizer is not None else None
    finally:
        env.close()


def export_run(
    run_dir: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    best: bool = False,
    force: bool = False,
) -> Path:
    """Write a policy bundle from a run directory's model; returns the bundle path.

    Args:
        run_dir: A run directory written by :func:`mmrl.train`.
        output: Bundle directory (default ``RUN_DIR/policy.bundle``).
        best: Export ``best_model`` instead of ``model``.
        force: Replace an existing bundle at ``output``.

    Raises:
        FileNotFoundError: If the run directory or its model is missing.
        FileExistsError: If ``output`` exists and ``force`` is False.
        ValueError: For algorithms without a bundle format (Q-learning's ``.npz`` is already pickle-free: load it
            with :func:`mmrl.load_policy`).
    """
    run = RunDir(run_dir)
    if not is_run_dir(run.path):
        raise ValueError(
            f"{run.path} has no {RUN_MARKER} marker, so it is not a run directory written by mmrl train; its model "
            "would be unpickled: export only your own runs"
        )
    spec = get_spec(run.algo)
    model_path = run.best_model_path if best else run.model_path
    if not spec.sb3:
        raise ValueError(
            f"{run.path} is a {spec.name} run: {model_path.name} holds only arrays and JSON (no pickle); load it "
            "directly with mmrl.load_policy, no export needed"
        )
    if spec.bundle_name is None:
        raise ValueError(f"{run.path} is a {spec.name} run, which policy bundles do not support; share the SB3 zip")
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} does not exist: training in {run.path} did not save a model")
    out = Path(output) if output is not None else run.path / DEFAULT_BUNDLE_NAME
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it or -o to choose another path")
    model = spec.load_class().load(model_path, device="cpu")  # trusted: the user's own run
    config = dict(run.config)
    tokenizer = run.tokenizer_config
    if tokenizer is None:
        tokenizer = _tokenizer_from_env(config)
    metadata = {
        "source": str(model_path),
        "env_id": config.get("env_id"),
        "env_kwargs": config.get("env_kwargs") or {},
        "seed": config.get("seed"),
    }
    if config.get("env_wrappers") is not None:  # another package's env: the wrappers training applied
        metadata["env_wrappers"] = config["env_wrappers"]
    return export_bundle(model, out, tokenizer_config=tokenizer, metadata=metadata, overwrite=True)
