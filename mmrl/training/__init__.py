"""Training: :func:`train` (``mmrl train``), presets, the run directory, callbacks and Ctrl-C handling.

``mmrl.train`` is this package's :func:`train`.
"""

from __future__ import annotations

from mmrl.training.best_model import evaluate_model
from mmrl.training.config import TrainConfig
from mmrl.training.presets import load_preset, resolve_config
from mmrl.training.run_dir import RunDir, load_model
from mmrl.training.trainer import TrainResult, train

__all__ = [
    "RunDir",
    "TrainConfig",
    "TrainResult",
    "evaluate_model",
    "load_model",
    "load_preset",
    "resolve_config",
    "train",
]
