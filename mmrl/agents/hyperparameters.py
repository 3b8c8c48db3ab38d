"""Checks of :class:`~mmrl.agents.QLearning`'s hyperparameters, with messages that say how to fix a bad value."""

from __future__ import annotations

import inspect
import math
import numbers
from typing import Any

from mmrl.agents.schedules import ConstantSchedule, Schedule

__all__ = [
    "check_exploration_schedule",
    "check_finite",
    "check_learning_rate",
    "check_override_names",
    "check_unit_interval",
]

SCHEDULE_HELP = (
    "a mmrl.agents.schedules.Schedule of the absolute step counter (ConstantSchedule(value), "
    "LinearSchedule(initial, final, duration) or ExponentialSchedule(initial, final, half_life))"
)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (Python or NumPy), ``bool`` excluded."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def schedule_bounds(schedule: Schedule) -> list[float]:
    """Values that bound a schedule's range: the endpoints of the built-in kinds, else its value at step 0."""
    values = [getattr(schedule, name) for name in ("value", "initial", "final") if hasattr(schedule, name)]
    return [float(value) for value in values] or [float(schedule(0))]


def check_learning_rate(learning_rate: Any) -> Schedule:
    """The step-size schedule for ``learning_rate`` (a float in (0, 1] or a :class:`Schedule` within [0, 1]).

    Raises:
        TypeError: For a callable that is not a :class:`Schedule` (SB3's progress functions) or a non-number.
        ValueError: For a value outside (0, 1] or a schedule leaving [0, 1].
    """
    if isinstance(learning_rate, Schedule):
        bounds = schedule_bounds(learning_rate)
        if not all(0.0 <= value <= 1.0 for value in bounds) or max(bounds) <= 0.0:
            raise ValueError(
                f"learning_rate schedule {learning_rate!r} must stay within [0, 1] and not be 0 throughout (the "
                f"step size alpha of the update), its values reach {bounds}; use e.g. LinearSchedule(0.5, 0.05, "
                f"duration)"
            )
        return learning_rate
    if callable(learning_rate):
        raise TypeError(
            f"learning_rate must be a float in (0, 1] or {SCHEDULE_HELP}, got the callable {learning_rate!r}. "
            "SB3-style functions of the remaining progress are not accepted (QLearning's schedules count absolute "
            "steps, so that resumed training continues them and save() can store them as JSON): pass e.g. "
            "learning_rate=LinearSchedule(initial=0.5, final=0.05, duration=total_timesteps)"
        )
    if not is_real(learning_rate):
        raise TypeError(
            f"learning_rate must be a float in (0, 1] or {SCHEDULE_HELP}, got {learning_rate!r} of type "
            f"{type(learning_rate).__name__}; pass e.g. learning_rate=0.1"
        )
    if not 0.0 < learning_rate <= 1.0:
        raise ValueError(
            f"learning_rate must be in (0, 1] (the step size alpha: a negative one moves Q away from its targets, "
            f"one above 1 overshoots them), got {learning_rate}; pass e.g. learning_rate=0.1"
        )
    return ConstantSchedule(float(learning_rate))


def check_unit_interval(name: str, value: Any, meaning: str) -> float:
    """``value`` as a float if it is a real number in [0, 1]; else ``TypeError`` / ``ValueError``."""
    if not is_real(value):
        raise TypeError(
            f"{name} must be a float in [0, 1] ({meaning}), got {value!r} of type {type(value).__name__}; pass a "
            f"number such as {name}=0.1"
        )
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1] ({meaning}), got {value}; pass a value in [0, 1]")
    return float(value)


def check_exploration_schedule(schedule: Any) -> None:
    if isinstance(schedule, str):
        if schedule not in ("linear", "exponential", "constant"):
            raise ValueError(
                f"exploration_schedule must be 'linear', 'exponential', 'constant' or {SCHEDULE_HELP}, got {schedule!r}"
            )
        return
    if not isinstance(schedule, Schedule):
        raise TypeError(
            f"exploration_schedule must be 'linear', 'exponential', 'constant' or {SCHEDULE_HELP}, got "
            f"{schedule!r}; SB3-style functions of the remaining progress are not accepted"
        )
    bounds = schedule_bounds(schedule)
    if not all(0.0 <= value <= 1.0 for value in bounds):
        raise ValueError(
            f"exploration_schedule {schedule!r} must stay within [0, 1] (it gives the probability epsilon of a "
            f"random action), its values reach {bounds}"
        )


def check_finite(name: str, value: Any, meaning: str) -> float:
    """``value`` as a float if it is a finite real number; else ``TypeError`` / ``ValueError``."""
    if not is_real(value):
        raise TypeError(
            f"{name} must be a finite float ({meaning}), got {type(value).__name__}; pass a number such as {name}=0.0"
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite float ({meaning}), got {value}; pass a number such as {name}=0.0")
    return float(value)


#: Constructor arguments that ``load`` takes from the file (or the env) and never as overrides.
NOT_OVERRIDABLE = frozenset({"self", "env", "observation_space", "action_space"})


def check_override_names(cls: type, overrides: dict[str, Any]) -> None:
    """Raises ``TypeError`` for override names that are not constructor arguments (a typo in the caller's call)."""
    accepted = [name for name in inspect.signature(cls).parameters if name not in NOT_OVERRIDABLE]
    unknown = [name for name in overrides if name not in accepted]
    if unknown:
        raise TypeError(
            f"{cls.__name__}.load() got unexpected keyword argument(s) {', '.join(map(repr, unknown))} (in the "
            f"overrides or custom_objects); constructor arguments that can be overridden: {', '.join(accepted)}. "
            f"Check the spelling, or leave the argument out"
        )
