"""Intervals for evaluation results: a success rate (Wilson score), and the difference between two evaluations of
the same episodes (paired by seed), e.g. with and without the instruction (``--ablate mission``).

Example::

    from mmrl.evaluation.stats import paired_difference, wilson_interval

    wilson_interval(28, 50)                          # (0.42..., 0.69...): 95 % interval of 28 successes in 50
    paired_difference([True] * 50, [False] * 50)     # (-1.0, -1.0, -0.89...): ablated minus intact, 95 % interval
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["Z_95", "newcombe_paired_interval", "paired_difference", "wilson_interval"]

#: ``z`` of a two-sided 95 % normal interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default); ``(0, 1)`` when ``trials == 0``."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # the interval contains p exactly; clamp so that rounding (e.g. 2.8e-17 at p = 0) cannot say otherwise
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


def newcombe_paired_interval(first: Sequence[bool], second: Sequence[bool], z: float = Z_95) -> tuple[float, float]:
    """95 % interval of ``rate(second) - rate(first)`` for paired binary outcomes (Newcombe 1998, method 10, the
    "square-and-add" interval: Wilson score intervals of both rates combined with the pairs' correlation).

    Unlike the normal approximation it stays honest at the edges: 50 successes on both sides give
    (-0.071, 0.071), not a zero-width interval.
    """
    n = len(first)
    both = sum(1 for a, b in zip(first, second, strict=True) if a and b)
    only_second = sum(1 for a, b in zip(first, second, strict=True) if b and not a)
    only_first = sum(1 for a, b in zip(first, second, strict=True) if a and not b)
    neither = n - both - only_second - only_first
    p2, p1 = (both + only_second) / n, (both + only_first) / n
    low2, high2 = wilson_interval(both + only_second, n, z)
    low1, high1 = wilson_interval(both + only_first, n, z)
    margins = (both + only_second) * (only_first + neither) * (both + only_first) * (only_second + neither)
    agreement = both * neither - only_second * only_first
    # Newcombe's correlation estimate, with his continuity correction of a positive one
    corrected = agreement - n / 2 if agreement > n / 2 else min(agreement, 0)
    phi = corrected / math.sqrt(margins) if margins > 0 else 0.0
    below = math.sqrt(max((p2 - low2) ** 2 - 2 * phi * (p2 - low2) * (high1 - p1) + (high1 - p1) ** 2, 0.0))
    above = math.sqrt(max((high2 - p2) ** 2 - 2 * phi * (high2 - p2) * (p1 - low1) + (p1 - low1) ** 2, 0.0))
    return max(-1.0, p2 - p1 - below), min(1.0, p2 - p1 + above)


def paired_difference(
    first: Sequence[bool | float | None], second: Sequence[bool | float | None]
) -> tuple[float, float, float] | None:
    """Mean of ``second - first`` over paired episodes (same seeds) and its 95 % interval.

    Success flags (every value a bool) get :func:`newcombe_paired_interval`; other values (returns) the normal
    approximation for the mean of the paired differences (``Z_95 * std / sqrt(n)``; unbounded for one pair).
    Pairs where either side is None are dropped.

    Returns:
        ``(difference, low, high)``, or None when no pair is complete.
    """
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if a is not None and b is not None]
    if not pairs:
        return None
    deltas = np.array([float(b) - float(a) for a, b in pairs])
    mean = float(deltas.mean())
    if all(isinstance(value, (bool, np.bool_)) for pair in pairs for value in pair):
        low, high = newcombe_paired_interval([bool(a) for a, _ in pairs], [bool(b) for _, b in pairs])
        return mean, min(low, mean), max(high, mean)
    half = Z_95 * float(deltas.std(ddof=1)) / math.sqrt(len(deltas)) if len(deltas) > 1 else float("inf")
    return mean, mean - half, mean + half
