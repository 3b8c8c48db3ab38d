"""A breadth-first-search planner that solves any world the generators produce.

It plans sub-goal by sub-goal with BFS over ``(row, col, heading)`` and checks each plan by running it through
the real rules (:mod:`mmrl.engine.rules`), so a returned plan is known to succeed. Closed doors on the way are
opened; locked doors are unlocked for "open" goals (the key is fetched first) and for "go to" goals behind them
(:func:`_navigate_unlocking`); "pick up" goals never route through locked doors, because picking up the key would
be a wrong pick-up. Used to reject unsolvable
levels at generation time and in tests.
"""

from __future__ import annotations

import functools
from collections import deque

import numpy as np

from mmrl.engine.constants import DIRECTION_DELTAS, PICKABLE_KINDS, Action, DoorState, Kind, Verb
from mmrl.engine.rules import step_navigation
from mmrl.engine.world import Goal, Layout, WorldState

_NO_LIMIT = 1 << 30

_PASSABLE = np.zeros(256, dtype=bool)
_PASSABLE[[Kind.EMPTY, Kind.FLOOR, Kind.GOAL, Kind.DOOR]] = True
_DOOR, _LOCKED = int(Kind.DOOR), int(DoorState.LOCKED)
_PICKABLE = np.zeros(256, dtype=bool)
_PICKABLE[list(PICKABLE_KINDS)] = True


def _bits(mask: np.ndarray) -> int:
    """A boolean grid as a Python int, bit ``row * width + col`` per cell."""
    return int.from_bytes(np.packbits(mask.ravel(), bitorder="little").tobytes(), "little")


_PASSABLE_KINDS = (int(Kind.EMPTY), int(Kind.FLOOR), int(Kind.GOAL))
_DOOR_KIND, _LOCKED_STATE, _CLOSED_STATE = int(Kind.DOOR), int(DoorState.LOCKED), int(DoorState.CLOSED)
_LEFT, _RIGHT, _FORWARD, _TOGGLE = int(Action.LEFT), int(Action.RIGHT), int(Action.FORWARD), int(Action.TOGGLE)


def navigate(world: WorldState, target_RC: np.ndarray, through_closed_doors: bool = True) -> list[int] | None:
    """Shortest action list after which the agent faces a cell where ``target_RC`` is True (BFS).

    Closed, unlocked doors on the way are opened (toggle, then forward). The path never faces a key, ball or
    box outside ``target_RC``: under ``wrong_object="fail"`` that would end the episode. With
    ``through_closed_doors=False`` closed doors are not opened (toggling another door fails an "open" goal).
    Linear time in the grid's cells: the search visits each ``(row, col, heading)`` state once, on flat lists.
    """
    height, width = world.grid_shape
    kind_HW, state_HW = world.kind_NHW[0], world.state_NHW[0]
    start_bit = 1 << (int(world.agent_pos_N2[0, 0]) * width + int(world.agent_pos_N2[0, 1]))
    reached = flood(_bits(_PASSABLE[kind_HW] & ~((kind_HW == _DOOR) & (state_HW == _LOCKED))), start_bit, width)
    if not neighbours(reached, width) & _bits(np.asarray(target_RC, dtype=bool)):
        return None  # no target next to a reachable cell: the search below would visit every state in vain
    kind = world.kind_NHW[0].ravel()
    door_state = world.state_NHW[0].ravel()
    is_door = kind == _DOOR_KIND
    # per cell: 0 blocked, 1 passable, 2 a closed door (toggle, then forward)
    passable = np.isin(kind, _PASSABLE_KINDS) | (is_door & (door_state != _LOCKED_STATE))
    closed = is_door & (door_state == _CLOSED_STATE)
    if not through_closed_doors:
        passable &= ~closed
    code = (passable.astype(np.int8) + (passable & closed)).tolist()
    target_flat = np.asarray(target_RC, dtype=bool).ravel()
    target = target_flat.tolist()
    avoid = (np.isin(kind, PICKABLE_KINDS) & ~target_flat).tolist()  # wrong objects: never face them
    fronts = _fronts(height, width)
    start = (int(world.agent_pos_N2[0, 0]) * width + int(world.agent_pos_N2[0, 1])) * 4 + int(world.agent_dir_N[0])
    parent = [-2] * (height * width * 4)  # -2 unvisited, -1 the start
    parent_step = [0] * (height * width * 4)  # 0 left, 1 right, 2 forward, 3 toggle + forward
    parent[start] = -1
    queue = deque([start])
    found = -1
    while queue:
        state = queue.popleft()
        cell, heading = divmod(state, 4)
        front = fronts[heading][cell]
        if front >= 0 and target[front]:
            found = state
            break
        cell4 = cell * 4
        for nxt, step in ((cell4 + (heading - 1) % 4, 0), (cell4 + (heading + 1) % 4, 1)):
            nxt_front = fronts[nxt % 4][cell]
            if parent[nxt] == -2 and not (nxt_front >= 0 and avoid[nxt_front]):
                parent[nxt] = state
                parent_step[nxt] = step
                queue.append(nxt)
        if front >= 0 and code[front]:
            nxt = front * 4 + heading
            ahead = fronts[heading][front]
            if parent[nxt] == -2 and not (ahead >= 0 and avoid[ahead]):
                parent[nxt] = state
                parent_step[nxt] = 3 if code[front] == 2 else 2
                queue.append(nxt)
    if found < 0:
        return None
    steps = []
    node = found
    while parent[node] != -1:
        steps.append(parent_step[node])
        node = parent[node]
    actions: list[int] = []
    for step in reversed(steps):
        actions.extend(((_LEFT,), (_RIGHT,), (_FORWARD,), (_TOGGLE, _FORWARD))[step])
    return actions


