"""mmrl: reinforcement learning on image + text observations.

``import mmrl`` registers the ``mmrl/...`` Gymnasium environments. Torch-based parts (the extractor, training,
evaluation) are imported lazily on first attribute access so that env-only users do not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

import mmrl.envs  # noqa: F401  (registers the environments)
from mmrl.version import __version__

_LAZY = {
    "MultimodalExtractor": "mmrl.extractor",
    "policy_kwargs": "mmrl.extractor",
    "make_vec_env": "mmrl.envs.vec_env",
    "train": "mmrl.training",
    "load_policy": "mmrl.bundle",
    "export_bundle": "mmrl.bundle",
    "export_run": "mmrl.export",
    "evaluate": "mmrl.evaluation",
}

__all__ = ["__version__", "sweep", *_LAZY]


def __getattr__(name: str) -> Any:
    if name == "sweep":  # the package mmrl.sweep, callable: mmrl.sweep(SPEC, out=...) runs a sweep
        return importlib.import_module("mmrl.sweep")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmrl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
