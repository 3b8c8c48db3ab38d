"""Hyperparameter presets (``agents/<algo>.yaml``): loading, validation and resolution into a :class:`TrainConfig`.

A preset file maps an env id, a shell-style pattern (``fnmatch``, e.g. ``mmrl/GoTo-*``) or ``default`` to an entry
(like RL Zoo's hyperparameter files)::

    default:                 # applies to every env
      timesteps: 100000
      n_envs: 8
      learning_rate: 0.0003
    "mmrl/GoTo-*":           # patterns apply in file order, after default
      n_steps: 64
    mmrl/GoTo-5x5-v0:        # the exact id applies last
      timesteps: 60000
      env_kwargs: {image_mode: symbolic}

Entry keys are :class:`~mmrl.training.config.TrainConfig` fields (``timesteps``, ``n_envs``, ``env_kwargs``,
``fusion``, ``text_encoder``, ``image_encoder``, ``features_dim``, ``net_arch``, ``eval_freq``, ``eval_episodes``,
``stop_success``, ``checkpoint_freq``, ...) or constructor arguments of the algorithm (:data:`HYPERPARAMS`).
``env_kwargs`` entries are merged key by key. Overrides (``--set key=value``) use the same keys, plus
``env_kwargs.<name>=value``; values are parsed as YAML (``--set n_steps=64`` gives an int). Unknown keys, wrong
types, non-finite floats (``nan``, ``inf``) and sizes over the limits of :mod:`mmrl.limits` raise a ``ValueError``
naming the key and the file; nothing is ever evaluated (YAML is read by :mod:`mmrl.yaml_io`: ``safe_load``
semantics, aliases refused).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from mmrl.algorithms import ALGORITHMS, get_spec
from mmrl.limits import check_finite, check_limit, check_net_arch, max_torch_threads, short_repr
from mmrl.pretrain.collect import DEMONSTRATORS, MAX_ROUNDS
from mmrl.training.config import FINAL_MODELS, TrainConfig
from mmrl.training.learning_rate import LEARNING_RATE_SCHEDULES

__all__ = [
    "CONFIG_KEYS",
    "HYPERPARAMS",
    "check_device",
    "check_env_kwargs",
    "complete_config",
    "load_preset",
    "parse_overrides",
    "preset_path",
    "resolve_config",
]

_F, _I, _B, _S = "float", "int", "bool", "str"

#: TrainConfig keys settable from a preset, with their types.
CONFIG_KEYS: dict[str, str] = {
    "timesteps": _I,
    "n_envs": _I,
    "env_kwargs": "dict",
    "fusion": _S,
    "text_encoder": _S,
    "image_encoder": _S,
    "features_dim": _I,
    "net_arch": "list[int]",
    "image_pool": _S,
    "image_channels": "int|None",  # null: the encoder's own widths
    "cell_dim": _I,
    "blank_empty_cells": "bool|None",
    "image_frames": "int|None",
    "learning_rate_schedule": _S,
    "eval_freq": _I,
    "eval_episodes": _I,
    "stop_success": "float|None",
    "checkpoint_freq": _I,
    "final_model": _S,
    "device": _S,
    "torch_threads": _I,
    "check_finite": _B,
    "pretrained": _S,  # mmrl.pretrain: a pre-trained encoder bundle or bc run directory, read by the extractor
    "freeze": _S,
    "text_model": _S,
    "demonstrations": _I,
    "demonstration_updates": _I,
    "demonstration_values": "bool|None",
    "demonstration_rounds": _I,
    "demonstrator": "str|None",
}

#: Algorithm constructor arguments settable from a preset, with their types (``"float|None"``: null allowed); each
#: algorithm's come from its :class:`mmrl.algorithms.AlgorithmSpec`.
HYPERPARAMS: dict[str, dict[str, str]] = {name: dict(spec.hyperparams) for name, spec in ALGORITHMS.items()}

_POSITIVE = {
    "timesteps",
    "n_envs",
    "features_dim",
    "image_channels",
    "cell_dim",
    "eval_episodes",
    "n_steps",
    "batch_size",
    "n_epochs",
    "train_freq",
    "target_update_interval",
    "max_states",
    "demonstration_updates",
}
#: Float settings that must be > 0 (None, where allowed, is not checked).
_STRICTLY_POSITIVE_FLOATS = {"clip_range", "clip_range_vf", "target_kl", "max_grad_norm", "rms_prop_eps"}
_NON_NEGATIVE = {
    "eval_freq",
    "checkpoint_freq",
    "ent_coef",
    "vf_coef",
    "buffer_size",
    "learning_starts",
    "torch_threads",
    "demonstrations",
    "demonstration_rounds",
}
#: Settings with an upper bound from :mod:`mmrl.limits`: key -> (description, limit name).
_UPPER_LIMITS = {
    "timesteps": ("timesteps", "max_timesteps"),
    "n_envs": ("n_envs", "max_envs"),
    "n_steps": ("n_steps", "max_rollout_steps"),
    "batch_size": ("batch_size", "max_rollout_steps"),
    "buffer_size": ("buffer_size", "max_buffer_size"),
    "features_dim": ("features_dim", "max_layer_width"),
    "image_channels": ("image_channels", "max_layer_width"),
    "cell_dim": ("cell_dim", "max_layer_width"),
    "eval_episodes": ("eval_episodes", "max_episodes"),
}
_UNIT_INTERVAL = {
    "gamma",
    "gae_lambda",
    "tau",
    "exploration_fraction",
    "exploration_initial_eps",
    "exploration_final_eps",
}


def check_algo(algo: Any) -> str:
    """Return ``algo`` if known, else raise ``ValueError`` listing the algorithms."""
    return get_spec(algo).name


def preset_path(algo: str) -> Path:
    """The built-in preset file of ``algo`` (``agents/<algo>.yaml``)."""
    from mmrl.resources import data_dir

    return data_dir("agents") / get_spec(algo).preset_file


def _read_yaml(path: Path) -> Any:
    from mmrl.yaml_io import load_yaml_file

    try:
        return load_yaml_file(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"preset file {path} does not exist") from None


def _type_ok(value: Any, kind: str) -> tuple[bool, Any]:
    """Whether ``value`` fits ``kind``, and the value converted (ints and float-like strings for floats)."""
    if kind.endswith("|None"):
        if value is None:
            return True, None
        kind = kind[: -len("|None")]
    if kind == _B:
        return isinstance(value, bool), value
    if kind == _I:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind == _F:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, (int, float)):
            return True, float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if kind == _S:
        return isinstance(value, str), value
    if kind == "dict":
        return isinstance(value, dict) and all(isinstance(k, str) for k in value), value
    if kind == "list[int]":
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        return ok, value
    raise AssertionError(kind)


def validate_entry(entry: Any, algo: str, source: str) -> dict[str, Any]:
    """Check one preset entry (or a set of overrides) and return it with floats converted.

    Args:
        entry: Mapping of preset keys to values.
        algo: The algorithm (its :data:`HYPERPARAMS` are allowed).
        source: Where the entry comes from, for messages (e.g. ``"agents/ppo.yaml [default]"``).

    Raises:
        ValueError: For an unknown key, a wrong type or an out-of-range value; the message names key and source.
    """
    if not isinstance(entry, dict):
        raise ValueError(f"{source}: expected a mapping of settings, got {type(entry).__name__}")
    schema = {**CONFIG_KEYS, **HYPERPARAMS[algo]}
    result: dict[str, Any] = {}
    for key, value in entry.items():
        if key not in schema:
            raise ValueError(
                f"{source}: unknown key {short_repr(key)} for {algo}; expected one of {', '.join(sorted(schema))} "
                "(or env_kwargs.<name>)"
            )
        ok, converted = _type_ok(value, schema[key])
        if not ok:
            raise ValueError(
                f"{source}: {key!r} must be of type {schema[key]}, got {type(value).__name__} {short_repr(value)}"
            )
        _check_range(key, converted, source, algo)
        result[key] = converted
    return result


def _check_range(key: str, value: Any, source: str, algo: str | None = None) -> None:
    """Raise ``ValueError`` (naming ``key`` and ``source``) if ``value`` is out of the range ``key`` accepts."""
    if value is None:
        return
    check_finite(key, value, source)
    if key in _UPPER_LIMITS:
        what, limit = _UPPER_LIMITS[key]
        check_limit(f"{source}: {key}", value, limit)
    if key == "net_arch":
        check_net_arch(value, source)
    if key == "torch_threads" and value > max_torch_threads():
        raise ValueError(
            f"{source}: torch_threads must be at most {max_torch_threads()} (4 per CPU core, at most 256), got "
            f"{short_repr(value)}; 1 is fastest on a shared machine"
        )
    if key == "learning_rate":
        lr_limit = get_spec(algo).max_learning_rate if algo is not None else None
        if lr_limit is not None and not 0.0 < value <= lr_limit:
            raise ValueError(
                f"{source}: learning_rate must be in (0, {lr_limit:g}] for {algo} (it is the step size of the tabular "
                f"update), got {value}"
            )
        if value <= 0:
            raise ValueError(f"{source}: learning_rate must be > 0, got {value}")
    if key in _POSITIVE and value <= 0:
        raise ValueError(f"{source}: {key} must be > 0, got {value}")
    if key in _STRICTLY_POSITIVE_FLOATS and value <= 0:
        raise ValueError(f"{source}: {key} must be > 0, got {value}")
    if key in _NON_NEGATIVE and value < 0:
        raise ValueError(f"{source}: {key} must be >= 0, got {value}")
    if key in _UNIT_INTERVAL and not 0.0 <= value <= 1.0:
        raise ValueError(f"{source}: {key} must be in [0, 1], got {value}")
    if key == "stop_success" and not 0.0 < value <= 1.0:
        raise ValueError(f"{source}: stop_success must be in (0, 1] (a success rate), got {value}")
    if key == "gradient_steps" and value < -1:
        raise ValueError(f"{source}: gradient_steps must be >= 0, or -1 (as many as env steps), got {value}")
    if key == "device":
        check_device(value, source)
    if key == "demonstrations" and value and algo is not None and not get_spec(algo).clones_demonstrations:
        raise ValueError(
            f"{source}: demonstrations={value} warm-starts an actor-critic policy (ppo, a2c) by behaviour cloning; "
            f"{algo} has none: drop the key or use --algo ppo"
        )
    if key == "demonstration_rounds" and value > MAX_ROUNDS:
        raise ValueError(f"{source}: demonstration_rounds must be at most {MAX_ROUNDS}, got {value}")
    if key == "demonstrator" and value is not None and value not in DEMONSTRATORS:
        raise ValueError(
            f"{source}: unknown demonstrator {short_repr(value)}; valid choices: {', '.join(DEMONSTRATORS)}"
        )
    if key == "final_model" and value not in FINAL_MODELS:
        raise ValueError(
            f"{source}: unknown final_model {short_repr(value)}; valid choices: {', '.join(FINAL_MODELS)} (the "
            "weights training ended with, the best periodic evaluation's, or the mean of the last third's checkpoints)"
        )
    if key == "final_model" and value == "average" and algo is not None and not get_spec(algo).sb3:
        raise ValueError(f"{source}: final_model=average averages network weights; {algo} has none: use last or best")
    if key == "learning_rate_schedule":
        if value not in LEARNING_RATE_SCHEDULES:
            raise ValueError(
                f"{source}: unknown learning_rate_schedule {short_repr(value)}; valid choices: "
                f"{', '.join(LEARNING_RATE_SCHEDULES)}"
            )
        if value != "constant" and algo is not None and not get_spec(algo).sb3:
            raise ValueError(
                f"{source}: learning_rate_schedule={value} is for the SB3 algorithms; {algo} keeps its own step-size "
                "schedule (see agents/README.md)"
            )


def check_device(value: Any, source: str = "device") -> str:
    """Return ``value`` if torch accepts it as a device (``cpu``, ``cuda``, ``cuda:1``, ``auto``, ...), else raise
    ``ValueError``."""
    if not isinstance(value, str):
        raise ValueError(f"{source}: device must be a string such as 'cpu', 'cuda' or 'auto', got {short_repr(value)}")
    if value == "auto":
        return value
    import torch

    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"{source}: unknown device {short_repr(value)}; use 'cpu', 'cuda', 'cuda:<index>', 'mps' or 'auto'"
        ) from None
    return value


def check_env_kwargs(env_id: str, env_kwargs: dict[str, Any], source: str = "env_kwargs") -> None:
    """Check the types of ``env_kwargs`` against the env constructor's annotations (``bool``, ``int``, ``float``,
    ``str``, optionally ``| None``), so that e.g. ``channels_first=notabool`` is refused instead of being treated
    as true. Arguments without such an annotation are left to the constructor.

    Raises:
        ValueError: Naming the argument, the expected and the given type.
    """
    constructor = _env_constructor(env_id)
    if constructor is None:
        return
    import inspect

    parameters: dict[str, inspect.Parameter] = {}
    # a subclass often passes **kwargs on to its base class: collect the named parameters along the MRO
    for function in [klass.__dict__.get("__init__") for klass in getattr(constructor, "__mro__", ())] or [constructor]:
        if function is None or function is object.__init__:
            continue
        try:
            for name, parameter in inspect.signature(function).parameters.items():
                parameters.setdefault(name, parameter)
        except (TypeError, ValueError):
            continue
    for name, value in env_kwargs.items():
        declared = parameters.get(name)
        if declared is None or declared.annotation is inspect.Parameter.empty:
            continue
        annotation = declared.annotation if isinstance(declared.annotation, str) else None
        if annotation is None:
            annotation = getattr(declared.annotation, "__name__", None)
        if not isinstance(annotation, str):
            continue
        kinds = {part.strip() for part in annotation.split("|")}
        optional = "None" in kinds
        kinds.discard("None")
        if len(kinds) != 1 or next(iter(kinds)) not in (_B, _I, _F, _S):
            continue
        kind = next(iter(kinds))
        if value is None and optional:
            continue
        ok = {
            _B: isinstance(value, bool),
            _I: isinstance(value, int) and not isinstance(value, bool),
            _F: isinstance(value, (int, float)) and not isinstance(value, bool),
            _S: isinstance(value, str),
        }[kind]
        if not ok:
            hint = " (true or false)" if kind == _B else ""
            raise ValueError(
                f"{source}: env argument {name!r} of {env_id} must be a {kind}{' or null' if optional else ''}"
                f"{hint}, got {type(value).__name__} {short_repr(value)}; e.g. --set env_kwargs.{name}=..."
            )


def _env_constructor(env_id: str) -> Any:
    """The class or function a Gymnasium id's entry point names (None if it cannot be resolved)."""
    import gymnasium as gym

    try:
        entry_point = gym.spec(env_id).entry_point
    except gym.error.Error:  # an unknown id is reported by check_env_id
        return None
    if callable(entry_point):
        return entry_point
    if not isinstance(entry_point, str) or ":" not in entry_point:
        return None
    import importlib

    module_name, _, attribute = entry_point.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        return None


