"""``ParameterSnapshot``: whether some modules' parameters still hold the values they held at one moment.

The extractor's inference text memo (:class:`~mmrl.extractor.extractor.InferenceTextMemo`) must be dropped whenever
a parameter of the text encoder changes. Version counters and storage pointers miss two ways parameters change in
practice: writes through ``.data`` (SB3's ``polyak_update`` of DQN target networks writes that way) and parameters
swapped for new objects (``load_state_dict(assign=True)``). Comparing values catches every change; for the few
small tensors of an instruction encoder it costs 10-40 us, against the 250-600 us of encoding a rollout batch
with a GRU, n-gram or Transformer encoder.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _parameters(modules: Iterable[nn.Module]) -> list[torch.Tensor]:
    # The registered parameters of every submodule, read from their dicts (about half the cost of
    # ``module.parameters()``, which deduplicates through nested generators; the memo checks on every rollout step).
    return [
        parameter
        for module in modules
        for submodule in module.modules()
        for parameter in submodule._parameters.values()
        if parameter is not None
    ]


class ParameterSnapshot:
    """A copy of the parameters of some modules, compared by value with their current parameters."""

    def __init__(self) -> None:
        self._values: list[torch.Tensor] | None = None

    def matches(self, modules: Iterable[nn.Module]) -> bool:
        """Whether a snapshot was taken and the modules' parameters (read afresh) still equal it exactly."""
        values = self._values
        if values is None:
            return False
        parameters = _parameters(modules)
        return len(values) == len(parameters) and all(
            value.shape == parameter.shape
            and value.dtype == parameter.dtype
            and value.device == parameter.device
            and torch.equal(value, parameter)
            for value, parameter in zip(values, parameters, strict=True)
        )

    def take(self, modules: Iterable[nn.Module]) -> None:
        """Copies the modules' current parameters."""
        self._values = [parameter.detach().clone() for parameter in _parameters(modules)]
