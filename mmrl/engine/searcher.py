"""A view-limited expert: demonstrations that a policy seeing only its egocentric view can copy.

The planner (:mod:`mmrl.engine.planner`) reads the whole world and walks straight to objects the agent has not
seen yet. A policy that reads only its view cannot copy that: it has to guess where the planner was heading. The
searcher acts on what the view shows:

* while the current sub-goal's object is out of view, it walks to a *lookout*, a cell nearest the middle of the
  grid with no key, ball or box beside it (so turning there faces no wrong object), and turns right there until
  the object comes into view;
* once the object is in view, it takes the shortest path to it that keeps it in view at every step
  (:func:`path_in_view`; where there is none, the planner's shortest path, :func:`~mmrl.engine.planner.navigate`)
  and follows it to the end. Neither faces a wrong object on the way.

It plans "go to" sub-goals only (``mmrl/GoTo-*``, ``mmrl/Sequence-*``). In a room of up to 9 x 9 cells (walls
included) the four headings at a lookout show every cell of a 7 x 7 view's reach, so the search ends; in larger
rooms, or where objects leave no lookout near the middle, it can circle, and :func:`search_plan` then returns
``None`` (callers fall back to the planner).

Example:
    >>> from mmrl.engine.searcher import search_plan
    >>> actions = search_plan(layout, view="agent", view_size=7)  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from mmrl.engine.constants import DIRECTION_DELTAS, PICKABLE_KINDS, Action, Kind, Verb
from mmrl.engine.planner import navigate
from mmrl.engine.rules import step_navigation
from mmrl.engine.view import visible_cells
from mmrl.engine.world import Layout, WorldState

_NO_LIMIT = 1 << 30
_OBJECT = np.zeros(256, dtype=bool)
_OBJECT[list(PICKABLE_KINDS)] = True
_STANDABLE = np.zeros(256, dtype=bool)
_STANDABLE[[Kind.EMPTY, Kind.FLOOR, Kind.GOAL]] = True
_LEFT, _RIGHT, _FORWARD = int(Action.LEFT), int(Action.RIGHT), int(Action.FORWARD)


def lookout_cells(kind_HW: np.ndarray) -> np.ndarray:
    """Cells the searcher turns in place on, ``(H, W)`` bool: the empty cells with no key, ball or box in the four
    cells beside them, nearest the middle of the grid (Chebyshev distance; ties all kept). None if no cell
    qualifies."""
    object_HW = _OBJECT[kind_HW]
    beside_HW = np.zeros_like(object_HW)
    beside_HW[1:] |= object_HW[:-1]
    beside_HW[:-1] |= object_HW[1:]
    beside_HW[:, 1:] |= object_HW[:, :-1]
    beside_HW[:, :-1] |= object_HW[:, 1:]
    usable_HW = _STANDABLE[kind_HW] & ~beside_HW
    height, width = kind_HW.shape
    rows_HW, cols_HW = np.mgrid[0:height, 0:width]
    distance_HW = np.maximum(np.abs(rows_HW - (height - 1) / 2), np.abs(cols_HW - (width - 1) / 2))
    distance_HW = np.where(usable_HW, distance_HW, np.inf)
    return usable_HW & (distance_HW <= distance_HW.min())


def _search_step(world: WorldState) -> int | None:
    """One step toward (or at) a lookout of world 0, or None when no lookout can be reached."""
    lookout_HW = lookout_cells(world.kind_NHW[0])
    row, col = world.agent_pos_N2[0]
    if lookout_HW[row, col]:
        return int(Action.RIGHT)
    path = navigate(world, lookout_HW, through_closed_doors=False)
    if path is None:
        return None
    return path[0] if path else int(Action.FORWARD)  # facing a lookout: step onto it


def _in_view(rows: np.ndarray, cols: np.ndarray, row: int, col: int, heading: int, view_size: int) -> bool:
    """Whether any cell ``(rows[k], cols[k])`` lies in the egocentric window of an agent at ``(row, col, heading)``."""
    ahead, right = DIRECTION_DELTAS[heading], DIRECTION_DELTAS[(heading + 1) % 4]
    forward = (rows - row) * ahead[0] + (cols - col) * ahead[1]
    lateral = (rows - row) * right[0] + (cols - col) * right[1]
    return bool(((forward >= 0) & (forward < view_size) & (np.abs(lateral) <= view_size // 2)).any())


def path_in_view(world: WorldState, target_HW: np.ndarray, view_size: int) -> list[int] | None:
    """Shortest actions after which world 0's agent faces a ``target_HW`` cell, keeping one in its egocentric view
    at every step (BFS over ``(row, col, heading)``), or ``None`` if every path loses sight of them.

    The path never faces a key, ball or box outside ``target_HW`` and moves only onto empty cells, floor and goal
    squares. Keeping the target in view is what lets a policy that sees only the view follow the path step by
    step: a path that turns away from the target would reach states where the searcher searches again.
    """
    kind_HW = world.kind_NHW[0]
    height, width = kind_HW.shape
    rows, cols = np.nonzero(target_HW)
    wrong_HW = _OBJECT[kind_HW] & ~target_HW
    start = (int(world.agent_pos_N2[0, 0]), int(world.agent_pos_N2[0, 1]), int(world.agent_dir_N[0]))
    parents: dict[tuple[int, int, int], tuple[tuple[int, int, int], int] | None] = {start: None}
    frontier = [start]
    while frontier:
        following = []
        for state in frontier:
            row, col, heading = state
            for action in (_LEFT, _RIGHT, _FORWARD):
                if action == _FORWARD:
                    d_row, d_col = DIRECTION_DELTAS[heading]
                    new = (row + int(d_row), col + int(d_col), heading)
                    if not _STANDABLE[kind_HW[new[0], new[1]]]:
                        continue
                else:
                    new = (row, col, (heading + (1 if action == _RIGHT else -1)) % 4)
                if new in parents:
                    continue
                front_row, front_col = np.array(new[:2]) + DIRECTION_DELTAS[new[2]]
                if not (0 <= front_row < height and 0 <= front_col < width):
                    continue
                if target_HW[front_row, front_col]:
                    actions = [action]
                    while parents[state] is not None:
                        state, step = parents[state]  # type: ignore[misc]
                        actions.append(step)
                    return actions[::-1]
                if wrong_HW[front_row, front_col] or not _in_view(rows, cols, *new, view_size):
                    continue
                parents[new] = (state, action)
                following.append(new)
        frontier = following
    return None


def search_plan(
    layout: Layout, view: str = "agent", view_size: int = 7, max_steps: int | None = None
) -> list[int] | None:
    """The searcher's actions from ``layout``'s start until every sub-goal is done, or ``None``.

    Args:
        layout: A world whose sub-goals are all "go to" goals.
        view: The view the policy will see: ``"agent"`` (egocentric) or ``"full"`` (everything is in view, so the
            searcher walks as the planner does).
        view_size: Side of the egocentric window in cells.
        max_steps: Most actions allowed (default ``4 * height * width``).

    Returns:
        The actions (run through the real rules, so they are known to succeed), or ``None`` when a sub-goal is not
        "go to", the search circles past ``max_steps``, a path is blocked, or an action would end the episode as a
        failure.
    """
    if not layout.goals or any(goal.verb != Verb.GOTO for goal in layout.goals):
        return None
    height, width = layout.kind_HW.shape
    limit = 4 * height * width if max_steps is None else max_steps
    world = WorldState(1, height, width)
    world.load_layout(0, layout)
    actions: list[int] = []
    while len(actions) < limit:
        stage = int(world.stage_N[0])
        goal = layout.goals[stage]
        target_HW = (world.kind_NHW[0] == goal.kind) & (world.colour_NHW[0] == goal.colour)
        in_view_HW = target_HW & visible_cells(world, 0, view, view_size)
        if in_view_HW.any():
            path = None if view == "full" else path_in_view(world, target_HW, view_size)
            path = path or navigate(world, in_view_HW, through_closed_doors=False)
            if not path:
                return None
            steps = path
        else:
            step = _search_step(world)
            if step is None:
                return None
            steps = [step]
        for action in steps:
            result = step_navigation(world, np.array([action]), _NO_LIMIT, wrong_object="fail")
            actions.append(action)
            if result.success_N[0]:
                return actions if len(actions) <= limit else None
            if result.terminated_N[0]:
                return None
            if int(world.stage_N[0]) != stage:
                break
    return None