def load_preset(path: str | os.PathLike[str], algo: str, env_id: str) -> dict[str, Any]:
    """The merged, validated entry of ``env_id`` in preset file ``path``: ``default``, then matching patterns
    (in file order), then the exact id; ``env_kwargs`` merged key by key. The ``default`` entry's ``env_kwargs``
    (mmrl env arguments) apply to ``mmrl/`` ids only.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: For invalid YAML, Python tags, unknown keys or wrong types (naming key and file).
    """
    path = Path(path)
    data = _read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of env ids (or 'default') to settings, got {type(data).__name__}")
    chosen = []
    if "default" in data:
        chosen.append("default")
    foreign = not env_id.startswith("mmrl/")
    chosen += [key for key in data if key not in ("default", env_id) and fnmatch.fnmatchcase(env_id, str(key))]
    if env_id in data:
        chosen.append(env_id)
    merged: dict[str, Any] = {}
    for key in data:  # validate every entry, not only the chosen ones
        validate_entry(data[key] or {}, algo, f"{path} [{key}]")
    for key in chosen:
        entry = validate_entry(data[key] or {}, algo, f"{path} [{key}]")
        if foreign and key == "default":
            # the default entry's env_kwargs are mmrl env arguments (channels_first, image_mode): other people's
            # envs get only those of an entry naming them, or --set env_kwargs.NAME=...
            entry = {k: v for k, v in entry.items() if k != "env_kwargs"}
        merge_into(merged, entry)
    return merged


