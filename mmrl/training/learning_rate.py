"""Learning-rate schedules of the SB3 algorithms, chosen by the ``learning_rate_schedule`` preset key.

SB3 calls a schedule with the *progress remaining*, 1 at the first update and 0 at ``timesteps``; mmrl runs keep
the full ``timesteps`` horizon across ``--stop-at`` / ``--resume``, so a resumed run continues on the same curve.
Schedules are small frozen dataclasses defined here (not lambdas), so the model file pickles them by name.

Example::

    mmrl train --algo ppo --env mmrl/PickUp-5x5-v0 --set learning_rate_schedule=linear

decays the preset's ``learning_rate`` linearly to 0 at the end of training (as RL Zoo's ``lin_7e-4``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LEARNING_RATE_SCHEDULES", "LinearDecay", "make_learning_rate"]

#: Values of the ``learning_rate_schedule`` key.
LEARNING_RATE_SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class LinearDecay:
    """``initial`` at the start of training, falling linearly to ``final`` at ``timesteps``.

    Args:
        initial: Learning rate of the first update.
        final: Learning rate at the end.
    """

    initial: float
    final: float = 0.0

    def __call__(self, progress_remaining: float) -> float:
        return self.final + (self.initial - self.final) * float(progress_remaining)


def make_learning_rate(schedule: str, learning_rate: float) -> float | LinearDecay:
    """What to pass to SB3 as ``learning_rate`` for ``schedule`` and the configured rate.

    Raises:
        ValueError: For an unknown schedule name (the message lists the choices).
    """
    if schedule == "constant":
        return learning_rate
    if schedule == "linear":
        return LinearDecay(float(learning_rate))
    raise ValueError(
        f"unknown learning_rate_schedule {schedule[:100]!r}; valid choices: {', '.join(LEARNING_RATE_SCHEDULES)}"
    )
