"""Sequence: compositional two-part instructions."""

from __future__ import annotations

import numpy as np

from mmrl.engine.constants import Verb
from mmrl.engine.world import Goal, Layout
from mmrl.envs.goto import sample_objects
from mmrl.envs.grammar import combos, describe_goals
from mmrl.envs.grid_env import GridEnv
from mmrl.envs.task import Task, place_agent


class SequenceTask(Task):
    def __init__(self, size: int, n_distractors: int, mission_split: str, max_steps: int) -> None:
        super().__init__(size, size, max_steps, n_actions=3)
        self.n_distractors = n_distractors
        self.combos = combos(mission_split)

    def sample_layout(self, rng: np.random.Generator) -> Layout:
        layout = Layout.empty_room(self.height, self.width)
        first, second = (self.combos[i] for i in rng.permutation(len(self.combos))[:2].tolist())
        sample_objects(layout, rng, [first, second], self.n_distractors)
        place_agent(layout, rng)
        layout.goals = [Goal(Verb.GOTO, first[1], first[0]), Goal(Verb.GOTO, second[1], second[0])]
        layout.mission = describe_goals(layout.goals, rng)
        return layout


class SequenceEnv(GridEnv):
    """Go to two objects in the order the instruction gives.

    ## Description
    "go to the red ball, then the green box" in its paraphrases: "X, then Y", "X and then Y",
    "first X, then Y", and "Y after you X" (the order of the words is not the order of the sub-goals).
    The room holds both targets and ``n_distractors`` others.

    ## Action Space
    ``Discrete(3)``: 0 left, 1 right, 2 forward.

    ## Observation Space
    As :class:`~mmrl.envs.goto.GoToEnv`.

    ## Rewards
    ``1 - 0.9 * steps / max_steps`` when the second sub-goal is completed after the first, 0 otherwise.

    ## Episode End
    Terminates when both sub-goals are done in order; truncates after ``max_steps``.

    ## Arguments
    ``size``, ``n_distractors``, ``mission_split``, ``max_steps`` (default ``2 * size**2``), view options.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        size: int = 8,
        n_distractors: int = 2,
        mission_split: str = "train",
        max_steps: int | None = None,
        **kwargs,
    ) -> None:
        max_steps = 2 * size * size if max_steps is None else max_steps
        super().__init__(SequenceTask(size, n_distractors, mission_split, max_steps), **kwargs)