def merge_into(target: dict[str, Any], entry: dict[str, Any]) -> None:
    """Update ``target`` with ``entry``, merging ``env_kwargs`` key by key."""
    for key, value in entry.items():
        if key == "env_kwargs":
            target["env_kwargs"] = {**target.get("env_kwargs", {}), **value}
        else:
            target[key] = value


def parse_overrides(items: list[str] | dict[str, Any] | None, algo: str) -> dict[str, Any]:
    """``["key=value", ...]`` (values via ``yaml.safe_load``) or a dict -> validated preset entry.

    ``env_kwargs.<name>=value`` sets one env argument.

    Raises:
        ValueError: For a malformed item, an unknown key or a wrong type.
    """
    from mmrl.yaml_io import load_yaml_text

    if not items:
        return {}
    if isinstance(items, dict):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            if not isinstance(item, str) or "=" not in item:
                raise ValueError(f"--set expects key=value (e.g. --set learning_rate=0.001), got {short_repr(item)}")
            key, text = item.split("=", 1)
            value = load_yaml_text(text, f"--set {key.strip()[:40]}") if text.strip() else None
            pairs.append((key.strip(), value))
    entry: dict[str, Any] = {}
    env_kwargs: dict[str, Any] = {}
    for key, value in pairs:
        if key.startswith("env_kwargs."):
            env_kwargs[key[len("env_kwargs.") :]] = value
        else:
            entry[key] = value
    result = validate_entry(entry, algo, "--set")
    if env_kwargs:
        result["env_kwargs"] = {**result.get("env_kwargs", {}), **env_kwargs}
    return result


