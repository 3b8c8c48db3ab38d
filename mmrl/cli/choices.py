"""The names the command line offers in ``--help``, kept here so that building the parser imports neither torch
nor Stable-Baselines3 (``mmrl --help`` answers in a fraction of a second). ``tests/test_cli_help.py`` checks each
tuple against the registry it mirrors, so they cannot drift apart."""

from __future__ import annotations

__all__ = [
    "ABLATION_CHOICES",
    "DEFAULT_TABLE_ROWS",
    "DEMONSTRATOR_CHOICES",
    "FUSION_CHOICES",
    "SPLIT_CHOICES",
    "TEXT_ENCODER_CHOICES",
]

#: ``mmrl.extractor.fusion.FUSIONS``
FUSION_CHOICES = ("concat", "sum", "weighted", "product", "gated", "film", "cross_attention")
#: ``mmrl.extractor.text_encoders.TEXT_ENCODER_CHOICES``
TEXT_ENCODER_CHOICES = ("bow", "gru", "lstm", "conv", "transformer", "hf")
#: ``mmrl.evaluation.setup.SPLITS`` (the env grammar's ``mission_split`` values)
SPLIT_CHOICES = ("train", "test", "all", "paraphrase")
#: ``mmrl.evaluation.ablation.ABLATIONS``
ABLATION_CHOICES = ("mission", "image")
#: ``mmrl.evaluation.evaluate.DEFAULT_TABLE_ROWS``
DEFAULT_TABLE_ROWS = 10
#: ``mmrl.pretrain.collect.DEMONSTRATORS``
DEMONSTRATOR_CHOICES = ("planner", "searcher")
