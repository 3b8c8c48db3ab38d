"""Sequence: compositional two-part instructions."""

from __future__ import annotations

from mmrl.engine.constants import Verb
from mmrl.envs.goto import RoomTask
from mmrl.envs.grid_env import GridEnv


class SequenceTask(RoomTask):
    verb = Verb.GOTO
    n_targets = 2


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
    Terminates when both sub-goals are done in order: success. Also terminates, as a failure, when the agent
    faces (after an action) an object out of order: a distractor, or the second target before the first (facing
    the first target again after it is done is allowed). An instruction-blind policy that goes to the two
    objects it picks succeeds with probability at most ``1 / (k * (k - 1))`` for ``k = 2 + n_distractors``
    objects (0.5 with no distractor: the order is a coin flip). Truncates after ``max_steps``.

    The task needs memory: the egocentric view does not show whether the first target has been reached, so a
    reactive policy stays near the coin flip. Either train a recurrent one (``mmrl train --algo recurrent_ppo``)
    or show the progress: with ``show_progress=True`` the agent's own cell shows the sub-goals done (see
    :class:`~mmrl.envs.grid_env.GridEnv`), and the PPO and DQN presets turn it on for
    ``mmrl/Sequence-5x5-v0``. Figures in ``benchmarks/RESULTS.md``.

    ## Arguments
    ``size``, ``n_distractors``, ``mission_split``, ``max_steps`` (default ``2 * size**2``), ``wrong_object``
    (``"fail"``, the default, as above; ``"continue"``: wrong objects do nothing, so visiting every object in
    every order also succeeds), view options (``show_progress`` among them).

    ## Version History
    * v0: initial version; an object out of order ends the episode as a failure (``wrong_object="fail"``).
    """

    def __init__(
        self,
        size: int = 8,
        n_distractors: int = 2,
        mission_split: str = "train",
        max_steps: int | None = None,
        wrong_object: str = "fail",
        **kwargs,
    ) -> None:
        max_steps = 2 * size * size if max_steps is None else max_steps
        super().__init__(SequenceTask(size, n_distractors, mission_split, max_steps, wrong_object), **kwargs)
