"""Evaluation of a trained model (SB3 or tabular Q-learning) on the environment it was trained on.

Episode ``i`` is seeded ``seed + i`` whatever the number of parallel environments, so a report is reproducible. The
environment is rebuilt from the run directory (env id, env kwargs, tokenizer); ``env_id`` and ``split`` override it.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from mmrl.atomic import write_json
from mmrl.checks import check_int
from mmrl.evaluation.ablation import VecAblateObservation, normalize_ablate

#: Key of the instruction tokens in the observation.
MISSION_KEY = "mission"
#: ``z`` of a two-sided 95 % normal interval.
Z_95 = 1.959963984540054
#: Rows of the per-instruction table that :meth:`EvaluationReport.format_table` prints by default.
DEFAULT_TABLE_ROWS = 10
#: Largest number of environments stepped in parallel by default.
DEFAULT_MAX_ENVS = 16
SPLITS = ("train", "test", "all")
_SHUFFLE_TRIES = 16

ModelLike = Any  # an SB3 ``BaseAlgorithm`` or :class:`~mmrl.agents.qlearning.QLearning`


# ---------------------------------------------------------------------------------------------------- statistics
def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default); ``(0, 1)`` when ``trials == 0``."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # the interval contains p exactly; clamp so that rounding (e.g. 2.8e-17 at p = 0) cannot say otherwise
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def mission_template(mission: str) -> str:
    """The instruction with colour and object words replaced: ``"go to the red ball"`` -> ``"go to the <colour>
    <object>"``. Groups paraphrases by their verb pattern."""
    from mmrl.engine.constants import COLOUR_NAMES, OBJECT_NAMES, OBJECT_PLURALS

    text = re.sub(rf"\b({'|'.join(COLOUR_NAMES)})\b", "<colour>", mission)
    text = re.sub(rf"\b({'|'.join(OBJECT_PLURALS.values())})\b", "<objects>", text)
    return re.sub(rf"\b({'|'.join(OBJECT_NAMES.values())})\b", "<object>", text)


@dataclass(frozen=True)
class GroupStats:
    """Results of the episodes sharing one instruction (or one template)."""

    name: str
    episodes: int
    successes: int
    success_rate: float | None
    mean_return: float


def _group(names: Sequence[str], returns: Sequence[float], successes: Sequence[bool | None]) -> list[GroupStats]:
    members: dict[str, list[int]] = defaultdict(list)
    for index, name in enumerate(names):
        members[name].append(index)
    groups = []
    for name, indices in members.items():
        known = [successes[i] for i in indices if successes[i] is not None]
        groups.append(
            GroupStats(
                name=name,
                episodes=len(indices),
                successes=int(sum(known)),
                success_rate=(sum(known) / len(known)) if known else None,
                mean_return=float(np.mean([returns[i] for i in indices])),
            )
        )
    return sorted(groups, key=lambda group: (-group.episodes, group.name))


