"""A breadth-first-search planner that solves any world the generators produce.

It plans sub-goal by sub-goal with BFS over ``(row, col, heading)`` and checks each plan by running it through
the real rules (:mod:`mmrl.engine.rules`), so a returned plan is known to succeed. Closed doors on the way are
opened; locked doors are unlocked for "open" goals (the key is fetched first) and for "go to" goals behind them
(:func:`_navigate_unlocking`); "pick up" goals never route through locked doors, because picking up the key would
be a wrong pick-up. Used to reject unsolvable
levels at generation time and in tests.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from mmrl.engine.constants import DIRECTION_DELTAS, PICKABLE_KINDS, Action, DoorState, Kind, Verb
from mmrl.engine.rules import step_navigation
from mmrl.engine.world import Goal, Layout, WorldState

_NO_LIMIT = 1 << 30


def _passable(world: WorldState, row: int, col: int) -> bool:
    kind = world.kind_NHW[0, row, col]
    if kind in (Kind.EMPTY, Kind.FLOOR, Kind.GOAL):
        return True
    return kind == Kind.DOOR and world.state_NHW[0, row, col] != DoorState.LOCKED


def navigate(world: WorldState, target_RC: np.ndarray, through_closed_doors: bool = True) -> list[int] | None:
    """Shortest action list after which the agent faces a cell where ``target_RC`` is True (BFS).

    Closed, unlocked doors on the way are opened (toggle, then forward). The path never faces a key, ball or
    box outside ``target_RC``: under ``wrong_object="fail"`` that would end the episode. With
    ``through_closed_doors=False`` closed doors are not opened (toggling another door fails an "open" goal).
    """
    start = (int(world.agent_pos_N2[0, 0]), int(world.agent_pos_N2[0, 1]), int(world.agent_dir_N[0]))
    parents: dict[tuple[int, int, int], tuple[tuple[int, int, int], list[int]] | None] = {start: None}
    queue = deque([start])
    height, width = world.grid_shape
    while queue:
        state = queue.popleft()
        row, col, heading = state
        front_row, front_col = row + DIRECTION_DELTAS[heading][0], col + DIRECTION_DELTAS[heading][1]
        if 0 <= front_row < height and 0 <= front_col < width and target_RC[front_row, front_col]:
            actions: list[int] = []
            node = state
            while parents[node] is not None:
                node, step = parents[node]  # type: ignore[misc]
                actions[:0] = step
            return actions
        successors = [((row, col, (heading - 1) % 4), [Action.LEFT]), ((row, col, (heading + 1) % 4), [Action.RIGHT])]
        if 0 <= front_row < height and 0 <= front_col < width and _passable(world, front_row, front_col):
            closed = (
                world.kind_NHW[0, front_row, front_col] == Kind.DOOR
                and world.state_NHW[0, front_row, front_col] == DoorState.CLOSED
            )
            step = [Action.TOGGLE, Action.FORWARD] if closed else [Action.FORWARD]
            if through_closed_doors or not closed:
                successors.append(((front_row, front_col, heading), step))
        for nxt, step in successors:
            if nxt not in parents and not _faces_other_object(world, nxt, target_RC):
                parents[nxt] = (state, [int(a) for a in step])
                queue.append(nxt)
    return None


def _faces_other_object(world: WorldState, state: tuple[int, int, int], target_RC: np.ndarray) -> bool:
    """Whether ``state`` faces a key, ball or box outside ``target_RC`` (a wrong object ends an episode)."""
    row, col, heading = state
    front_row, front_col = row + DIRECTION_DELTAS[heading][0], col + DIRECTION_DELTAS[heading][1]
    height, width = world.grid_shape
    if not (0 <= front_row < height and 0 <= front_col < width) or target_RC[front_row, front_col]:
        return False
    return int(world.kind_NHW[0, front_row, front_col]) in PICKABLE_KINDS


def _copy_world(world: WorldState) -> WorldState:
    return world.subset(np.arange(world.n_worlds))


def _load_world(world: WorldState, source: WorldState) -> None:
    world.load_arrays(source.to_arrays(), source.missions)


def _navigate_unlocking(world: WorldState, target_RC: np.ndarray) -> list[int] | None:
    """:func:`navigate`, unlocking locked doors on the way when it must (the world is advanced along the plan).

    While no path reaches ``target_RC``, the first locked door (by colour) that :func:`plan_goal` can open
    (fetching its key) is opened, then navigation is tried again. Only for "go to" goals: under a "pick up"
    goal, picking up a key is a wrong pick-up that ends the episode.
    """
    actions: list[int] = []
    while True:
        path = navigate(world, target_RC)
        if path is not None:
            _run(world, path)
            return actions + path
        locked = (world.kind_NHW[0] == Kind.DOOR) & (world.state_NHW[0] == DoorState.LOCKED)
        for colour in sorted({int(c) for c in world.colour_NHW[0][locked]}):
            trial = _copy_world(world)
            opening = plan_goal(trial, Goal(Verb.OPEN, Kind.DOOR, colour))
            if opening is not None:
                _load_world(world, trial)
                actions += opening
                break
        else:
            return None  # no locked door left that can be opened: the target is out of reach


def _run(world: WorldState, actions: list[int]) -> None:
    for action in actions:
        step_navigation(world, np.array([action]), _NO_LIMIT)


def _free_hands(world: WorldState) -> list[int] | None:
    if world.carry_kind_N[0] == Kind.EMPTY:
        return []
    path = navigate(world, world.kind_NHW[0] == Kind.EMPTY)
    return None if path is None else [*path, int(Action.DROP)]


def _object_mask(world: WorldState, kind: int, colour: int) -> np.ndarray:
    return (world.kind_NHW[0] == kind) & (world.colour_NHW[0] == colour)


def plan_goal(world: WorldState, goal: Goal) -> list[int] | None:
    """Actions completing ``goal`` from world 0's current state (the world is advanced along the plan)."""
    plan: list[int] = []

    def extend(actions: list[int] | None, already_run: bool = False) -> bool:
        if actions is None:
            return False
        if not already_run:
            _run(world, actions)
        plan.extend(actions)
        return True

    if goal.verb == Verb.GOTO:
        return plan if extend(_navigate_unlocking(world, _object_mask(world, goal.kind, goal.colour)), True) else None
    if goal.verb == Verb.PICKUP:
        if goal.kind not in PICKABLE_KINDS:
            return None
        if world.carry_kind_N[0] == goal.kind and world.carry_colour_N[0] == goal.colour:
            return plan
        if not extend(_free_hands(world)):
            return None
        path = navigate(world, _object_mask(world, goal.kind, goal.colour))
        return plan if extend(None if path is None else [*path, int(Action.PICKUP)]) else None
    if goal.verb == Verb.OPEN:
        doors = _object_mask(world, Kind.DOOR, goal.colour)
        if not doors.any():
            return None
        locked = bool((world.state_NHW[0][doors] == DoorState.LOCKED).all())
        holding_key = world.carry_kind_N[0] == Kind.KEY and world.carry_colour_N[0] == goal.colour
        if (
            locked
            and not holding_key
            and not extend(plan_goal(world, Goal(Verb.PICKUP, Kind.KEY, goal.colour)), already_run=True)
        ):
            return None
        path = navigate(world, doors, through_closed_doors=False)
        if not extend(path):
            return None
        rows, cols = world.agent_pos_N2[0] + DIRECTION_DELTAS[world.agent_dir_N[0]]
        if world.state_NHW[0, rows, cols] != DoorState.OPEN:
            extend([int(Action.TOGGLE)])
        return plan
    return None


