"""What mmrl trusts in files it reads: nothing a file says is imported or followed.

* SB3 ``.zip`` files run pickled code when they are loaded. mmrl loads one without ``trust=True`` only from a
  marked run directory (:func:`mmrl.training.run_dir.run_dir_of`); anything else needs ``trust=True`` /
  ``--trust``, or a pickle-free policy bundle (:mod:`mmrl.bundle`).
* Env ids from files are checked by :func:`check_env_id_from_file` before ``gym.make`` (no ``module:`` prefix, an
  id already registered or explicitly allowed); a bundle's level must be a built-in one
  (:func:`check_level_from_bundle`).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Collection, Mapping
from typing import Any

__all__ = [
    "TRUST_MESSAGE",
    "check_bundle_metadata",
    "check_env_id_from_file",
    "check_level_from_bundle",
    "is_sb3_zip",
]

_MAX_SHOWN = 80

TRUST_MESSAGE = (
    "SB3 .zip files run pickled code on load; pass trust=True / --trust only for files you created or trust "
    "(or convert your own run to a pickle-free bundle with `mmrl export RUN_DIR`)"
)


def is_sb3_zip(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zip with SB3's ``data`` member: ``PPO.load`` and friends would unpickle it."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "data" in archive.namelist()


def check_env_id_from_file(env_id: Any, where: str, allowed: Collection[str] | None = None) -> str:
    """Check an env id read from a file (a bundle's metadata, a run's ``config.yaml``) before ``gym.make`` sees it.

    Gymnasium imports the module named before a ``:`` in an id, so an id from a file could run code. Accepted:
    with ``allowed``, only the ids listed there; else only ids already registered in this process (mmrl's own
    ``mmrl/...`` ids, Gymnasium's, and those of packages you imported), looked up without importing anything.

    Raises:
        ValueError: One line (the id is shown only when short) saying how to proceed.
    """
    import gymnasium as gym

    if not isinstance(env_id, str):
        raise ValueError(f"{where}: env id must be a string, got {type(env_id).__name__}")
    shown = repr(env_id) if len(env_id) <= _MAX_SHOWN else f"of {len(env_id)} characters"
    if ":" in env_id:
        raise ValueError(
            f"{where}: env id {shown} names a module to import (module:id); ids from files may not import code: "
            "import the module yourself and pass the plain id with --env"
        )
    if allowed is not None:
        if env_id not in allowed:
            raise ValueError(f"{where}: env id {shown} is not in the allowed env ids")
    else:
        from mmrl.env_packages import ensure_registered

        ensure_registered(env_id)  # a fixed list of packages (minigrid), never a module named by the id
    if allowed is None and env_id not in gym.registry:
        raise ValueError(
            f"{where}: env id {shown} is not registered; import the package that registers it (ids from files are "
            "never imported), or pass --env"
        )
    return env_id


def check_level_from_bundle(env_kwargs: Mapping[str, Any], where: str) -> None:
    """A bundle's ``env_kwargs.level`` must name a built-in level: a path in a bundle is never followed.

    Raises:
        ValueError: One line that never quotes the file the path points to.
    """
    level = env_kwargs.get("level")
    if level is None:
        return
    from mmrl.resources import level_files

    if not isinstance(level, str) or level not in level_files():
        shown = repr(level) if isinstance(level, str) and len(level) <= _MAX_SHOWN else "a non-built-in value"
        raise ValueError(
            f"{where}: env_kwargs.level is {shown}, which is not a built-in level; a bundle may only name built-in "
            "levels (paths are never followed): pass env_kwargs yourself to evaluate on a level file"
        )


def check_bundle_metadata(manifest: Mapping[str, Any], allowed_env_ids: Collection[str] | None = None) -> None:
    """Check what a bundle's metadata would make mmrl do (its env id and env kwargs), without doing it; used by
    ``mmrl evaluate`` and ``mmrl inspect``.

    Raises:
        ValueError: For an env id that is not registered or names a module, or a level path.
    """
    metadata = manifest.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise ValueError("bundle metadata must be a JSON object")
    if metadata.get("env_id") is not None:
        check_env_id_from_file(metadata["env_id"], "bundle metadata", allowed_env_ids)
    env_kwargs = metadata.get("env_kwargs") or {}
    if not isinstance(env_kwargs, Mapping):
        raise ValueError("bundle metadata env_kwargs must be a JSON object")
    check_level_from_bundle(env_kwargs, "bundle metadata")
