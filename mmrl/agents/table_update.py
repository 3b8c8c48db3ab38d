"""The batched Q-table update: many transitions applied at once with the result of applying them one by one.

Each call to the vectorised env gives N transitions that are applied with NumPy fancy
indexing. Targets are computed from the table as it was before the batch (like a synchronous / "batch" update).
When several transitions of one batch share a ``(s, a)`` pair they are applied with *sequential semantics*: the
result is exactly that of applying them one after the other in env-index order,
``Q <- (1 - alpha)^k Q + sum_j alpha (1 - alpha)^(k - 1 - j) target_j``. Unlike summing the TD errors
(``np.add.at``), this can never overshoot when ``k * alpha > 1`` (common with hundreds of envs in a 16-state
FrozenLake), and unlike averaging them it learns as much from k samples as a single-env learner would.
The order is deterministic (a stable sort on ``s * n_actions + a``). Consequence: a pair seen k times in one
batch moves by ``1 - (1 - alpha)^k`` of the way to its (weighted) target, so with many envs in lockstep and
noisy rewards prefer a small ``alpha`` (or a decaying schedule).
"""

from __future__ import annotations

import numpy as np

__all__ = ["greedy_actions", "sequential_update"]


def sequential_update(
    table: np.ndarray, rows: np.ndarray, actions: np.ndarray, targets: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Move ``table[rows, actions]`` towards ``targets`` with step ``alpha``, duplicates applied in batch order.

    The result equals ``for i in range(len(rows)): table[rows[i], actions[i]] += alpha * (targets[i] -
    table[rows[i], actions[i]])`` (targets are fixed beforehand), computed without a Python loop:
    for a pair that occurs ``k`` times, ``Q <- (1 - alpha)^k Q + sum_j alpha (1 - alpha)^(k - 1 - j) target_j``.

    Args:
        table: ``(n_rows, n_actions)`` C-contiguous float table, updated in place.
        rows, actions: ``(batch,)`` int64 indices.
        targets: ``(batch,)`` float targets.
        alpha: Step size in [0, 1].

    Returns:
        ``(unique_flat_indices, counts)``: the distinct flat indices ``row * n_actions + action`` updated and
        how often each occurred, for visit counting.
    """
    if not table.flags.c_contiguous:
        raise ValueError("sequential_update needs a C-contiguous table (it updates a flat view in place)")
    flat = table.reshape(-1)
    keys = rows * table.shape[1] + actions
    batch = keys.size
    if batch == 1:
        flat[keys] += alpha * (targets - flat[keys])
        return keys, np.ones(1, dtype=np.int64)
    # A stable sort on uint16 keys is a radix sort (linear time), several times faster than on int64.
    sort_keys = keys.astype(np.uint16) if table.size <= np.iinfo(np.uint16).max + 1 else keys
    order = np.argsort(sort_keys, kind="stable")
    sorted_keys = keys[order]
    is_group_start = np.empty(batch, dtype=bool)
    is_group_start[:1] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=is_group_start[1:])
    if is_group_start.all():
        flat[keys] += alpha * (targets - flat[keys])
        return keys, np.ones(batch, dtype=np.int64)
    starts = np.flatnonzero(is_group_start)
    group = np.cumsum(is_group_start) - 1
    counts = np.diff(np.append(starts, batch))
    later_duplicates = counts[group] - 1 - (np.arange(batch) - starts[group])
    decay = 1.0 - alpha
    weighted_targets = alpha * decay**later_duplicates * targets[order]
    sums = np.bincount(group, weights=weighted_targets, minlength=starts.size)
    unique_keys = sorted_keys[starts]
    flat[unique_keys] = decay**counts * flat[unique_keys] + sums
    return unique_keys, counts


def greedy_actions(q_values: np.ndarray) -> np.ndarray:
    """Greedy actions with deterministic tie-breaking (lowest index)."""
    return np.argmax(q_values, axis=1)
