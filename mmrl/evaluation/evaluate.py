"""Evaluation of a trained model (SB3 or tabular Q-learning) on the environment it was trained on.

Episode ``i`` is seeded ``seed + i`` whatever the number of parallel environments, so a report is reproducible. The
environment is rebuilt from the run directory (env id, env kwargs, tokenizer); ``env_id`` and ``split`` override it.
"""

from __future__ import annotations

import os
import re
import time
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.atomic import write_json
from mmrl.checks import check_int
from mmrl.evaluation.ablation import VecAblateObservation, normalize_ablate
from mmrl.evaluation.baseline import random_baseline
from mmrl.evaluation.runner import EpisodeResults, MissionTable, run_episodes
from mmrl.evaluation.setup import EvalSetup, ModelLike, prepare
from mmrl.evaluation.stats import paired_difference, wilson_interval
from mmrl.evaluation.video import MAX_VIDEO_EPISODES, check_video_path, record_setup_video
from mmrl.limits import check_limit
from mmrl.threads import default_threads

__all__ = [
    "DEFAULT_MAX_ENVS",
    "MAX_EPISODES",
    "EvaluationReport",
    "GroupStats",
    "evaluate",
    "mission_template",
    "wilson_interval",
]

#: Rows of the per-instruction table that :meth:`EvaluationReport.format_table` prints by default.
DEFAULT_TABLE_ROWS = 10
#: Largest number of environments stepped in parallel by default.
DEFAULT_MAX_ENVS = 16
#: Most episodes one evaluation runs (its per-episode lists grow with the episodes run).
#: Default of the ``max_episodes`` limit (:mod:`mmrl.limits`; raise with ``MMRL_MAX_EPISODES``).
MAX_EPISODES = 1_000_000


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
        known = [bool(successes[i]) for i in indices if successes[i] is not None]
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
    baseline: dict[str, Any] | None = None
    """The uniformly random policy on the same seeds (:func:`~mmrl.evaluation.baseline.random_baseline`)."""
    reference: dict[str, Any] | None = None
    """With ``ablate``: the same episodes without the ablation, and the paired difference (ablated minus
    reference) with its 95 % interval (:func:`~mmrl.evaluation.stats.paired_difference`)."""

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
        """A plain-text summary: what was measured, overall results next to the random policy (and, with an
        ablation, the difference from the same episodes without it), then the per-template and per-instruction
        tables (most frequent first, at most ``max_rows`` rows each; 0: all)."""
        last = self.seed + self.episodes - 1
        options = ["greedy actions" if self.deterministic else "sampled actions"]
        if self.split:
            options.append(f"split={self.split}")
        if self.ablate:
            options.append(f"ablate={','.join(self.ablate)}")
        if self.shuffle_missions:
            options.append("shuffled missions")
        lines = [
            f"{self.model} ({self.algo}) on {self.env_id}: {self.episodes} episodes (seeds {self.seed:,}-{last:,}), "
            f"{', '.join(options)}",
            f"  return          {self.mean_return:.3f} ± {self.std_return:.3f}",
        ]
        if self.success_rate is not None and self.success_ci is not None:
            low, high = self.success_ci
            rate = f"{100 * self.success_rate:.1f} %"
            lines.append(f"  success rate    {rate}  (95 % CI {100 * low:.1f}-{100 * high:.1f} %, Wilson)")
        else:
            lines.append("  success rate    n/a (the environment reports no is_success)")
        lines.append(f"  episode length  {self.mean_length:.1f} ± {self.std_length:.1f}")
        if self.baseline is not None:
            lines.append(f"  random policy   {_summary_text(self.baseline)} on the same seeds")
        if self.reference is not None:
            lines += _reference_lines(self.reference, self.ablate)
        lines.append(f"  time            {self.seconds:.1f} s")
        if any(self.missions):  # envs without instructions (CartPole) have no tables
            lines += ["", *_capped_table(self.per_template, "template", max_rows)]
            lines += ["", *_capped_table(self.per_instruction, "instruction", max_rows)]
        return "\n".join(lines)


def _random_summary(setup: EvalSetup, episodes: int, seed: int, n_envs: int) -> dict[str, Any]:
    """The random policy on the evaluation's seeds (its own generator seeded with ``seed``)."""
    venv = setup.adapt(setup.make_vec_env(n_envs))
    try:
        return random_baseline(venv, episodes, seed)
    finally:
        venv.close()


def _reference(unablated: EpisodeResults, ablated: EpisodeResults) -> dict[str, Any]:
    """The unablated summary and the paired difference ablated minus unablated (success, else return)."""
    summary = unablated.summary()
    measure = "success" if summary["success_rate"] is not None else "return"
    if measure == "success":
        difference = paired_difference(unablated.successes, ablated.successes)
    else:
        difference = paired_difference(unablated.returns, ablated.returns)
    return {
        "success_rate": summary["success_rate"],
        "mean_return": summary["mean_return"],
        "measure": measure,
        "difference": None if difference is None else list(difference),
    }


def _summary_text(summary: dict[str, Any]) -> str:
    """``success 45.0 %, return 0.286`` (success omitted when unknown)."""
    parts = [] if summary.get("success_rate") is None else [f"success {100 * summary['success_rate']:.1f} %"]
    return ", ".join([*parts, f"return {summary['mean_return']:.3f}"])


