"""Evaluation of trained models: :func:`evaluate` (success rate with a Wilson interval, per-instruction and
per-template tables, modality ablations, shuffled instructions) and :func:`record_video`."""

from mmrl.evaluation.ablation import ABLATIONS, AblateObservation, VecAblateObservation, ablate_observation
from mmrl.evaluation.evaluate import EvaluationReport, GroupStats, evaluate, mission_template, wilson_interval
from mmrl.evaluation.video import record_video

__all__ = [
    "ABLATIONS",
    "AblateObservation",
    "EvaluationReport",
    "GroupStats",
    "VecAblateObservation",
    "ablate_observation",
    "evaluate",
    "mission_template",
    "record_video",
    "wilson_interval",
]
