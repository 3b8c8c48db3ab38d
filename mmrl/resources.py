"""Where the data folders live: ``envs/`` (level files) and ``agents/`` (presets).

In a source checkout (editable install) they sit beside the package; in an installed wheel they are shipped
inside it as ``mmrl/_data/``.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The folder ``name`` (``"envs"`` or ``"agents"``), from the wheel or the source checkout."""
    if name not in ("envs", "agents"):
        raise ValueError(f"unknown data folder {name!r}; expected 'envs' or 'agents'")
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"mmrl's data folder {name!r} is missing from the installation (looked in {_PACKAGE_DIR})")


def level_files() -> dict[str, Path]:
    """Built-in level files by level name (the file's stem)."""
    return {path.stem: path for path in sorted(data_dir("envs").glob("*.level"))}