def _reference_lines(reference: dict[str, Any], ablate: Sequence[str]) -> list[str]:
    """The unablated figures and the paired difference, e.g. ``-89.5 points (95 % CI -94.0 to -85.0)``."""
    lines = [f"  without ablate  {_summary_text(reference)} (same episodes, {', '.join(ablate)} intact)"]
    difference = reference.get("difference")
    if difference is not None:
        value, low, high = difference
        if reference.get("measure") == "success":
            interval = f"95 % CI {100 * low:+.1f} to {100 * high:+.1f}, paired by seed, Newcombe"
            text = f"{100 * value:+.1f} points ({interval})"
        else:
            text = f"return {value:+.3f} (95 % CI {low:+.3f} to {high:+.3f}, paired by seed, normal approx.)"
        lines.append(f"  difference      {text}")
    return lines


def _capped_table(groups: Sequence[GroupStats], header: str, max_rows: int) -> list[str]:
    """A titled group table with at most ``max_rows`` rows (0: all), saying how many were left out."""
    shown = list(groups) if max_rows <= 0 else list(groups[:max_rows])
    title = (
        f"per {header} ({len(groups)})"
        if len(shown) == len(groups)
        else (f"per {header} (top {len(shown)} of {len(groups)} by episodes; --rows 0 shows all)")
    )
    return [f"{title}:", *_group_table(shown, header)]


def _group_table(groups: Sequence[GroupStats], header: str) -> list[str]:
    width = max([len(header), *(len(group.name) for group in groups)])
    rows = [f"  {header:<{width}}  episodes  success  mean return"]
    for group in groups:
        rate = "n/a" if group.success_rate is None else f"{100 * group.success_rate:.1f} %"
        rows.append(f"  {group.name:<{width}}  {group.episodes:>8}  {rate:>7}  {group.mean_return:>11.3f}")
    return rows


# ---------------------------------------------------------------------------------------------------- evaluation
def play(
    setup: EvalSetup,
    episodes: int,
    seed: int,
    deterministic: bool,
    ablate: Sequence[str] = (),
    shuffle_missions: bool = False,
    n_envs: int = 1,
    policy: Any = None,
) -> EpisodeResults:
    """Run ``episodes`` episodes of a prepared :class:`EvalSetup` on ``n_envs`` parallel envs (with the ablation
    and shuffled missions asked for) through :func:`~mmrl.evaluation.runner.run_episodes`; ``policy`` (default:
    the setup's model) plays them, e.g. a :class:`~mmrl.evaluation.baseline.RandomPolicy`."""
    venv = setup.adapt(setup.make_vec_env(n_envs))
    if ablate:
        venv = VecAblateObservation(venv, tuple(ablate))
    table = MissionTable(setup.make_env()) if shuffle_missions else None
    try:
        player = setup.model if policy is None else policy
        return run_episodes(player, venv, episodes, seed, deterministic, missions=table)
    finally:
        venv.close()
        if table is not None:
            table.env.close()


@default_threads
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
    allowed_env_ids: Collection[str] | None = None,
    baseline: bool = True,
) -> EvaluationReport:
    """Evaluate a trained model on ``episodes`` reproducibly seeded episodes.

    Nothing is written unless ``video`` or ``json_path`` names a file (the run directory is never modified).

    Args:
        model_or_run_dir: A run directory, a model file (SB3 ``.zip`` or Q-learning ``.npz``; the run directory
            around it, if any, supplies the environment), a policy bundle from ``mmrl export`` (loaded without
            unpickling; its metadata supplies the environment), or a loaded model (then ``env_id`` is required).
        env_id: Environment id; defaults to the one the model was trained on.
        episodes: Number of episodes (at most :data:`MAX_EPISODES`); episode ``i`` is seeded ``seed + i``.
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
        allowed_env_ids: Env ids a run directory's or bundle's own env id may be (default: any id already
            registered in this process; a ``module:`` prefix is always refused, see :mod:`mmrl.trust`).
        baseline: Also play the uniformly random policy on the same seeds (``report.baseline``). With ``ablate``,
            the same episodes are also played without the ablation (``report.reference``: the paired difference
            and its 95 % interval), whatever ``baseline`` is.

    Returns:
        The :class:`EvaluationReport`.

    Raises:
        FileNotFoundError: If the path does not exist.
        ValueError: If the model cannot be loaded, does not fit the environment (both spaces are named), is an SB3
            zip from outside a run directory without ``trust``, or an argument is out of range.
        TypeError: If an argument has the wrong type.
    """
    episodes = check_int("episodes", episodes, 1)
    check_limit("episodes", episodes, "max_episodes")
    seed = check_int("seed", seed)
    n_envs = min(episodes, DEFAULT_MAX_ENVS) if n_envs is None else check_int("n_envs", n_envs, 1)
    n_envs = min(n_envs, episodes)
    if json_path is not None and Path(json_path).suffix.lower() != ".json":
        raise ValueError(f"json_path must end in .json, got {json_path!r}")
    if video is not None:
        check_video_path(video)
        video_episodes = check_int("video_episodes", video_episodes, 1)
        if video_episodes > MAX_VIDEO_EPISODES:
            raise ValueError(f"video_episodes must be at most {MAX_VIDEO_EPISODES}, got {video_episodes}")
    setup = prepare(model_or_run_dir, env_id, split, env_kwargs, trust, allowed_env_ids)
    ablate_keys = normalize_ablate(ablate, setup.model.observation_space if ablate else None)
    started = time.perf_counter()
    results = play(setup, episodes, seed, bool(deterministic), ablate_keys, bool(shuffle_missions), n_envs)
    report = EvaluationReport.from_episodes(
        returns=results.returns,
        lengths=results.lengths,
        successes=results.successes,
        missions=results.missions,
        shown_missions=results.shown_missions,
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
    if baseline:
        report.baseline = _random_summary(setup, episodes, seed, n_envs)
    if ablate_keys:
        unablated = play(setup, episodes, seed, bool(deterministic), (), bool(shuffle_missions), n_envs)
        report.reference = _reference(unablated, results)
    report.seconds = time.perf_counter() - started
    if video is not None:
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