@functools.lru_cache(maxsize=16)
def _fronts(height: int, width: int) -> tuple[list[int], ...]:
    """Per heading, the flat index of the cell in front of each cell (-1 outside the grid)."""
    fronts = []
    rows, cols = np.divmod(np.arange(height * width), width)
    for heading in range(4):
        d_row, d_col = DIRECTION_DELTAS[heading]
        front_rows, front_cols = rows + int(d_row), cols + int(d_col)
        inside = (front_rows >= 0) & (front_rows < height) & (front_cols >= 0) & (front_cols < width)
        fronts.append(np.where(inside, front_rows * width + front_cols, -1).tolist())
    return tuple(fronts)


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
            still_locked = (trial.kind_NHW[0] == Kind.DOOR) & (trial.state_NHW[0] == DoorState.LOCKED)
            # only progress counts (a locked door fewer), so the loop ends after at most one pass per locked door
            if opening is not None and int(still_locked.sum()) < int(locked.sum()):
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


def neighbours(cells: int, width: int) -> int:
    """The cells 4-adjacent to ``cells`` (bit sets as from :func:`_bits`; a superset at the row ends)."""
    return cells << 1 | cells >> 1 | cells << width | cells >> width


def flood(passable: int, seed: int, width: int) -> int:
    """The cells connected to ``seed`` through ``passable`` cells (4-neighbourhood), as a bit set.

    Exact on grids with a wall border (a shift by 1 would otherwise wrap from one row's end to the next).
    """
    reached = seed
    while True:
        grown = neighbours(reached, width) & passable | reached
        if grown == reached:
            return reached
        reached = grown


def region_labels(layout: Layout, closed_doors_pass: bool = True) -> np.ndarray:
    """Connected regions (4-neighbourhood) of the cells an agent can stand on: a label per cell, -1 elsewhere.

    Locked doors separate regions; closed doors join them when ``closed_doors_pass`` (the agent can toggle).
    Linear time in the number of cells.
    """
    kind_HW, state_HW = layout.kind_HW, layout.state_HW
    height, width = kind_HW.shape
    doors = kind_HW == _DOOR
    passable_HW = _PASSABLE[kind_HW] & ~(doors & (state_HW == _LOCKED))
    if not closed_doors_pass:
        passable_HW &= ~(doors & (state_HW == int(DoorState.CLOSED)))
    passable = passable_HW.ravel().tolist()
    labels = [-1] * (height * width)
    fronts = _fronts(height, width)
    n_labels = 0
    for cell in range(height * width):
        if not passable[cell] or labels[cell] >= 0:
            continue
        labels[cell] = n_labels
        stack = [cell]
        while stack:
            current = stack.pop()
            for heading in range(4):
                neighbour = fronts[heading][current]
                if neighbour >= 0 and passable[neighbour] and labels[neighbour] < 0:
                    labels[neighbour] = n_labels
                    stack.append(neighbour)
        n_labels += 1
    return np.asarray(labels, dtype=np.int64).reshape(height, width)


def candidate_starts(
    layout: Layout, useful_HW: np.ndarray, closed_doors_pass: bool, budget: int
) -> list[tuple[int, int]]:
    """Empty start cells worth planning from, at most ``budget``: one per region first, then the others.

    Only cells whose region (closed doors opened, as the planner does) lies next to a ``useful_HW`` cell are
    kept: from any other cell no plan can reach such a cell. Regions for the "one per region" order follow
    ``closed_doors_pass`` (the level's actions); row-major order within each group, so the choice is
    deterministic. Linear time in the number of cells.
    """
    height, width = layout.kind_HW.shape
    fronts = _fronts(height, width)
    planner_labels = region_labels(layout, closed_doors_pass=True).ravel().tolist()
    useful_labels = set()
    for cell in np.flatnonzero(useful_HW).tolist():
        for heading in range(4):
            neighbour = fronts[heading][cell]
            if neighbour >= 0 and planner_labels[neighbour] >= 0:
                useful_labels.add(planner_labels[neighbour])
    action_labels = region_labels(layout, closed_doors_pass).ravel().tolist()
    firsts: list[tuple[int, int]] = []
    others: list[tuple[int, int]] = []
    seen: set[int] = set()
    for cell in np.flatnonzero(layout.kind_HW == Kind.EMPTY).tolist():
        if planner_labels[cell] not in useful_labels:
            continue
        row, col = divmod(cell, width)
        if action_labels[cell] in seen:
            others.append((row, col))
        else:
            seen.add(action_labels[cell])
            firsts.append((row, col))
    return (firsts + others)[:budget]