def resolve_config(
    algo: str,
    env_id: str,
    timesteps: int | None = None,
    seed: int = 0,
    n_envs: int | None = None,
    preset: str | os.PathLike[str] | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    **explicit: Any,
) -> TrainConfig:
    """Build a :class:`TrainConfig`: preset entry < ``overrides`` < explicit arguments (not None).

    Args:
        algo: ``ppo``, ``a2c``, ``dqn`` or ``qlearning``.
        env_id: Registered env id (checked, with a "did you mean").
        timesteps: Total steps (None: the preset's).
        seed: Seed.
        n_envs: Number of envs (None: the preset's).
        preset: Preset file (default: the built-in ``agents/<algo>.yaml``).
        overrides: ``["key=value", ...]`` or a dict of preset keys.
        **explicit: Further preset keys given as arguments (``fusion=...``); None values are ignored.

    Raises:
        ValueError: For an unknown algorithm / env id, invalid preset or overrides.
    """
    from mmrl.envs import check_env_id

    check_algo(algo)
    check_env_id(env_id)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    settings = load_preset(preset if preset is not None else preset_path(algo), algo, env_id)
    merge_into(settings, parse_overrides(overrides, algo))
    given = {"timesteps": timesteps, "n_envs": n_envs, **explicit}
    merge_into(settings, validate_entry({k: v for k, v in given.items() if v is not None}, algo, "arguments"))
    check_env_kwargs(env_id, settings.get("env_kwargs", {}))
    config_fields = {key: settings.pop(key) for key in list(settings) if key in CONFIG_KEYS}
    config = TrainConfig(algo=algo, env_id=env_id, seed=seed, hyperparams=settings, **config_fields)
    defaults = {"timesteps": 100_000, "n_envs": 8, "eval_freq": 10_000, "eval_episodes": 50, "checkpoint_freq": 50_000}
    for key, value in defaults.items():
        if getattr(config, key) is None:
            setattr(config, key, value)
    if config.stop_success is not None and not config.eval_freq:
        raise ValueError(
            f"stop_success={config.stop_success} is checked at the periodic evaluations, but eval_freq is 0: set "
            "eval_freq (e.g. --eval-freq 10000) or drop stop_success"
        )
    if config.final_model == "average" and not config.checkpoint_freq:
        raise ValueError(
            "final_model=average averages the checkpoints of the last third of training, but checkpoint_freq is 0: "
            "set checkpoint_freq (e.g. --set checkpoint_freq=50000) or final_model=last (or best)"
        )
    if config.demonstrations and not env_id.startswith("mmrl/"):
        raise ValueError(
            f"demonstrations={config.demonstrations} clones mmrl's planner, which only plays mmrl's own envs, not "
            f"{env_id}: drop the key"
        )
    frame_stack = config.env_kwargs.get("frame_stack", 1)
    if config.image_frames is None and isinstance(frame_stack, int) and frame_stack > 1:
        config.image_frames = frame_stack  # the extractor reads the env's stacked frames one by one
    n_steps = config.hyperparams.get("n_steps")
    if isinstance(n_steps, int) and isinstance(config.n_envs, int):
        check_limit(f"n_steps x n_envs ({n_steps} x {config.n_envs})", n_steps * config.n_envs, "max_rollout_steps")
    return config


def complete_config(config: TrainConfig, preset: str | os.PathLike[str] | None = None) -> TrainConfig:
    """Validate a hand-built :class:`TrainConfig` and fill its unset (None) fields from the preset.

    Raises:
        ValueError: As :func:`resolve_config`.
    """
    given = {
        key: value
        for key, value in config.to_dict().items()
        if key in CONFIG_KEYS and value is not None and key != "device"
    }
    resolved = resolve_config(
        config.algo, config.env_id, seed=config.seed, preset=preset, overrides={**config.hyperparams, **given}
    )
    resolved.device = check_device(config.device, "TrainConfig.device")
    return resolved