# ---------------------------------------------------------------------------------------------------- the report
@dataclass
class EvaluationReport:
    """Results of :func:`evaluate`: per-episode lists, their summary and per-instruction / per-template tables.

    ``success_rate`` and ``success_ci`` are None when the environment never reports ``info["is_success"]``.
    ``shown_missions`` holds the instructions the policy saw when ``shuffle_missions`` is on (else None); success is
    always judged on ``missions``, the true ones.
    """

    model: str
    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    episodes: int
    seed: int
    deterministic: bool
    split: str | None
    ablate: list[str]
    shuffle_missions: bool
    mean_return: float
    std_return: float
    success_rate: float | None
    success_ci: tuple[float, float] | None
    mean_length: float
    std_length: float
    per_template: list[GroupStats]
    per_instruction: list[GroupStats]
    returns: list[float]
    lengths: list[int]
    successes: list[bool | None]
    missions: list[str]
    shown_missions: list[str] | None = None
    seconds: float = 0.0
    video: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_episodes(
        cls,
        *,
        returns: Sequence[float],
        lengths: Sequence[int],
        successes: Sequence[bool | None],
        missions: Sequence[str],
        **settings: Any,
    ) -> EvaluationReport:
        """Build a report from per-episode results; ``settings`` are the remaining descriptive fields."""
        known = [bool(s) for s in successes if s is not None]
        n_success = sum(known)
        return cls(
            mean_return=float(np.mean(returns)) if len(returns) else float("nan"),
            std_return=float(np.std(returns)) if len(returns) else float("nan"),
            success_rate=(n_success / len(known)) if known else None,
            success_ci=wilson_interval(n_success, len(known)) if known else None,
            mean_length=float(np.mean(lengths)) if len(lengths) else float("nan"),
            std_length=float(np.std(lengths)) if len(lengths) else float("nan"),
            per_template=_group([mission_template(m) for m in missions], returns, successes),
            per_instruction=_group(missions, returns, successes),
            returns=[float(r) for r in returns],
            lengths=[int(n) for n in lengths],
            successes=list(successes),
            missions=list(missions),
            **settings,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        data = asdict(self)
        data["success_ci"] = list(self.success_ci) if self.success_ci is not None else None
        return data

    def format_table(self, max_rows: int = DEFAULT_TABLE_ROWS) -> str:
        """A plain-text summary: overall results, the complete per-template table and the top ``max_rows``
        instructions (most frequent first)."""
        options = [f"seed {self.seed}", "deterministic" if self.deterministic else "stochastic"]
        if self.split:
            options.append(f"split={self.split}")
        if self.ablate:
            options.append(f"ablate={','.join(self.ablate)}")
        if self.shuffle_missions:
            options.append("shuffled missions")
        lines = [
            f"{self.model} ({self.algo}) on {self.env_id}: {self.episodes} episodes, {', '.join(options)}",
            f"  return          {self.mean_return:.3f} ± {self.std_return:.3f}",
        ]
        if self.success_rate is not None and self.success_ci is not None:
            low, high = self.success_ci
            rate = f"{100 * self.success_rate:.1f} %"
            lines.append(f"  success rate    {rate}  (95 % CI {100 * low:.1f}-{100 * high:.1f} %, Wilson)")
        else:
            lines.append("  success rate    n/a (the environment reports no is_success)")
        lines.append(f"  episode length  {self.mean_length:.1f} ± {self.std_length:.1f}")
        lines.append(f"  time            {self.seconds:.1f} s")
        lines += ["", f"per template ({len(self.per_template)}):", *_group_table(self.per_template, "template")]
        shown = self.per_instruction[:max_rows]
        lines += [
            "",
            f"per instruction (top {len(shown)} of {len(self.per_instruction)} by episodes):",
            *_group_table(shown, "instruction"),
        ]
        return "\n".join(lines)


def _group_table(groups: Sequence[GroupStats], header: str) -> list[str]:
    width = max([len(header), *(len(group.name) for group in groups)])
    rows = [f"  {header:<{width}}  episodes  success  mean return"]
    for group in groups:
        rate = "n/a" if group.success_rate is None else f"{100 * group.success_rate:.1f} %"
        rows.append(f"  {group.name:<{width}}  {group.episodes:>8}  {rate:>7}  {group.mean_return:>11.3f}")
    return rows


# ---------------------------------------------------------------------------------------------------- model + env
@dataclass
class EvalSetup:
    """A loaded model and everything needed to rebuild its environment."""

    model: ModelLike
    name: str
    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    tokenizer_config: dict[str, Any] | None = None
    wrap: Callable[[gym.Env], gym.Env] | None = None

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        """One environment with the training wrappers (tokenizer included)."""
        kwargs = dict(self.env_kwargs)
        if render_mode is not None:
            kwargs["render_mode"] = render_mode
        try:
            env = gym.make(self.env_id, **kwargs)
        except (TypeError, gym.error.Error) as error:
            raise ValueError(
                f"cannot build environment {self.env_id!r} with env kwargs {kwargs}: {error}; "
                "check --env / --split (mission_split only exists for mmrl/ environments)"
            ) from error
        if self.wrap is not None:
            env = self.wrap(env)
        elif self.tokenizer_config is not None and not self.env_id.startswith("mmrl/"):
            from mmrl.wrappers import TokenizeText

            env = TokenizeText(env, tokenizer_config=self.tokenizer_config)
        return env

    def make_vec_env(self, n_envs: int) -> VecEnv:
        """``n_envs`` environments: mmrl's batched ``VecEnv`` for ``mmrl/`` ids, else a ``DummyVecEnv``."""
        if self.env_id.startswith("mmrl/") and self.wrap is None:
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

        # SB3 models, and SB3 policies loaded from a bundle, see channel-last images transposed
        if isinstance(self.model, BaseAlgorithm) or isinstance(getattr(self.model, "policy", None), BasePolicy):
            venv = BaseAlgorithm._wrap_env(venv, verbose=0, monitor_wrapper=False)
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


def _is_bundle(path: Path) -> bool:
    """A policy bundle directory, or its ``manifest.json`` (see :mod:`mmrl.bundle`)."""
    from mmrl.bundle import MANIFEST_NAME

    return (path.is_dir() and (path / MANIFEST_NAME).is_file()) or (path.is_file() and path.name == MANIFEST_NAME)


def _resolve_bundle(path: Path, env_id: str | None, env_kwargs: dict[str, Any] | None) -> EvalSetup:
    """A policy bundle: loaded without unpickling; env id and kwargs from its export metadata unless given."""
    from mmrl.bundle import load_policy

    loaded = load_policy(path)
    metadata = loaded.manifest.get("metadata") or {}
    saved_env_id = metadata.get("env_id") if isinstance(metadata, dict) else None
    saved_env_kwargs = metadata.get("env_kwargs") if isinstance(metadata, dict) else None
    if saved_env_id is not None and not isinstance(saved_env_id, str):
        raise ValueError(f"{path}: metadata env_id must be a string, got {saved_env_id!r}")
    if saved_env_kwargs is not None and not isinstance(saved_env_kwargs, dict):
        raise ValueError(f"{path}: metadata env_kwargs must be a JSON object, got {saved_env_kwargs!r}")
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
    )


