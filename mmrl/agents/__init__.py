"""Hand-written agents with the surface of SB3 models.

Data flows env -> wrappers -> extractor -> agents: nothing here imports ``mmrl.envs``.

* :class:`QLearning`: tabular (Double) Q-learning with vectorised NumPy updates.
* :class:`TabularVecEnv`: SB3 ``VecEnv`` stepping N copies of a toy-text MDP (``P`` table) with NumPy.
* :class:`StateIndexer`: stable observation -> table-row map for non-``Discrete`` observations.
* :mod:`mmrl.agents.schedules`: JSON-serialisable epsilon / learning-rate schedules.

Names are imported lazily on first access, so ``mmrl.agents.state_indexer`` and ``mmrl.agents.schedules`` can be
used without importing Stable-Baselines3 (and torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmrl.agents.qlearning import QLearning
    from mmrl.agents.schedules import ConstantSchedule, ExponentialSchedule, LinearSchedule, Schedule
    from mmrl.agents.state_indexer import StateCapacityError, StateIndexer
    from mmrl.agents.tabular_vec_env import TabularMDP, TabularVecEnv
    from mmrl.agents.vec_env_adapter import GymnasiumVecEnvAdapter

_LAZY = {
    "QLearning": "mmrl.agents.qlearning",
    "GymnasiumVecEnvAdapter": "mmrl.agents.vec_env_adapter",
    "TabularMDP": "mmrl.agents.tabular_vec_env",
    "TabularVecEnv": "mmrl.agents.tabular_vec_env",
    "StateIndexer": "mmrl.agents.state_indexer",
    "StateCapacityError": "mmrl.agents.state_indexer",
    "Schedule": "mmrl.agents.schedules",
    "ConstantSchedule": "mmrl.agents.schedules",
    "LinearSchedule": "mmrl.agents.schedules",
    "ExponentialSchedule": "mmrl.agents.schedules",
}

__all__ = [
    "ConstantSchedule",
    "ExponentialSchedule",
    "GymnasiumVecEnvAdapter",
    "LinearSchedule",
    "QLearning",
    "Schedule",
    "StateCapacityError",
    "StateIndexer",
    "TabularMDP",
    "TabularVecEnv",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmrl.agents' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
