"""Evaluation of trained models: :func:`evaluate` (success rate with a Wilson interval, per-instruction and
per-template tables, modality ablations, shuffled instructions), :func:`record_video`, and the episode runner
below them (:func:`run_episodes`)."""

from mmrl.evaluation.ablation import ABLATIONS, AblateObservation, VecAblateObservation, ablate_observation
from mmrl.evaluation.evaluate import EvaluationReport, GroupStats, evaluate, mission_template
from mmrl.evaluation.runner import EpisodeResults, MissionTable, run_episodes
from mmrl.evaluation.setup import EvalSetup, prepare
from mmrl.evaluation.stats import paired_difference, wilson_interval
from mmrl.evaluation.video import record_video

__all__ = [
    "ABLATIONS",
    "AblateObservation",
    "EpisodeResults",
    "EvalSetup",
    "EvaluationReport",
    "GroupStats",
    "MissionTable",
    "VecAblateObservation",
    "ablate_observation",
    "evaluate",
    "mission_template",
    "paired_difference",
    "prepare",
    "record_video",
    "run_episodes",
    "wilson_interval",
]
