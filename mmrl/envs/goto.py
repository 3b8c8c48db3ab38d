"""GoTo: walk up to the named object among distractors."""

from __future__ import annotations

import numpy as np

from mmrl.checks import check_int
from mmrl.engine.constants import N_COLOURS, Verb
from mmrl.engine.world import Goal, Layout
from mmrl.envs.grammar import NAMED_KINDS, combos, describe_goals
from mmrl.envs.grid_env import GridEnv
from mmrl.envs.task import N_DIRECTIONS, Task, random_empty_cells

_ALL_COMBOS = [(c, int(k)) for c in range(N_COLOURS) for k in NAMED_KINDS]


def sample_objects(
    layout: Layout,
    rng: np.random.Generator,
    targets: list[tuple[int, int]],
    n_distractors: int,
    pool: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """Place the target (colour, kind) objects, ``n_distractors`` objects of other combinations and the agent
    (random cell and heading; one draw of empty cells for all of them).

    Distractors are drawn from ``pool`` (default: every combination) and never repeat a target's combination, so
    every instruction names exactly one object; they have distinct combinations while the pool has enough (a
    repeated one would give a distractor away). Drawing them from the instruction split's own combinations keeps
    the scene from telling which object is the target (a held-out combination seen in a training scene would
    always be a distractor).
    """
    taken = set(targets)
    others = [combo for combo in (_ALL_COMBOS if pool is None else pool) if combo not in taken]
    if n_distractors and not others:
        raise ValueError("no object combination is left for the distractors: use a larger mission split")
    # distinct combinations while there are enough: a repeated one would give a distractor away
    draw = rng.permutation(len(others))[:n_distractors] if n_distractors <= len(others) else None
    if draw is None:
        draw = rng.integers(len(others), size=n_distractors)
    picks = [others[i] for i in draw.tolist()]
    objects = list(targets) + picks
    *cells, agent_cell = random_empty_cells(layout, rng, len(objects) + 1)
    for (row, col), (colour, kind) in zip(cells, objects, strict=True):
        layout.place(row, col, kind, colour)
    layout.agent_pos = agent_cell
    layout.agent_dir = int(rng.integers(N_DIRECTIONS))
    return objects


def _smallest_room(cells: int) -> int:
    """The smallest room side (walls included) whose floor has at least ``cells`` cells."""
    return 2 + int(np.ceil(np.sqrt(cells)))


class RoomTask(Task):
    """A square room with named target objects and distractors; subclasses set the verb and the action count.

    Args:
        size: Room side, walls included.
        n_distractors: Objects besides the targets.
        mission_split: ``"train"``, ``"test"`` or ``"all"`` (see :func:`~mmrl.envs.grammar.combos`).
        max_steps: Episode length limit.
        wrong_object: ``"fail"`` or ``"continue"`` (see :class:`~mmrl.envs.task.Task`).
    """

    verb: Verb = Verb.GOTO
    n_room_actions: int = 3
    n_targets: int = 1

    def __init__(
        self, size: int, n_distractors: int, mission_split: str, max_steps: int, wrong_object: str = "fail"
    ) -> None:
        check_int("size", size, 3)
        check_int("n_distractors", n_distractors, 0)
        super().__init__(size, size, max_steps, n_actions=self.n_room_actions, wrong_object=wrong_object)
        free_cells = (size - 2) ** 2
        needed = self.n_targets + n_distractors + 1  # targets, distractors and the agent
        if needed > free_cells:
            raise ValueError(
                f"a room of size {size} has {free_cells} free cells but {self.n_targets} target(s), "
                f"{n_distractors} distractor(s) and the agent need {needed}: lower n_distractors to at most "
                f"{free_cells - self.n_targets - 1} or use size >= {_smallest_room(needed)}"
            )
        self.n_distractors = int(n_distractors)
        self.combos = combos(mission_split)
        self.paraphrase = mission_split == "paraphrase"  # unseen words for the same layouts (grammar.py)

    def sample_layout(self, rng: np.random.Generator) -> Layout:
        layout = Layout.empty_room(self.height, self.width)
        targets = [self.combos[i] for i in rng.permutation(len(self.combos))[: self.n_targets].tolist()]
        sample_objects(layout, rng, targets, self.n_distractors, self.combos)
        layout.goals = [Goal(self.verb, kind, colour) for colour, kind in targets]
        layout.mission = describe_goals(layout.goals, rng, paraphrase=self.paraphrase)
        return layout


class GoToTask(RoomTask):
    verb = Verb.GOTO


class GoToEnv(GridEnv):
    """Go to the named object.

    ## Description
    A square room (walls included in ``size``) holds one target object and ``n_distractors`` others (keys,
    balls and boxes in six colours; distractors are drawn from the same ``mission_split`` combinations as
    targets, so the scene alone does not tell which object is named). The instruction names the target by colour
    and kind, in one of several paraphrases ("go to the red ball", "find the red ball", "walk to ...").

    ## Action Space
    ``Discrete(3)``: 0 turn left, 1 turn right, 2 move forward.

    ## Observation Space
    ``Dict(image=Box(0, 255, (56, 56, 3), uint8), mission=Box(0, V - 1, (16,), int64))`` by default: the
    agent's egocentric 7 x 7 view (8-pixel tiles) and the instruction's token ids (PAD = 0, UNK = 1). See
    :class:`~mmrl.envs.grid_env.GridEnv` for the view and image options.

    ## Rewards
    ``1 - 0.9 * steps / max_steps`` on success, 0 otherwise.

    ## Episode End
    Terminates when the agent faces the target (the cell in front holds it): success. Also terminates, as a
    failure, when the agent faces any other object (after an action: turning towards it is enough), so the
    first object the agent faces decides the episode and a policy that ignores the instruction succeeds with
    probability at most ``1 / (1 + n_distractors)``. Truncates after ``max_steps``.

    ## Arguments
    ``size`` (room side, walls included), ``n_distractors``, ``mission_split`` (``"train"``, ``"test"`` or
    ``"all"``: ``"train"`` never names the held-out colour/kind pairs that ``"test"`` always names),
    ``max_steps`` (default ``size**2``), ``wrong_object`` (``"fail"``, the default, as above; ``"continue"``:
    facing another object does nothing, so visiting every object in turn also succeeds), plus
    :class:`~mmrl.envs.grid_env.GridEnv`'s view options.

    ## Version History
    * v0: initial version; facing a wrong object ends the episode as a failure (``wrong_object="fail"``).
    """

    def __init__(
        self,
        size: int = 8,
        n_distractors: int = 3,
        mission_split: str = "train",
        max_steps: int | None = None,
        wrong_object: str = "fail",
        **kwargs,
    ) -> None:
        max_steps = size * size if max_steps is None else max_steps
        super().__init__(GoToTask(size, n_distractors, mission_split, max_steps, wrong_object), **kwargs)
