"""Sweep specifications (``mmrl sweep SPEC.yaml``): loading and validation, before Ray is started.

A spec names the env(s), the algorithm, the seeds, a budget per trial, the metric and a search space over preset
keys (:mod:`mmrl.training.presets`)::

    name: fusions              # optional: default output folder sweeps/<name>
    algo: ppo
    env: mmrl/GoTo-5x5-v0      # or envs: [mmrl/GoTo-5x5-v0, mmrl/PickUp-5x5-v0] (a grid dimension)
    seeds: 3                   # seeds 0, 1, 2; or a list [0, 7, 9]
    timesteps: 40000           # budget of each trial (one seed of one configuration)
    metric: success            # held-out greedy success of the final evaluation (max), or
                               # frames_to_threshold: steps until a periodic evaluation reaches `threshold` (min)
    threshold: 0.9
    settings:                  # preset keys fixed for every trial (env_kwargs.<name> for env arguments)
      eval_freq: 4000
    search:                    # preset keys searched: grid, choice, uniform, loguniform
      fusion: {grid: [concat, gated, film]}
      learning_rate: {loguniform: [0.0001, 0.003]}
    search_alg: grid           # grid (default when every dimension is a grid), random, optuna
    num_samples: 1             # random / optuna: configurations drawn
    scheduler: none            # none, or asha (early stopping of bad trials on the training success rate)
    max_failures: 2            # retries of a failed trial, each from its last mmrl checkpoint
    max_concurrent: null       # trials at once (default: as many as the cluster has CPUs)
    report_every: 2048         # steps between progress reports to Ray Tune

Loaded with ``yaml.safe_load``; an unknown key, a wrong type or a bad range raises ``ValueError`` naming the key
and the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmrl.training.presets import CONFIG_KEYS, HYPERPARAMS, check_algo, validate_entry

__all__ = ["DOMAINS", "METRICS", "SEARCH_ALGS", "Dimension", "SweepSpec", "load_spec", "parse_spec"]

#: Metrics a sweep can rank configurations by, with their direction.
METRICS = {"success": "max", "frames_to_threshold": "min"}
#: Search-space domains of one dimension.
DOMAINS = ("grid", "choice", "uniform", "loguniform")
SEARCH_ALGS = ("grid", "random", "optuna")
SCHEDULERS = ("none", "asha")

_TOP_KEYS = {
    "name",
    "algo",
    "env",
    "envs",
    "seeds",
    "timesteps",
    "metric",
    "threshold",
    "settings",
    "search",
    "search_alg",
    "num_samples",
    "scheduler",
    "max_failures",
    "max_concurrent",
    "report_every",
    "preset",
    "sample_seed",
}
_MAX_SEEDS = 1000
_MAX_TRIALS = 100_000
#: Keys that a spec sets at the top level (or the sweep sets per trial), not in settings/search.
_RESERVED = {"timesteps", "torch_threads"}


@dataclass(frozen=True)
class Dimension:
    """One searched preset key."""

    key: str
    """A preset key (``fusion``, ``learning_rate``, ``env_kwargs.<name>``, ...)."""
    domain: str
    """``grid``, ``choice``, ``uniform`` or ``loguniform``."""
    values: tuple[Any, ...]
    """The values (grid, choice) or the bounds ``(low, high)`` (uniform, loguniform)."""


@dataclass
class SweepSpec:
    """A validated sweep specification (schema in :mod:`mmrl.sweep.spec`)."""

    name: str
    algo: str
    envs: list[str]
    seeds: list[int]
    timesteps: int
    metric: str = "success"
    threshold: float = 0.9
    settings: dict[str, Any] = field(default_factory=dict)
    search: list[Dimension] = field(default_factory=list)
    search_alg: str = "grid"
    num_samples: int = 1
    scheduler: str = "none"
    max_failures: int = 2
    max_concurrent: int | None = None
    report_every: int = 2048
    preset: str | None = None
    sample_seed: int = 0
    source: str = "<spec>"

    @property
    def mode(self) -> str:
        """``"max"`` or ``"min"``: the direction of :attr:`metric`."""
        return METRICS[self.metric]

    @property
    def n_configs(self) -> int:
        """Configurations the sweep runs (each with every seed)."""
        grid = math.prod(len(d.values) for d in self.search if d.domain == "grid") * len(self.envs)
        return grid * self.num_samples if self.search_alg != "grid" else grid

    @property
    def n_trials(self) -> int:
        """Trials: configurations x seeds."""
        return self.n_configs * len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (the form :func:`parse_spec` reads)."""
        return {
            "name": self.name,
            "algo": self.algo,
            "envs": list(self.envs),
            "seeds": list(self.seeds),
            "timesteps": self.timesteps,
            "metric": self.metric,
            "threshold": self.threshold,
            "settings": dict(self.settings),
            "search": {d.key: {d.domain: list(d.values)} for d in self.search},
            "search_alg": self.search_alg,
            "num_samples": self.num_samples,
            "scheduler": self.scheduler,
            "max_failures": self.max_failures,
            "max_concurrent": self.max_concurrent,
            "report_every": self.report_every,
            "preset": self.preset,
            "sample_seed": self.sample_seed,
        }


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep spec file.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: For invalid YAML, Python tags, unknown keys, wrong types or bad ranges (naming key and file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec {path} does not exist")
    if path.stat().st_size > 1_000_000:
        raise ValueError(f"{path}: a sweep spec is a small YAML file; this one is over 1 MB")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.constructor.ConstructorError as error:
        raise ValueError(
            f"{path}: unsupported YAML tag ({error.problem}); specs are read with yaml.safe_load: use plain "
            "numbers, strings, lists and mappings"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid YAML: {error}") from None
    return parse_spec(data, source=str(path), default_name=path.stem)


def _int(value: Any, key: str, source: str, low: int, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{source}: {key!r} must be an integer >= {low}, got {value!r}")
    return value


def _str(value: Any, key: str, source: str, choices: tuple[str, ...] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{source}: {key!r} must be a string, got {value!r}")
    if choices is not None and value not in choices:
        raise ValueError(f"{source}: {key!r} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_setting(key: str, value: Any, algo: str, source: str) -> Any:
    """Validate one preset key / value like a preset entry; returns the converted value."""
    if key in _RESERVED or key == "seed":
        raise ValueError(f"{source}: {key!r} is set by the sweep (timesteps and seeds at the top of the spec)")
    if key.startswith("env_kwargs."):
        if not key[len("env_kwargs.") :]:
            raise ValueError(f"{source}: {key!r} needs an env argument name (env_kwargs.<name>)")
        return value
    if key == "env_kwargs":
        raise ValueError(f"{source}: set env arguments one by one as env_kwargs.<name>")
    if key in ("fusion", "text_encoder", "image_encoder") and isinstance(value, str):
        _check_extractor_choice(key, value, source)
    return validate_entry({key: value}, algo, source)[key]


def _check_extractor_choice(key: str, value: str, source: str) -> None:
    from mmrl.extractor import FUSIONS, IMAGE_ENCODERS, TEXT_ENCODERS

    known: tuple[str, ...] = {
        "fusion": tuple(FUSIONS),
        "text_encoder": tuple(TEXT_ENCODERS),
        "image_encoder": (*IMAGE_ENCODERS, "auto"),
    }[key]
    if value not in known:
        raise ValueError(f"{source}: unknown {key} {value!r}; expected one of {', '.join(known)}")


def _dimension(key: Any, entry: Any, algo: str, source: str) -> Dimension:
    where = f"{source} [search.{key}]"
    if not isinstance(key, str):
        raise ValueError(f"{source}: search keys must be strings, got {key!r}")
    schema = {**CONFIG_KEYS, **HYPERPARAMS[algo]}
    if not key.startswith("env_kwargs.") and key not in schema:
        raise ValueError(
            f"{where}: unknown key {key!r} for {algo}; expected one of {', '.join(sorted(schema))} (or "
            "env_kwargs.<name>)"
        )
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(
            f"{where}: expected one of {{grid: [...]}}, {{choice: [...]}}, {{uniform: [low, high]}}, "
            f"{{loguniform: [low, high]}}, got {entry!r}"[:300]
        )
    domain, values = next(iter(entry.items()))
    if domain not in DOMAINS:
        raise ValueError(f"{where}: unknown domain {domain!r}; expected one of {', '.join(DOMAINS)}")
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where}: {domain} needs a non-empty list")
    if len(values) > 1000:
        raise ValueError(f"{where}: {domain} lists more than 1000 values")
    if domain in ("grid", "choice"):
        checked = [_check_setting(key, value, algo, where) for value in values]
        if len({repr(v) for v in checked}) != len(checked):
            raise ValueError(f"{where}: {domain} lists a value twice")
        return Dimension(key, domain, tuple(checked))
    if len(values) != 2:
        raise ValueError(f"{where}: {domain} needs [low, high], got {len(values)} values")
    kind = schema.get(key, "float")
    if kind.split("|")[0] != "float":
        raise ValueError(f"{where}: {domain} samples floats but {key!r} is {kind}; use choice or grid")
    low, high = (_check_setting(key, value, algo, where) for value in values)
    if not (isinstance(low, float) and isinstance(high, float)) or not low < high:
        raise ValueError(f"{where}: {domain} needs numbers low < high, got {values!r}")
    if domain == "loguniform" and low <= 0:
        raise ValueError(f"{where}: loguniform needs low > 0, got {low}")
    return Dimension(key, domain, (low, high))


def parse_spec(data: Any, source: str = "<spec>", default_name: str = "sweep") -> SweepSpec:
    """Validate spec data (the mapping a spec file holds).

    Raises:
        ValueError: Naming the key and ``source``.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a mapping of sweep settings, got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown key {unknown[0]!r}; expected some of {', '.join(sorted(_TOP_KEYS))}")
    for required in ("algo", "timesteps"):
        if required not in data:
            raise ValueError(f"{source}: missing key {required!r}")
    algo = data["algo"]
    try:
        check_algo(algo)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    if ("env" in data) == ("envs" in data):
        raise ValueError(f"{source}: give exactly one of 'env: ID' or 'envs: [ID, ...]'")
    envs = [data["env"]] if "env" in data else data["envs"]
    if not isinstance(envs, list) or not envs or len(envs) > 100:
        raise ValueError(f"{source}: 'envs' must be a list of 1 to 100 env ids")
    from mmrl.envs import check_env_id

    for env_id in envs:
        _str(env_id, "env", source)
        try:
            check_env_id(env_id)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
    if len(set(envs)) != len(envs):
        raise ValueError(f"{source}: 'envs' lists an env twice")
    seeds = data.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        _int(seeds, "seeds", source, 1)
        if seeds > _MAX_SEEDS:
            raise ValueError(f"{source}: 'seeds' must be at most {_MAX_SEEDS}, got {seeds}")
        seeds = list(range(seeds))
    elif isinstance(seeds, list) and 0 < len(seeds) <= _MAX_SEEDS:
        for seed in seeds:
            _int(seed, "seeds", source, 0)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{source}: 'seeds' lists a seed twice")
    else:
        raise ValueError(f"{source}: 'seeds' must be a count (e.g. 3) or a list of seeds, got {seeds!r}"[:300])
    metric = _str(data.get("metric", "success"), "metric", source, tuple(METRICS))
    threshold = data.get("threshold", 0.9)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ValueError(f"{source}: 'threshold' must be a success rate in (0, 1], got {threshold!r}")
    settings_data = data.get("settings") or {}
    if not isinstance(settings_data, dict):
        raise ValueError(f"{source}: 'settings' must be a mapping of preset keys, got {type(settings_data).__name__}")
    settings = {}
    for key, value in settings_data.items():
        if not isinstance(key, str):
            raise ValueError(f"{source}: settings keys must be strings, got {key!r}")
        where = f"{source} [settings]"
        schema = {**CONFIG_KEYS, **HYPERPARAMS[algo]}
        if not key.startswith("env_kwargs.") and key not in schema and key != "seed":
            raise ValueError(
                f"{where}: unknown key {key!r} for {algo}; expected one of {', '.join(sorted(schema))} (or "
                "env_kwargs.<name>)"
            )
        settings[key] = _check_setting(key, value, algo, where)
    search_data = data.get("search") or {}
    if not isinstance(search_data, dict):
        raise ValueError(f"{source}: 'search' must be a mapping of preset keys to domains")
    search = [_dimension(key, entry, algo, source) for key, entry in search_data.items()]
    overlap = sorted({d.key for d in search} & set(settings))
    if overlap:
        raise ValueError(f"{source}: {overlap[0]!r} is both in settings and in search; keep it in one")
    has_random = any(d.domain in ("choice", "uniform", "loguniform") for d in search)
    search_alg = _str(data.get("search_alg", "random" if has_random else "grid"), "search_alg", source, SEARCH_ALGS)
    if search_alg == "grid" and has_random:
        key = next(d.key for d in search if d.domain != "grid")
        raise ValueError(
            f"{source}: search_alg grid needs grid dimensions only; {key!r} is sampled: use "
            "search_alg: random or optuna, or give it as {grid: [...]}"
        )
    if search_alg == "optuna" and (len(envs) > 1 or any(d.domain == "grid" for d in search)):
        raise ValueError(
            f"{source}: search_alg optuna samples every dimension: use choice instead of grid (and one env per sweep)"
        )
    num_samples = _int(data.get("num_samples", 1), "num_samples", source, 1)
    if search_alg == "grid" and num_samples != 1:
        raise ValueError(f"{source}: num_samples applies to random and optuna search; drop it for a grid")
    spec = SweepSpec(
        name=_str(data.get("name", default_name), "name", source),
        algo=algo,
        envs=list(envs),
        seeds=list(seeds),
        timesteps=_int(data["timesteps"], "timesteps", source, 1),
        metric=metric,
        threshold=float(threshold),
        settings=settings,
        search=search,
        search_alg=search_alg,
        num_samples=num_samples,
        scheduler=_str(data.get("scheduler", "none"), "scheduler", source, SCHEDULERS),
        max_failures=_int(data.get("max_failures", 2), "max_failures", source, 0),
        max_concurrent=_int(data.get("max_concurrent"), "max_concurrent", source, 1, allow_none=True),
        report_every=_int(data.get("report_every", 2048), "report_every", source, 1),
        preset=None if data.get("preset") is None else _str(data["preset"], "preset", source),
        sample_seed=_int(data.get("sample_seed", 0), "sample_seed", source, 0),
        source=source,
    )
    if "/" in spec.name or spec.name.startswith(".") or len(spec.name) > 100:
        raise ValueError(f"{source}: 'name' must be a plain folder name (no '/', not hidden), got {spec.name!r}")
    if spec.n_trials > _MAX_TRIALS:
        raise ValueError(f"{source}: the sweep has {spec.n_trials} trials (over {_MAX_TRIALS}); shrink the grid")
    return spec