_PASSABLE = np.zeros(256, dtype=bool)
_PASSABLE[[Kind.EMPTY, Kind.FLOOR, Kind.GOAL, Kind.DOOR]] = True
_DOOR, _LOCKED = int(Kind.DOOR), int(DoorState.LOCKED)


def _bits(mask: np.ndarray) -> int:
    """A boolean grid as a Python int, bit ``row * width + col`` per cell."""
    return int.from_bytes(np.packbits(mask.ravel(), bitorder="little").tobytes(), "little")


def is_solvable(layout: Layout) -> bool:
    """Whether every sub-goal's object can be reached: a cheap flood fill used at level generation.

    Exact for layouts without locked doors (objects never block more after a pick-up, closed doors open);
    with locked doors it falls back to the full :func:`plan`. The flood fill runs on the grid as bits of one
    Python int (a shift by 1 or by the width moves every cell at once; the wall border stops wrap-around).
    """
    kind_HW = layout.kind_HW
    if ((kind_HW == _DOOR) & (layout.state_HW == _LOCKED)).any():
        return plan(layout) is not None
    width = kind_HW.shape[1]
    passable = _bits(_PASSABLE[kind_HW])
    reached = 1 << (layout.agent_pos[0] * width + layout.agent_pos[1])
    while True:
        grown = (reached | reached << 1 | reached >> 1 | reached << width | reached >> width) & passable | reached
        if grown == reached:
            break
        reached = grown
    near = reached << 1 | reached >> 1 | reached << width | reached >> width
    for goal in layout.goals:
        target = _bits((kind_HW == goal.kind) & (layout.colour_HW == goal.colour))
        if not near & target:
            return False
    return True


def faces_first_goal(layout: Layout) -> bool:
    """Whether the agent starts already facing the first sub-goal's object (a degenerate level)."""
    if not layout.goals:
        return False
    goal = layout.goals[0]
    row, col = np.asarray(layout.agent_pos) + DIRECTION_DELTAS[layout.agent_dir]
    return bool(layout.kind_HW[row, col] == goal.kind and layout.colour_HW[row, col] == goal.colour)


def plan(layout: Layout) -> list[int] | None:
    """A full action sequence that completes every sub-goal of ``layout``, or ``None`` if none is found."""
    height, width = layout.kind_HW.shape
    world = WorldState(1, height, width)
    world.load_layout(0, layout)
    actions: list[int] = []
    for stage, goal in enumerate(layout.goals):
        if int(world.stage_N[0]) > stage:
            continue
        sub_plan = plan_goal(world, goal)
        if sub_plan is None:
            return None
        actions.extend(sub_plan)
    if int(world.stage_N[0]) != len(layout.goals):
        return None
    return actions
