"""Documented upper bounds on sizes and counts that come from users or files, checked before allocating.

Every limit has a name, a default and an environment variable that raises it for users who need more
(``MMRL_MAX_GRID_SIDE=256 mmrl train ...``). README's "Safety" section lists them.

>>> check_limit("n_envs", 16, "max_envs")
16
>>> short_repr("x" * 1000)[:12]
"'xxxxxxxxxxx"
"""

from __future__ import annotations

import itertools
import math
import os
import reprlib
from typing import Any

__all__ = ["DEFAULTS", "check_finite", "check_limit", "get_limit", "max_torch_threads", "short_repr"]

#: Limit name -> (default, what it bounds). The override is the environment variable ``MMRL_<NAME upper-cased>``.
DEFAULTS: dict[str, tuple[int, str]] = {
    "max_grid_side": (128, "side of an env's grid or a level file's map, walls included"),
    "max_level_file_bytes": (1 << 20, "size of a .level file"),
    "max_envs": (4096, "parallel environments (n_envs, num_envs)"),
    "max_obs_bytes": (1 << 30, "bytes of one batch of image observations (n_envs x image size)"),
    "max_timesteps": (10**10, "total training steps"),
    "max_episodes": (1_000_000, "evaluation episodes (mmrl evaluate --episodes, eval_episodes)"),
    "max_rollout_steps": (1 << 24, "n_steps x n_envs of an on-policy rollout buffer"),
    "max_buffer_size": (1 << 24, "DQN replay buffer transitions"),
    "max_layer_width": (1 << 16, "width of one hidden layer (net_arch entries, features_dim)"),
    "max_net_params": (50_000_000, "parameters of the policy / value hidden layers (net_arch)"),
    "max_token_length": (4096, "tokenizer max_length (tokens per instruction)"),
    "max_vocabulary": (1 << 20, "tokenizer words or hash buckets"),
    "max_plot_bins": (100_000, "bins of 'mmrl plot --bins'"),
    "max_episode_length": (10**9, "episode length read from a monitor file"),
    "max_space_elements": (1 << 26, "elements of a Box / MultiDiscrete space read from a file"),
    "max_json_depth": (64, "nesting depth of a JSON or YAML document read from a file"),
    "max_yaml_bytes": (1 << 20, "size of a YAML document (presets, config.yaml, --set values)"),
    "max_yaml_nodes": (100_000, "scalars, lists and mappings in one YAML document"),
}


def get_limit(name: str) -> int:
    """The limit ``name`` (a key of :data:`DEFAULTS`), raised by ``MMRL_<NAME>`` in the environment if set.

    Raises:
        ValueError: If the environment variable is not a positive integer.
    """
    default, _ = DEFAULTS[name]
    variable = "MMRL_" + name.upper()
    text = os.environ.get(variable)
    if text is None or not text.strip():
        return default
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{variable} must be a positive integer, got {short_repr(text)}") from None
    if value < 1:
        raise ValueError(f"{variable} must be a positive integer, got {value}")
    return value


def check_limit(what: str, value: int, name: str) -> int:
    """Returns ``value`` if it is at most the limit ``name``, else raises ``ValueError`` saying how to raise it.

    Args:
        what: The quantity, as the user knows it (``"n_envs"``, ``"level map side"``).
        value: Its value (an int; may be huge).
        name: The limit's name in :data:`DEFAULTS`.
    """
    limit = get_limit(name)
    if value > limit:
        raise ValueError(
            f"{what} = {short_repr(value)} exceeds the limit of {limit:,} ({DEFAULTS[name][1]}); "
            f"set the environment variable MMRL_{name.upper()} to allow more"
        )
    return value


def max_torch_threads() -> int:
    """The most torch threads a setting may ask for: 4 per CPU core, at most 256."""
    return min(256, 4 * (os.cpu_count() or 1))


def check_finite(key: str, value: Any, source: str = "") -> Any:
    """Returns ``value``; raises ``ValueError`` naming ``key`` if it is a float NaN or infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        where = f"{source}: " if source else ""
        raise ValueError(f"{where}{key} must be a finite number, got {value}")
    return value


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlong = 40
for _attribute in ("maxlist", "maxtuple", "maxdict", "maxset", "maxfrozenset", "maxdeque", "maxarray"):
    setattr(_REPR, _attribute, 4)


def short_repr(value: Any, width: int = 80) -> str:
    """``repr(value)`` cut to about ``width`` characters, in time that does not depend on ``value``'s size.

    For error messages about values that came from a file or the command line.
    """
    try:
        text = _REPR.repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= width else text[: width - 3] + "..."


def check_net_arch(layers: list[int], source: str) -> None:
    """Each hidden layer of ``net_arch`` positive and within ``max_layer_width``; their weights within
    ``max_net_params``.

    Raises:
        ValueError: Naming ``source`` and the limit.
    """
    if len(layers) > 64:
        raise ValueError(f"{source}: net_arch has {len(layers)} layers; at most 64 are allowed")
    for width in layers:
        if width < 1:
            raise ValueError(f"{source}: net_arch layers must be positive widths, got {short_repr(width)}")
        check_limit(f"{source}: net_arch layer width", width, "max_layer_width")
    params = sum(a * b for a, b in itertools.pairwise(layers))
    limit = get_limit("max_net_params")
    if 2 * params > limit:  # a policy and a value head
        raise ValueError(
            f"{source}: net_arch {short_repr(layers)} has about {2 * params:,} hidden-layer weights, over the limit "
            f"of {limit:,}; use narrower layers or set MMRL_MAX_NET_PARAMS to allow more"
        )
