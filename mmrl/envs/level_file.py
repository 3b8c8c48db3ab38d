"""Level files: a fixed map drawn as text rows, a legend of objects, and the instructions.

Format (``envs/*.level``)::

    # comment lines start with '#' followed by a space (anywhere, in any section); blank lines are skipped
    name: TwoRooms
    max_steps: 120
    map:
      #########
      #..>#.b.#
      #...D...#
      #########
    legend:
      D: door yellow closed
      b: ball blue
    missions:
      - go to the blue ball
      - open the yellow door, then go to the blue ball

Map glyphs: ``#`` wall, ``.`` empty, ``>``/``v``/``<``/``^`` the agent facing east/south/west/north (or a
``start: random`` header for a random start), any other character must be in the legend as
``kind colour [state]`` with kind in key, ball, box, door, goal, floor, lava and state (doors) in open,
closed, locked. The border must be wall. Instructions use the canonical grammar
(:func:`mmrl.envs.grammar.parse_instruction`). Each instruction is checked with the planner
(:func:`mmrl.engine.planner.plan`) when the file is read: it must be solvable from the start (from some start
with ``start: random``) with the level's actions, and not already done at a fixed start. Errors name the file
and line.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmrl.engine.constants import COLOUR_NAMES, Action, Direction, DoorState, Kind, Verb
from mmrl.engine.planner import candidate_starts, faces_first_goal, plan
from mmrl.engine.world import Goal, Layout
from mmrl.envs.grammar import parse_instruction
from mmrl.files import read_text_capped
from mmrl.limits import check_limit, get_limit, short_repr

AGENT_GLYPHS = {">": Direction.EAST, "v": Direction.SOUTH, "<": Direction.WEST, "^": Direction.NORTH}
LEGEND_KINDS = {
    "key": Kind.KEY,
    "ball": Kind.BALL,
    "box": Kind.BOX,
    "door": Kind.DOOR,
    "goal": Kind.GOAL,
    "floor": Kind.FLOOR,
    "lava": Kind.LAVA,
}
DOOR_STATES = {"open": DoorState.OPEN, "closed": DoorState.CLOSED, "locked": DoorState.LOCKED}
HEADER_KEYS = ("name", "max_steps", "start", "actions")

#: With ``start: random``, the planner runs from at most ``max(MIN_PLANNED_STARTS, PLANNED_CELLS_BUDGET // cells)``
#: starts per instruction (every start of a small map; one per region first on large ones), so reading a level
#: takes about a second at most.
MIN_PLANNED_STARTS = 8
PLANNED_CELLS_BUDGET = 400_000


class LevelFileError(ValueError):
    """A level file is malformed; the message names the file and the line."""


@dataclass
class Level:
    """A parsed level: the layout without instruction, and the instructions it may ask."""

    name: str
    path: Path
    base: Layout
    missions: list[str]
    goals: list[list[Goal]]
    max_steps: int
    random_start: bool
    n_actions: int
    door_and_object_cells: tuple[np.ndarray, np.ndarray] = field(default=(np.zeros(0), np.zeros(0)))


def parse_level(path: str | Path) -> Level:
    """Read and validate a level file; raises :class:`LevelFileError` naming file, line and problem."""
    path = Path(path)
    try:
        text = read_text_capped(
            path, get_limit("max_level_file_bytes"), "level file", "MMRL_MAX_LEVEL_FILE_BYTES", LevelFileError
        )
    except FileNotFoundError:
        raise LevelFileError(f"{path}: level file not found") from None
    except IsADirectoryError:
        raise LevelFileError(f"{path}: is a directory, not a level file") from None

    def fail(line_no: int, message: str) -> LevelFileError:
        return LevelFileError(f"{path}:{line_no}: {message}")

    header: dict[str, tuple[str, int]] = {}
    map_rows: list[tuple[str, int]] = []
    legend: dict[str, tuple[str, int]] = {}
    missions: list[tuple[str, int]] = []
    section = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        # comments and blank lines are skipped in every section (map rows never hold a space, so "# ..." is no row)
        if not stripped or stripped.startswith("# ") or stripped == "#":
            continue
        if not raw.startswith((" ", "\t")):
            key, sep, value = stripped.partition(":")
            if not sep:
                raise fail(
                    line_no,
                    f"expected 'key: value' or a section ('map:', 'legend:', 'missions:'), got {short_repr(line)}",
                )
            key = key.strip()
            if key in ("map", "legend", "missions"):
                if value.strip():
                    raise fail(line_no, f"section '{key}:' takes its content on the following indented lines")
                section = key
                continue
            if key not in HEADER_KEYS:
                raise fail(line_no, f"unknown key {key!r}; expected one of {', '.join(HEADER_KEYS)} or a section")
            header[key] = (value.strip(), line_no)
            section = None
            continue
        if section == "map":
            map_rows.append((stripped, line_no))
        elif section == "legend":
            glyph, sep, value = stripped.partition(":")
            if not sep or len(glyph.strip()) != 1:
                raise fail(line_no, f"legend entries look like 'b: ball blue', got {stripped!r}")
            legend[glyph.strip()] = (value.strip(), line_no)
        elif section == "missions":
            if not stripped.startswith("- "):
                raise fail(line_no, f"missions are listed as '- go to the red ball', got {stripped!r}")
            missions.append((stripped[2:].strip(), line_no))
        else:
            raise fail(line_no, f"indented line outside a section: {stripped!r}")

    if not map_rows:
        raise LevelFileError(f"{path}: no 'map:' section with rows")
    if not missions:
        raise LevelFileError(f"{path}: no 'missions:' section with at least one '- instruction'")
    width = len(map_rows[0][0])
    height = len(map_rows)
    try:
        check_limit("the map's side", max(height, width), "max_grid_side")
    except ValueError as exc:
        raise fail(map_rows[0][1], str(exc)) from None
    for row, line_no in map_rows:
        if len(row) != width:
            raise fail(line_no, f"map rows must all have {width} characters, this one has {len(row)}")
    if height < 3 or width < 3:
        raise fail(map_rows[0][1], f"the map must be at least 3x3, got {height}x{width}")

    layout = Layout(
        np.full((height, width), Kind.EMPTY, np.uint8),
        np.zeros((height, width), np.uint8),
        np.zeros((height, width), np.uint8),
    )
    agent = None
    for r, (row, line_no) in enumerate(map_rows):
        for c, glyph in enumerate(row):
            border = r in (0, height - 1) or c in (0, width - 1)
            if border and glyph != "#":
                raise fail(line_no, f"column {c + 1}: the map's border must be wall '#', found {glyph!r}")
            if glyph == "#":
                layout.kind_HW[r, c] = Kind.WALL
            elif glyph == ".":
                continue
            elif glyph in AGENT_GLYPHS:
                if agent is not None:
                    raise fail(line_no, f"column {c + 1}: a second agent {glyph!r}; the map has one agent")
                agent = ((r, c), AGENT_GLYPHS[glyph])
            elif glyph in legend:
                spec, spec_line = legend[glyph]
                parts = spec.split()
                if not 2 <= len(parts) <= 3 or parts[0] not in LEGEND_KINDS or parts[1] not in COLOUR_NAMES:
                    raise fail(
                        spec_line,
                        f"legend {glyph!r}: expected 'kind colour [state]' with kind in {', '.join(LEGEND_KINDS)} "
                        f"and colour in {', '.join(COLOUR_NAMES)}, got {spec!r}",
                    )
                state = DoorState.OPEN
                if len(parts) == 3:
                    if parts[0] != "door" or parts[2] not in DOOR_STATES:
                        raise fail(spec_line, f"legend {glyph!r}: only doors take a state (open, closed, locked)")
                    state = DOOR_STATES[parts[2]]
                elif parts[0] == "door":
                    state = DoorState.CLOSED
                layout.place(r, c, LEGEND_KINDS[parts[0]], COLOUR_NAMES.index(parts[1]), state)
            else:
                raise fail(line_no, f"column {c + 1}: unknown map character {glyph!r}; add it to the legend")

    name = header.get("name", (path.stem, 0))[0]
    random_start = header.get("start", ("fixed", 0))[0] == "random"
    if "start" in header and header["start"][0] not in ("random", "fixed"):
        raise fail(header["start"][1], f"start must be 'random' or 'fixed', got {header['start'][0]!r}")
    if agent is None and not random_start:
        raise LevelFileError(f"{path}: the map has no agent ('>', 'v', '<' or '^'); draw one or set 'start: random'")
    if agent is not None:
        layout.agent_pos, layout.agent_dir = agent[0], int(agent[1])

    goals = []
    for mission, line_no in missions:
        try:
            goals.append(parse_instruction(mission))
        except ValueError as exc:
            raise fail(line_no, str(exc)) from None
        for goal in goals[-1]:
            present = (layout.kind_HW == goal.kind) & (layout.colour_HW == goal.colour)
            if not present.any():
                raise fail(line_no, f"the instruction {mission!r} names an object the map does not contain")

    max_steps = _positive_int(header, "max_steps", 4 * height * width, fail)
    uses_interaction = (
        any(goal.verb != 1 for goal_list in goals for goal in goal_list)
        or ((layout.kind_HW == Kind.DOOR) & (layout.state_HW != DoorState.OPEN)).any()
    )
    n_actions = _positive_int(header, "actions", 6 if uses_interaction else 3, fail)
    if n_actions not in (3, 4, 6):
        raise fail(header["actions"][1], f"actions must be 3, 4 or 6, got {n_actions}")
    for (mission, line_no), goal_list in zip(missions, goals, strict=True):
        problem = _instruction_problem(layout, mission, goal_list, n_actions, random_start, header)
        if problem:
            raise fail(line_no, problem)
    watched = np.nonzero((layout.kind_HW != Kind.EMPTY) & (layout.kind_HW != Kind.WALL))
    return Level(
        name=name,
        path=path,
        base=layout,
        missions=[m for m, _ in missions],
        goals=goals,
        max_steps=max_steps,
        random_start=random_start,
        n_actions=n_actions,
        door_and_object_cells=(watched[0], watched[1]),
    )


#: The action an instruction's verb needs, and the action count that includes it.
_VERB_ACTIONS = {Verb.PICKUP: (Action.PICKUP, 4), Verb.OPEN: (Action.TOGGLE, 6)}


def _instruction_problem(
    layout: Layout,
    mission: str,
    goals: list[Goal],
    n_actions: int,
    random_start: bool,
    header: dict[str, tuple[str, int]],
) -> str | None:
    """Why the planner cannot complete ``goals`` on ``layout`` with ``n_actions`` actions, or ``None`` if it can."""
    actions_source = (
        f"'actions: {n_actions}' (line {header['actions'][1]})"
        if "actions" in header
        else (f"{n_actions} actions (the default when every instruction is a 'go to' and no door is closed)")
    )
    for goal in goals:
        if goal.verb in _VERB_ACTIONS and n_actions < _VERB_ACTIONS[goal.verb][1]:
            action, needed = _VERB_ACTIONS[goal.verb]
            return (
                f"the instruction {mission!r} needs the {action.name.lower()!r} action, but the level has "
                f"{actions_source}: set 'actions: {needed}' or remove the 'actions:' line"
            )
    candidate = copy.deepcopy(layout)
    candidate.goals = list(goals)
    if random_start:
        # every start whose region lies next to the first object or a locked door (from others no plan can
        # start), one per region first; at most a budget that keeps the check within about a second
        first = goals[0]
        useful_HW = ((layout.kind_HW == first.kind) & (layout.colour_HW == first.colour)) | (
            (layout.kind_HW == Kind.DOOR) & (layout.state_HW == DoorState.LOCKED)
        )
        budget = max(MIN_PLANNED_STARTS, PLANNED_CELLS_BUDGET // layout.kind_HW.size)
        starts = candidate_starts(layout, useful_HW, n_actions >= _VERB_ACTIONS[Verb.OPEN][1], budget)
    else:
        starts = [(int(layout.agent_pos[0]), int(layout.agent_pos[1]))]
        if faces_first_goal(candidate):
            return (
                f"the agent starts facing the object of {mission!r}: the instruction is met at the start, and levels "
                "that start solved are redrawn, so it would never be asked; turn the agent ('>', 'v', '<', '^' "
                "face east, south, west, north) or set 'start: random'"
            )
    too_few_actions = None
    for start in starts:
        candidate.agent_pos = start
        if random_start:
            headings = [d for d in range(len(Direction)) if not faces_first_goal(_with_heading(candidate, d))]
            if not headings:
                continue
            candidate.agent_dir = headings[0]
        solution = plan(candidate)
        if solution is None:
            continue
        if not solution or max(solution) < n_actions:
            return None
        too_few_actions = Action(max(solution)).name.lower()
    if too_few_actions is not None:
        return (
            f"the planner's solution of {mission!r} needs the {too_few_actions!r} action (e.g. to open a closed "
            f"door), but the level has {actions_source}: set 'actions: 6'"
        )
    where = "from any start cell" if random_start else "from the agent's start"
    locked = bool(((layout.kind_HW == Kind.DOOR) & (layout.state_HW == DoorState.LOCKED)).any())
    note = (
        " (the planner does not route 'pick up' instructions through locked doors: picking up the key would be a "
        "wrong pick-up)"
        if locked and any(goal.verb == Verb.PICKUP for goal in goals)
        else ""
    )
    return (
        f"the instruction {mission!r} cannot be completed {where}: walls or locked doors whose key is out of reach "
        f"cut its object off{note}; change the map or remove the instruction"
    )


def _with_heading(layout: Layout, heading: int) -> Layout:
    layout.agent_dir = heading
    return layout


def _positive_int(header: dict[str, tuple[str, int]], key: str, default: int, fail) -> int:
    if key not in header:
        return default
    value, line_no = header[key]
    try:
        number = int(value)
    except ValueError:
        raise fail(line_no, f"{key} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise fail(line_no, f"{key} must be a positive integer, got {number}")
    return number
