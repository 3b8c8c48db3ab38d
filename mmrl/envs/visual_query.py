"""VisualQuery: one-step questions about a rendered scene, answered by a discrete action."""

from __future__ import annotations

import numpy as np

from mmrl.checks import check_int
from mmrl.engine.constants import COLOUR_NAMES, N_COLOURS, OBJECT_NAMES, OBJECT_PLURALS
from mmrl.engine.world import Layout
from mmrl.envs.grammar import (
    ANSWER_COLOUR_OFFSET,
    ANSWER_NO,
    ANSWER_WORDS,
    ANSWER_YES,
    COLOUR_TEMPLATES,
    COUNT_TEMPLATES,
    EXISTS_TEMPLATES,
    NAMED_KINDS,
    NUMBER_WORDS,
    choose,
    combos,
)
from mmrl.envs.grid_env import GridEnv
from mmrl.envs.task import Task, random_empty_cells

QUESTION_TYPES = ("count", "colour", "exists")


class VisualQueryTask(Task):
    def __init__(self, size: int, n_objects: int, questions: tuple[str, ...], mission_split: str) -> None:
        super().__init__(size, size, max_steps=1, n_actions=len(ANSWER_WORDS), is_question=True)
        unknown = set(questions) - set(QUESTION_TYPES)
        if not questions or unknown:
            raise ValueError(f"questions must be a non-empty subset of {QUESTION_TYPES}, got {questions!r}")
        check_int("n_objects", n_objects, 1, " (a colour question needs the object it asks about)")
        if (size - 2) ** 2 < n_objects + 1:
            raise ValueError(
                f"a {size}x{size} scene has {(size - 2) ** 2} free cells and cannot hold {n_objects} objects: "
                f"use n_objects <= {(size - 2) ** 2 - 1} or a larger size"
            )
        self.n_objects = n_objects
        self.questions = tuple(questions)
        self.combos = combos(mission_split)

    def sample_layout(self, rng: np.random.Generator) -> Layout:
        layout = Layout.empty_room(self.height, self.width)
        question = self.questions[int(rng.integers(len(self.questions)))]
        n = self.n_objects
        colours = rng.integers(N_COLOURS, size=n)
        kinds = np.array(NAMED_KINDS)[rng.integers(len(NAMED_KINDS), size=n)]
        if question == "colour":
            # exactly one object of the asked kind
            asked_kind = int(NAMED_KINDS[int(rng.integers(len(NAMED_KINDS)))])
            others = [int(k) for k in NAMED_KINDS if k != asked_kind]
            kinds = np.array([asked_kind] + [others[int(i)] for i in rng.integers(len(others), size=n - 1)])
            template = choose(COLOUR_TEMPLATES, rng)
            mission = template.format(kind=OBJECT_NAMES[asked_kind])
            answer = ANSWER_COLOUR_OFFSET + int(colours[0])
        else:
            colour, kind = self.combos[int(rng.integers(len(self.combos)))]
            if question == "count":
                # a uniform count in [0, min(n, 5)] of the asked combination, the rest anything else
                count = int(rng.integers(min(n, len(NUMBER_WORDS) - 1) + 1))
            else:
                count = int(rng.integers(2))
            colours[:count], kinds[:count] = colour, kind
            clash = (colours[count:] == colour) & (kinds[count:] == kind)
            colours[count:][clash] = (colour + 1 + rng.integers(N_COLOURS - 1, size=int(clash.sum()))) % N_COLOURS
            if question == "count":
                mission = choose(COUNT_TEMPLATES, rng).format(colour=COLOUR_NAMES[colour], plural=OBJECT_PLURALS[kind])
                answer = count
            else:
                mission = choose(EXISTS_TEMPLATES, rng).format(colour=COLOUR_NAMES[colour], kind=OBJECT_NAMES[kind])
                answer = ANSWER_YES if count else ANSWER_NO
        for (row, col), colour, kind in zip(random_empty_cells(layout, rng, n), colours, kinds, strict=True):
            layout.place(row, col, int(kind), int(colour))
        layout.agent_pos = (0, 0)
        layout.answer = answer
        layout.mission = mission
        return layout


class VisualQueryEnv(GridEnv):
    """Answer a question about a rendered scene in one step.

    ## Description
    A top-down scene of ``n_objects`` keys, balls and boxes in six colours, and a question: "how many blue
    balls are there" (count), "what colour is the key" (colour; the scene holds exactly one key), "is there a
    red box" (exists). Neither the image nor the question alone determines the answer.

    ## Action Space
    ``Discrete(14)``, the answers: 0-5 the numbers zero..five, 6-11 the colours red, green, blue, purple,
    yellow, grey, 12 yes, 13 no (``env.unwrapped.action_names``).

    ## Observation Space
    ``Dict(image=Box(0, 255, (8 * size, 8 * size, 3), uint8), mission=Box(0, V - 1, (16,), int64))``; the
    view is always the full scene (``view="full"``).

    ## Rewards
    1 for the correct answer, 0 otherwise.

    ## Episode End
    After one step (terminated).

    ## Arguments
    ``size`` (scene side, walls included, default 7), ``n_objects`` (default 6), ``questions`` (a subset of
    ``("count", "colour", "exists")``), ``mission_split`` (held-out colour/kind pairs for count and exists
    questions), ``max_steps`` (accepted for a uniform interface; every episode is one step), and the image
    options.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self,
        size: int = 7,
        n_objects: int = 6,
        questions: tuple[str, ...] | list[str] = QUESTION_TYPES,
        mission_split: str = "train",
        max_steps: int | None = None,
        **kwargs,
    ) -> None:
        if kwargs.setdefault("view", "full") != "full":
            raise ValueError("VisualQuery scenes are always seen whole: view must be 'full'")
        if isinstance(questions, str):
            raise TypeError(
                f"questions must be a list or tuple of question types from {QUESTION_TYPES}, got the str "
                f"{questions!r}: write questions=[{questions!r}]"
            )
        if max_steps is not None:
            check_int("max_steps", max_steps, 1, " (questions end after one step whatever max_steps is)")
        super().__init__(VisualQueryTask(size, n_objects, tuple(questions), mission_split), **kwargs)
