"""Codes shared by the engine, the renderer and the symbolic observations.

Object and colour codes follow MiniGrid's conventions so that symbolic images read the same way.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Kind(IntEnum):
    """What occupies a cell (first channel of a symbolic image)."""

    UNSEEN = 0
    EMPTY = 1
    WALL = 2
    FLOOR = 3
    DOOR = 4
    KEY = 5
    BALL = 6
    BOX = 7
    GOAL = 8
    LAVA = 9
    AGENT = 10


N_KINDS = len(Kind)

#: Objects the agent can pick up and carry.
PICKABLE_KINDS = (Kind.KEY, Kind.BALL, Kind.BOX)
#: Objects an instruction can name (doors are named by colour only).
OBJECT_NAMES: dict[int, str] = {Kind.KEY: "key", Kind.BALL: "ball", Kind.BOX: "box", Kind.DOOR: "door"}
OBJECT_PLURALS: dict[int, str] = {Kind.KEY: "keys", Kind.BALL: "balls", Kind.BOX: "boxes", Kind.DOOR: "doors"}


class Colour(IntEnum):
    RED = 0
    GREEN = 1
    BLUE = 2
    PURPLE = 3
    YELLOW = 4
    GREY = 5


N_COLOURS = len(Colour)
COLOUR_NAMES: tuple[str, ...] = tuple(c.name.lower() for c in Colour)
#: RGB of each colour (uint8), as drawn in the images.
COLOUR_RGB = np.array(
    [[230, 40, 40], [40, 200, 60], [50, 100, 240], [150, 70, 220], [240, 220, 40], [140, 140, 140]], dtype=np.uint8
)


class DoorState(IntEnum):
    OPEN = 0
    CLOSED = 1
    LOCKED = 2


N_STATES = len(DoorState)


class Direction(IntEnum):
    """Agent heading; ``DIRECTION_DELTAS[d]`` is the (row, col) step it faces."""

    EAST = 0
    SOUTH = 1
    WEST = 2
    NORTH = 3


#: (d_row, d_col) of one step forward for each :class:`Direction`.
DIRECTION_DELTAS = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]], dtype=np.int64)


class Action(IntEnum):
    """Navigation actions. Families use a prefix of this list: GoTo and Sequence the first 3, PickUp the first 4,
    Open all 6, fixed levels 3, 4 or 6 (see their files); VisualQuery's actions are answers instead."""

    LEFT = 0
    RIGHT = 1
    FORWARD = 2
    PICKUP = 3
    DROP = 4
    TOGGLE = 5


ACTION_NAMES: tuple[str, ...] = tuple(a.name.lower() for a in Action)


class Verb(IntEnum):
    """What a sub-goal asks for."""

    NONE = 0
    GOTO = 1
    PICKUP = 2
    OPEN = 3


#: Most sub-goals in one instruction ("X, then Y").
MAX_SUBGOALS = 2
