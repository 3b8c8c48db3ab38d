"""Optional packages that register families of other people's environments, imported on demand.

``gym.make("BabyAI-GoToObj-v0")`` works only after ``import minigrid``. mmrl imports the package of a known
family itself, from this fixed list (an id never names the module to import: Gymnasium's ``module:Env-v0`` form
stays refused wherever an id comes from a file), and says which extra to install when it is missing.

Example::

    from mmrl.env_packages import ensure_registered

    ensure_registered("BabyAI-GoToObj-v0")  # imports minigrid, or: ValueError naming the minigrid extra
"""

from __future__ import annotations

import importlib

import gymnasium as gym

__all__ = ["ENV_PACKAGES", "ensure_registered"]

#: Id prefix -> (module that registers the family, mmrl extra that installs it).
ENV_PACKAGES: dict[str, tuple[str, str]] = {"BabyAI-": ("minigrid", "minigrid"), "MiniGrid-": ("minigrid", "minigrid")}


def ensure_registered(env_id: str) -> None:
    """Import the package that registers ``env_id``'s family, if it is a known one and not registered yet.

    Raises:
        ValueError: The family's package is not installed (one line naming the extra).
    """
    if not isinstance(env_id, str) or env_id in gym.registry:
        return
    for prefix, (module, extra) in ENV_PACKAGES.items():
        if env_id.startswith(prefix):
            try:
                importlib.import_module(module)
            except ImportError:
                raise ValueError(
                    f"{env_id} is registered by the {module} package, which is not installed: pip install "
                    f'-c constraints-cpu.txt -e ".[{extra}]" (or pip install "mmrl-multimodal[{extra}]")'
                ) from None
            return
