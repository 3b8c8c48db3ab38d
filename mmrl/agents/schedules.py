"""Step-indexed schedules for the exploration rate and the learning rate of the tabular agents.

A schedule maps the agent's global step counter (``num_timesteps``, counted in environment transitions) to a
value. Unlike SB3's schedules, which take the *remaining progress* of the current ``learn`` call, these take the
absolute step, so a resumed run (``learn(..., reset_num_timesteps=False)``, possibly after ``save``/``load``)
continues exactly where the previous call stopped. Every schedule is a small frozen dataclass that round-trips
through JSON with :meth:`Schedule.to_dict` / :func:`schedule_from_dict`.

References:
    Sutton & Barto (2018), *Reinforcement Learning: An Introduction*, 2nd ed., sections 2.5-2.7 (step sizes)
    and 6.5 (Q-learning). Mnih et al. (2015), "Human-level control through deep reinforcement learning",
    Nature 518 (the linearly annealed epsilon that SB3's DQN also uses).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

__all__ = [
    "ConstantSchedule",
    "ExponentialSchedule",
    "LinearSchedule",
    "Schedule",
    "make_schedule",
    "schedule_from_dict",
]

# How much of the distance between ``initial`` and ``final`` an exponential schedule built by
# :func:`make_schedule` still has left at the end of its ``duration``.
_EXPONENTIAL_RESIDUAL_AT_DURATION = 0.01


@dataclass(frozen=True)
class Schedule:
    """Base class: a value as a function of the global step counter."""

    kind: ClassVar[str] = "base"

    def __call__(self, step: int) -> float:
        """Return the value at global step ``step`` (a count of environment transitions, >= 0)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description; :func:`schedule_from_dict` inverts it."""
        return {"type": self.kind, **asdict(self)}


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """The same ``value`` at every step."""

    value: float
    kind: ClassVar[str] = "constant"

    def __call__(self, step: int) -> float:
        return float(self.value)


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """Linear interpolation from ``initial`` (step 0) to ``final`` (step ``duration``), then constant.

    This is the annealing SB3's DQN uses for epsilon (``get_linear_fn``), but on absolute steps.
    """

    initial: float
    final: float
    duration: int
    kind: ClassVar[str] = "linear"

    def __post_init__(self) -> None:
        if self.duration < 0:
            raise ValueError(f"LinearSchedule duration must be >= 0, got {self.duration}")

    def __call__(self, step: int) -> float:
        if self.duration == 0 or step >= self.duration:
            return float(self.final)
        fraction = max(step, 0) / self.duration
        return float(self.initial + fraction * (self.final - self.initial))


@dataclass(frozen=True)
class ExponentialSchedule(Schedule):
    """Exponential approach from ``initial`` to ``final``: ``final + (initial - final) * 0.5 ** (step / half_life)``.

    The distance to ``final`` halves every ``half_life`` steps and never quite reaches zero; ``half_life=0``
    means the value is ``final`` from step 0 on.
    """

    initial: float
    final: float
    half_life: float
    kind: ClassVar[str] = "exponential"

    def __post_init__(self) -> None:
        if self.half_life < 0:
            raise ValueError(f"ExponentialSchedule half_life must be >= 0, got {self.half_life}")

    def __call__(self, step: int) -> float:
        if self.half_life == 0:
            return float(self.final)
        return float(self.final + (self.initial - self.final) * 0.5 ** (max(step, 0) / self.half_life))


_SCHEDULE_TYPES: dict[str, type[Schedule]] = {
    cls.kind: cls for cls in (ConstantSchedule, LinearSchedule, ExponentialSchedule)
}


def schedule_from_dict(description: dict[str, Any]) -> Schedule:
    """Rebuild a schedule from :meth:`Schedule.to_dict` output.

    Raises:
        ValueError: If the description names an unknown type or has missing/unexpected fields.
    """
    if not isinstance(description, dict) or "type" not in description:
        raise ValueError(f"schedule description must be a dict with a 'type' key, got {description!r}")
    kind = description["type"]
    cls = _SCHEDULE_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown schedule type {kind!r}; expected one of {sorted(_SCHEDULE_TYPES)}")
    arguments = {key: value for key, value in description.items() if key != "type"}
    expected = {field.name for field in fields(cls)}
    if set(arguments) != expected:
        raise ValueError(f"schedule {kind!r} expects fields {sorted(expected)}, got {sorted(arguments)}")
    return cls(**arguments)


def make_schedule(kind: str, initial: float, final: float, duration: int) -> Schedule:
    """Build a schedule that goes from ``initial`` to ``final`` over ``duration`` steps.

    Args:
        kind: ``"constant"`` (stays at ``initial``), ``"linear"`` (reaches ``final`` exactly at ``duration``)
            or ``"exponential"`` (has 1% of the way left at ``duration``, i.e. half-life
            ``duration / log2(100)``).
        initial: Value at step 0.
        final: Value approached at ``duration``.
        duration: Number of steps of the decay, >= 0.

    Raises:
        ValueError: If ``kind`` is unknown.
    """
    duration = max(int(duration), 0)
    if kind == "constant":
        return ConstantSchedule(float(initial))
    if kind == "linear":
        return LinearSchedule(float(initial), float(final), duration)
    if kind == "exponential":
        half_life = duration / math.log2(1.0 / _EXPONENTIAL_RESIDUAL_AT_DURATION)
        return ExponentialSchedule(float(initial), float(final), half_life)
    raise ValueError(f"unknown schedule kind {kind!r}; expected 'constant', 'linear' or 'exponential'")