def _resolve(
    model_or_run_dir: ModelLike | str | os.PathLike[str],
    env_id: str | None,
    env_kwargs: dict[str, Any] | None,
    trust: bool = False,
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
    if _is_bundle(path):
        return _resolve_bundle(path, env_id, env_kwargs)
    from mmrl.training.run_dir import RunDir, load_model, run_dir_of

    run_dir = path if path.is_dir() else run_dir_of(path)
    model_path = None if path.is_dir() else path

    run = RunDir(run_dir) if run_dir is not None else None
    target = model_path if model_path is not None else run_dir
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
    wrap = getattr(run, "wrap_env", None)

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
        wrap=wrap,
    )


def prepare(
    model_or_run_dir: ModelLike | str | os.PathLike[str],
    env_id: str | None = None,
    split: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    trust: bool = False,
) -> EvalSetup:
    """Load the model and resolve its environment (``split`` sets ``mission_split``; ``trust`` as in
    :func:`evaluate`)."""
    if env_id is not None:
        from mmrl.envs import check_env_id

        check_env_id(env_id)
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise TypeError(f"env_kwargs must be a dict, got {type(env_kwargs).__name__}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    setup = _resolve(model_or_run_dir, env_id, env_kwargs, trust)
    if split is not None:
        setup.env_kwargs["mission_split"] = split
    return setup


# ---------------------------------------------------------------------------------------------------- missions
class MissionTable:
    """True instruction (text and tokens) of the episode seeded ``s``, and the instruction shown instead of it when
    missions are shuffled: that of the next seed ``s + 1, s + 2, ...`` whose text differs (``s + 1`` if none does
    within a few tries). Independent of the number of parallel environments."""

    def __init__(self, env: gym.Env, key: str = MISSION_KEY) -> None:
        if not isinstance(env.observation_space, spaces.Dict) or key not in env.observation_space.spaces:
            raise ValueError(
                f"shuffle_missions needs a Dict observation with a {key!r} key, got {env.observation_space}"
            )
        self.env = env
        self.key = key
        self._cache: dict[int, tuple[str, np.ndarray]] = {}

    def true(self, seed: int) -> tuple[str, np.ndarray]:
        if seed not in self._cache:
            observation, info = self.env.reset(seed=seed)
            self._cache[seed] = (str(info.get("mission", "")), np.array(observation[self.key], copy=True))
        return self._cache[seed]

    def shown(self, seed: int) -> tuple[str, np.ndarray]:
        text = self.true(seed)[0]
        for offset in range(1, _SHUFFLE_TRIES + 1):
            candidate = self.true(seed + offset)
            if candidate[0] != text:
                return candidate
        return self.true(seed + 1)


# ---------------------------------------------------------------------------------------------------- evaluation
def _seed_model(model: ModelLike, seed: int) -> None:
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(seed)
    if hasattr(model, "set_random_seed"):
        model.set_random_seed(seed)


def run_episodes(
    setup: EvalSetup,
    episodes: int,
    seed: int,
    deterministic: bool,
    ablate: tuple[str, ...],
    shuffle_missions: bool,
    n_envs: int,
) -> dict[str, list[Any]]:
    """Run ``episodes`` episodes (episode ``i`` seeded ``seed + i``), ``n_envs`` at a time."""
    venv = setup.adapt(setup.make_vec_env(n_envs))
    if ablate:
        venv = VecAblateObservation(venv, ablate)
    table = MissionTable(setup.make_env()) if shuffle_missions else None
    _seed_model(setup.model, seed)
    returns: list[float] = [0.0] * episodes
    lengths: list[int] = [0] * episodes
    successes: list[bool | None] = [None] * episodes
    missions: list[str] = [""] * episodes
    shown: list[str] = [""] * episodes
    try:
        for start in range(0, episodes, n_envs):
            count = min(n_envs, episodes - start)
            venv.seed(seed + start)
            observations = venv.reset()
            reset_infos = getattr(venv.unwrapped, "reset_infos", None) or [{} for _ in range(n_envs)]
            for i in range(count):
                missions[start + i] = str(reset_infos[i].get("mission", ""))
            shown_tokens = None
            if table is not None:
                pairs = [table.shown(seed + start + i) for i in range(n_envs)]
                shown_tokens = np.stack([tokens for _, tokens in pairs])
                for i in range(count):
                    missions[start + i] = table.true(seed + start + i)[0]
                    shown[start + i] = pairs[i][0]
            running = np.zeros(n_envs, dtype=bool)
            running[:count] = True
            states = None
            episode_starts = np.ones(n_envs, dtype=bool)
            while running.any():
                if shuffle_missions and shown_tokens is not None:
                    observations = dict(observations)
                    observations[MISSION_KEY] = shown_tokens.astype(observations[MISSION_KEY].dtype)
                actions, states = setup.model.predict(
                    observations, state=states, episode_start=episode_starts, deterministic=deterministic
                )
                observations, rewards, dones, infos = venv.step(np.asarray(actions))
                episode_starts = np.asarray(dones, dtype=bool)
                for i in np.flatnonzero(running):
                    index = start + i
                    returns[index] += float(rewards[i])
                    lengths[index] += 1
                    if dones[i]:
                        running[i] = False
                        success = infos[i].get("is_success")
                        successes[index] = None if success is None else bool(success)
    finally:
        venv.close()
        if table is not None:
            table.env.close()
    return {
        "returns": returns,
        "lengths": lengths,
        "successes": successes,
        "missions": missions,
        "shown_missions": shown if shuffle_missions else None,
    }


def evaluate(
    model_or_run_dir: ModelLike | str | os.PathLike[str],
    env_id: str | None = None,
    episodes: int = 100,
    seed: int = 0,
    deterministic: bool = True,
    split: str | None = None,
    ablate: str | Sequence[str] | None = None,
    shuffle_missions: bool = False,
    video: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    n_envs: int | None = None,
    video_episodes: int = 3,
    trust: bool = False,
) -> EvaluationReport:
    """Evaluate a trained model on ``episodes`` reproducibly seeded episodes.

    Nothing is written unless ``video`` or ``json_path`` names a file (the run directory is never modified).

    Args:
        model_or_run_dir: A run directory, a model file (SB3 ``.zip`` or Q-learning ``.npz``; the run directory
            around it, if any, supplies the environment), a policy bundle from ``mmrl export`` (loaded without
            unpickling; its metadata supplies the environment), or a loaded model (then ``env_id`` is required).
        env_id: Environment id; defaults to the one the model was trained on.
        episodes: Number of episodes; episode ``i`` is seeded ``seed + i``.
        seed: Seed of the first episode (and of the policy's sampling when ``deterministic`` is False).
        deterministic: Greedy actions (True) or sampled ones.
        split: ``"train"``, ``"test"`` or ``"all"``: the ``mission_split`` of mmrl environments (held-out
            colour/object combinations in ``"test"``).
        ablate: Observation key(s) to replace by zeros: ``"mission"`` (PAD tokens) or ``"image"`` (black).
        shuffle_missions: Show each episode the instruction of another episode (see :class:`MissionTable`);
            success is still judged on the true instruction.
        video: ``.mp4`` or ``.gif`` path: record ``video_episodes`` episodes (see :func:`~mmrl.evaluation.video.
            record_video`).
        json_path: Write the report as JSON there.
        env_kwargs: Environment keyword arguments overriding the run's.
        n_envs: Environments stepped in parallel (default ``min(episodes, 16)``); does not change the results of
            deterministic policies.
        video_episodes: Episodes in the video.
        trust: Allow an SB3 ``.zip`` that is not inside an mmrl run directory. Loading an SB3 zip runs pickled
            code, so only pass it for files you created or trust; models in your own run directories and bundles
            need no trust.

    Returns:
        The :class:`EvaluationReport`.

    Raises:
        FileNotFoundError: If the path does not exist.
        ValueError: If the model cannot be loaded, does not fit the environment (both spaces are named), is an SB3
            zip from outside a run directory without ``trust``, or an argument is out of range.
        TypeError: If an argument has the wrong type.
    """
    episodes = check_int("episodes", episodes, 1)
    seed = check_int("seed", seed)
    n_envs = min(episodes, DEFAULT_MAX_ENVS) if n_envs is None else check_int("n_envs", n_envs, 1)
    n_envs = min(n_envs, episodes)
    if json_path is not None and Path(json_path).suffix.lower() != ".json":
        raise ValueError(f"json_path must end in .json, got {json_path!r}")
    if video is not None:
        from mmrl.evaluation.video import check_video_path

        check_video_path(video)
    setup = prepare(model_or_run_dir, env_id, split, env_kwargs, trust)
    ablate_keys = normalize_ablate(ablate, setup.model.observation_space if ablate else None)
    started = time.perf_counter()
    results = run_episodes(setup, episodes, seed, bool(deterministic), ablate_keys, bool(shuffle_missions), n_envs)
    report = EvaluationReport.from_episodes(
        **results,
        model=setup.name,
        algo=setup.algo,
        env_id=setup.env_id,
        env_kwargs=dict(setup.env_kwargs),
        episodes=episodes,
        seed=seed,
        deterministic=bool(deterministic),
        split=split,
        ablate=list(ablate_keys),
        shuffle_missions=bool(shuffle_missions),
        seconds=time.perf_counter() - started,
    )
    if video is not None:
        from mmrl.evaluation.video import record_setup_video

        report.video = str(
            record_setup_video(
                setup,
                video,
                episodes=video_episodes,
                seed=seed,
                deterministic=bool(deterministic),
                ablate=ablate_keys,
                shuffle_missions=bool(shuffle_missions),
            )
        )
    if json_path is not None:
        write_json(json_path, report.to_dict())
    return report