def is_solvable(layout: Layout, wrong_object_fails: bool = False) -> bool:
    """Whether every sub-goal's object can be reached: a cheap flood fill used at level generation.

    Exact for layouts without locked doors (objects never block more after a pick-up, closed doors open); with
    locked doors it falls back to the full :func:`plan`. With ``wrong_object_fails`` (the rules'
    ``wrong_object="fail"``) a route must also never face a wrong object, turns included:
    :func:`_reaches_goals_facing_no_wrong_object` checks that exactly for "go to" sequences and single goals,
    and :func:`plan` decides the rest (several goals with a pick-up or an "open"). The flood fill runs on the grid
    as bits of one Python int (a shift by 1 or by the width moves every cell at once; the wall border stops
    wrap-around).
    """
    kind_HW = layout.kind_HW
    if ((kind_HW == _DOOR) & (layout.state_HW == _LOCKED)).any():
        return plan(layout) is not None
    if wrong_object_fails:
        if len(layout.goals) == 1 or all(goal.verb == Verb.GOTO for goal in layout.goals):
            return _reaches_goals_facing_no_wrong_object(layout)
        return plan(layout) is not None
    width = kind_HW.shape[1]
    reached = flood(_bits(_PASSABLE[kind_HW]), 1 << (layout.agent_pos[0] * width + layout.agent_pos[1]), width)
    near = neighbours(reached, width)
    for goal in layout.goals:
        target = _bits((kind_HW == goal.kind) & (layout.colour_HW == goal.colour))
        if not near & target:
            return False
    return True


def _shift(cells: int, amount: int) -> int:
    """Every cell of a bit set moved by ``amount`` flat positions (``row * width + col``)."""
    return cells << amount if amount >= 0 else cells >> -amount


def _reaches_goals_facing_no_wrong_object(layout: Layout) -> bool:
    """Whether the sub-goals can be done in order without ever facing a wrong object (no locked doors).

    A flood fill over ``(cell, heading)`` states, one bit set per heading: a turn or a step forward is allowed
    when the cell in front afterwards holds no key, ball or box that the sub-goals so far do not name (for an
    "open" goal, the keys of its colour count as named). States facing the current goal's object end its
    stage and start the next one. An "open" stage cannot pass a closed door of another colour (toggling it
    fails). Exact for sequences of "go to" goals and for one goal of any verb; a few shifts of Python ints per
    step of the search.
    """
    kind_HW, colour_HW, state_HW = layout.kind_HW, layout.colour_HW, layout.state_HW
    width = kind_HW.shape[1]
    shifts = [int(d_row) * width + int(d_col) for d_row, d_col in DIRECTION_DELTAS]
    pickable_HW = _PICKABLE[kind_HW]
    named_HW = np.zeros(kind_HW.shape, dtype=bool)
    states = [0, 0, 0, 0]
    states[layout.agent_dir] = 1 << (layout.agent_pos[0] * width + layout.agent_pos[1])
    for goal in layout.goals:
        target_HW = (kind_HW == goal.kind) & (colour_HW == goal.colour)
        standable_HW = _PASSABLE[kind_HW]
        if goal.verb == Verb.OPEN:
            named_HW |= (kind_HW == Kind.KEY) & (colour_HW == goal.colour)
            standable_HW = standable_HW & ~((kind_HW == _DOOR) & (state_HW == _CLOSED_STATE) & ~target_HW)
        named_HW |= target_HW & pickable_HW
        wrong, target, standable = _bits(pickable_HW & ~named_HW), _bits(target_HW), _bits(standable_HW)
        allowed = [standable & ~_shift(wrong, -shift) for shift in shifts]
        facing = [_shift(target, -shift) for shift in shifts]
        while True:
            moving = [cells & ~facing[heading] for heading, cells in enumerate(states)]
            ahead = [_shift(cells, shift) for cells, shift in zip(moving, shifts, strict=True)]
            grown = [
                states[heading] | (moving[heading - 1] | moving[(heading + 1) % 4] | ahead[heading]) & allowed[heading]
                for heading in range(4)
            ]
            if grown == states:
                break
            states = grown
        states = [cells & facing[heading] for heading, cells in enumerate(states)]
        if not any(states):
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
