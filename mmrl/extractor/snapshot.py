"""``ParameterSnapshot``: whether some modules' parameters still hold the values they held at one moment.

The inference caches (the text memo, the fusions' reuse of gates and FiLM modulations) must be dropped whenever a
parameter they depend on changes. Version counters and storage pointers miss two ways parameters change in
practice: writes through ``.data`` (SB3's ``polyak_update`` of DQN target networks writes that way) and parameters
swapped for new objects (``load_state_dict(assign=True)``). Comparing values catches every change, and for the
few small tensors of an instruction encoder or a gate it costs a few microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _parameters(modules: Iterable[nn.Module]) -> list[torch.Tensor]:
    return [parameter for module in modules for parameter in module.parameters()]


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
