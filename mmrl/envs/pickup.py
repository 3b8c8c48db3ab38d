"""PickUp and Open: multi-step interaction with objects, doors and keys."""

from __future__ import annotations

import numpy as np

from mmrl.checks import check_bool, check_int
from mmrl.engine.constants import N_COLOURS, DoorState, Kind, Verb
from mmrl.engine.world import Goal, Layout
from mmrl.envs.goto import RoomTask
from mmrl.envs.grammar import describe_goals
from mmrl.envs.grid_env import GridEnv
from mmrl.envs.task import Task, place_agent, random_empty_cells


class PickUpTask(RoomTask):
    verb = Verb.PICKUP
    n_room_actions = 4


class PickUpEnv(GridEnv):
    """Pick up the named object.

    ## Description
    A room holds the target and ``n_distractors`` other keys, balls and boxes. The instruction names the
    target ("pick up the blue key", "grab the blue key", ...). Facing any other object (stepping or turning
    so that it is in front) ends the episode as a failure, as in :class:`~mmrl.envs.goto.GoToEnv`, so the
    instruction must be read and the agent must route around the distractors.

    ## Action Space
    ``Discrete(4)``: 0 left, 1 right, 2 forward, 3 pick up (the object in front).

    ## Observation Space
    As :class:`~mmrl.envs.goto.GoToEnv`.

    ## Rewards
    ``1 - 0.9 * steps / max_steps`` on success, 0 otherwise.

    ## Episode End
    Terminates when the agent picks up the target (success) or faces another object (failure); truncates after
    ``max_steps``.

    ## Arguments
    ``size``, ``n_distractors``, ``mission_split``, ``max_steps`` (default ``size**2``), and
    :class:`~mmrl.envs.grid_env.GridEnv`'s view options.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        size: int = 8,
        n_distractors: int = 3,
        mission_split: str = "train",
        max_steps: int | None = None,
        **kwargs,
    ) -> None:
        max_steps = size * size if max_steps is None else max_steps
        super().__init__(PickUpTask(size, n_distractors, mission_split, max_steps), **kwargs)


class OpenTask(Task):
    """Doors of distinct colours in the walls of a room; open the named one (with its key when locked)."""

    def __init__(self, size: int, n_doors: int, locked: bool, max_steps: int) -> None:
        check_int("size", size, 3, " (room side, walls included)")
        check_int("n_doors", n_doors, 1)
        if n_doors > N_COLOURS:
            raise ValueError(f"n_doors must be in [1, {N_COLOURS}] (doors have distinct colours), got {n_doors!r}")
        check_bool("locked", locked)
        door_slots = 4 * (size - 2)  # wall cells of the room that are not corners
        if n_doors > door_slots:
            raise ValueError(
                f"a room of size {size} has {door_slots} wall cells for doors, n_doors={n_doors} do not fit: "
                f"use n_doors <= {door_slots} or a larger size"
            )
        n_keys = min(n_doors, 2) if locked else 0
        if n_keys + 1 > (size - 2) ** 2:
            raise ValueError(
                f"a locked room of size {size} has {(size - 2) ** 2} free cell(s) but {n_keys} key(s) and the agent "
                "need more: use size >= 4"
            )
        # an outer ring of wall behind the doors keeps every door cell inside the grid
        super().__init__(size + 2, size + 2, max_steps, n_actions=6)
        self.size = size
        self.n_doors = n_doors
        self.locked = bool(locked)

    def sample_layout(self, rng: np.random.Generator) -> Layout:
        side = self.size
        layout = Layout.empty_room(side + 2, side + 2)
        layout.kind_HW[[1, side], 1 : side + 1] = Kind.WALL
        layout.kind_HW[1 : side + 1, [1, side]] = Kind.WALL
        wall_cells = [(1, c) for c in range(2, side)] + [(side, c) for c in range(2, side)]
        wall_cells += [(r, 1) for r in range(2, side)] + [(r, side) for r in range(2, side)]
        door_cells = [wall_cells[i] for i in rng.permutation(len(wall_cells))[: self.n_doors].tolist()]
        colours = rng.permutation(N_COLOURS)[: self.n_doors].tolist()
        state = DoorState.LOCKED if self.locked else DoorState.CLOSED
        for (row, col), colour in zip(door_cells, colours, strict=True):
            layout.place(row, col, Kind.DOOR, colour, state)
        target = colours[int(rng.integers(self.n_doors))]
        if self.locked:
            # the target's key and one decoy key of another door's colour
            keys = [target] + [c for c in colours if c != target][:1]
            for (row, col), colour in zip(random_empty_cells(layout, rng, len(keys)), keys, strict=True):
                layout.place(row, col, Kind.KEY, colour)
        place_agent(layout, rng)
        layout.goals = [Goal(Verb.OPEN, Kind.DOOR, target)]
        layout.mission = describe_goals(layout.goals, rng, locked=self.locked)
        return layout


class OpenEnv(GridEnv):
    """Open the named door; with ``locked=True``, first fetch the key of its colour.

    ## Description
    A room with ``n_doors`` doors of distinct colours in its walls. "open the red door": face the red door
    and toggle it. With ``locked=True`` every door is locked and the room holds the target's key and a decoy
    key; "unlock the red door" / "open the red door" needs picking up the red key, then toggling the door.

    ## Action Space
    ``Discrete(6)``: 0 left, 1 right, 2 forward, 3 pick up, 4 drop, 5 toggle.

    ## Observation Space
    As :class:`~mmrl.envs.goto.GoToEnv`.

    ## Rewards
    ``1 - 0.9 * steps / max_steps`` on success, 0 otherwise.

    ## Episode End
    Terminates when the named door is open and the agent faces it; truncates after ``max_steps``.

    ## Arguments
    ``size`` (room side, walls included; the grid adds a ring of wall behind the doors), ``n_doors``,
    ``locked``, ``max_steps`` (default ``2 * size**2``, doubled when locked), and the view options.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self, size: int = 6, n_doors: int = 2, locked: bool = False, max_steps: int | None = None, **kwargs
    ) -> None:
        max_steps = (4 if locked else 2) * size * size if max_steps is None else max_steps
        super().__init__(OpenTask(size, n_doors, locked, max_steps), **kwargs)
