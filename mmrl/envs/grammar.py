"""The instruction grammar: templates with synonyms and paraphrases, the fixed vocabulary, and the parser that
reads canonical instructions from level files.

Every word any template can produce is in :data:`VOCABULARY`, which every environment exposes up front, so all
workers and all saved models agree on token ids.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from mmrl.engine.constants import COLOUR_NAMES, OBJECT_NAMES, OBJECT_PLURALS, Colour, Kind, Verb
from mmrl.engine.world import Goal
from mmrl.tokenizer import Tokenizer

#: Length L of every encoded instruction.
MISSION_LENGTH = 16

GOTO_TEMPLATES = ("go to the {obj}", "walk to the {obj}", "find the {obj}", "move to the {obj}", "head to the {obj}")
PICKUP_TEMPLATES = ("pick up the {obj}", "grab the {obj}", "take the {obj}", "fetch the {obj}")
OPEN_TEMPLATES = ("open the {colour} door",)
UNLOCK_TEMPLATES = ("open the {colour} door", "unlock the {colour} door")
SEQUENCE_TEMPLATES = ("{first}, then {second}", "{first} and then {second}", "first {first}, then {second}")
REVERSED_SEQUENCE_TEMPLATES = ("{second} after you {first}",)
COUNT_TEMPLATES = ("how many {colour} {plural} are there", "count the {colour} {plural}")
COLOUR_TEMPLATES = ("what colour is the {kind}", "what is the colour of the {kind}")
EXISTS_TEMPLATES = ("is there a {colour} {kind}", "can you see a {colour} {kind}")

#: Answer actions of question tasks, in action order.
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five")
ANSWER_WORDS: tuple[str, ...] = (*NUMBER_WORDS, *COLOUR_NAMES, "yes", "no")
ANSWER_YES = ANSWER_WORDS.index("yes")
ANSWER_NO = ANSWER_WORDS.index("no")
ANSWER_COLOUR_OFFSET = len(NUMBER_WORDS)

#: Objects instructions may name (the ones that can also be picked up).
NAMED_KINDS = (Kind.KEY, Kind.BALL, Kind.BOX)

#: (colour, kind) combinations that ``mission_split="train"`` never asks for and ``"test"`` always does:
#: one per colour, each kind twice, so every word is still seen in training.
HELD_OUT = frozenset(
    {
        (Colour.RED, Kind.KEY),
        (Colour.GREEN, Kind.BOX),
        (Colour.BLUE, Kind.BALL),
        (Colour.PURPLE, Kind.KEY),
        (Colour.YELLOW, Kind.BOX),
        (Colour.GREY, Kind.BALL),
    }
)
SPLITS = ("train", "test", "all", "paraphrase")

# ---- mission_split="paraphrase": words no other split ever uses, on the train split's layouts (zero-shot tests
# of language understanding: a model only passes if it knows the new words mean the old ones).
PARAPHRASE_GOTO_TEMPLATES = ("approach the {obj}", "walk over to the {obj}", "navigate to the {obj}")
PARAPHRASE_PICKUP_TEMPLATES = ("collect the {obj}", "retrieve the {obj}", "lift the {obj}", "get the {obj}")
#: Synonyms of each colour (in :class:`~mmrl.engine.constants.Colour` order) and of the named object kinds.
PARAPHRASE_COLOURS: tuple[tuple[str, ...], ...] = (
    ("crimson", "scarlet"),
    ("emerald", "lime"),
    ("azure", "navy"),
    ("violet", "lilac"),
    ("golden", "amber"),
    ("gray", "silver"),
)
PARAPHRASE_OBJECTS: dict[int, tuple[str, ...]] = {
    Kind.KEY: ("key",),
    Kind.BALL: ("sphere", "orb"),
    Kind.BOX: ("crate", "chest"),
}


def _template_words() -> list[str]:
    words: set[str] = set()
    templates = (
        GOTO_TEMPLATES
        + PICKUP_TEMPLATES
        + UNLOCK_TEMPLATES
        + SEQUENCE_TEMPLATES
        + REVERSED_SEQUENCE_TEMPLATES
        + COUNT_TEMPLATES
        + COLOUR_TEMPLATES
        + EXISTS_TEMPLATES
    )
    for template in templates:
        words.update(re.sub(r"\{\w+\}", " ", template).replace(",", " ").split())
    words.update(COLOUR_NAMES, OBJECT_NAMES.values(), OBJECT_PLURALS.values(), ANSWER_WORDS)
    for template in PARAPHRASE_GOTO_TEMPLATES + PARAPHRASE_PICKUP_TEMPLATES:
        words.update(re.sub(r"\{\w+\}", " ", template).split())
    for synonyms in (*PARAPHRASE_COLOURS, *PARAPHRASE_OBJECTS.values()):
        words.update(synonyms)
    return sorted(words)


#: The full, fixed vocabulary (PAD and UNK come first in the tokenizer).
VOCABULARY: tuple[str, ...] = tuple(_template_words())


def make_tokenizer() -> Tokenizer:
    """The tokenizer of every mmrl environment."""
    return Tokenizer(VOCABULARY, max_length=MISSION_LENGTH, on_overflow="error")


def combos(split: str) -> list[tuple[int, int]]:
    """The (colour, kind) combinations an instruction may name under ``split``."""
    if split not in SPLITS:
        raise ValueError(f"mission_split must be one of {SPLITS}, got {split!r}")
    every = [(int(c), int(k)) for c in Colour for k in NAMED_KINDS]
    if split == "paraphrase":
        split = "train"  # the same layouts as training; only the words differ
    if split == "all":
        return every
    held_out = {(int(c), int(k)) for c, k in HELD_OUT}
    return [combo for combo in every if (combo in held_out) == (split == "test")]


@functools.lru_cache(maxsize=1)
def longest_instructions() -> tuple[str, ...]:
    """The longest text of every template (longest colour and object names), to size render captions."""
    colour = max(COLOUR_NAMES, key=len)
    kind = max((OBJECT_NAMES[k] for k in NAMED_KINDS), key=len)
    plural = max((OBJECT_PLURALS[k] for k in NAMED_KINDS), key=len)
    goals = [t.format(obj=f"{colour} {kind}") for t in GOTO_TEMPLATES + PICKUP_TEMPLATES]
    goals += [t.format(colour=colour) for t in UNLOCK_TEMPLATES]
    longest = max(goals, key=len)
    sequences = [t.format(first=longest, second=longest) for t in SEQUENCE_TEMPLATES + REVERSED_SEQUENCE_TEMPLATES]
    questions = [t.format(colour=colour, plural=plural) for t in COUNT_TEMPLATES]
    questions += [t.format(colour=colour, kind=kind) for t in COLOUR_TEMPLATES + EXISTS_TEMPLATES]
    return tuple(goals + sequences + questions)


def object_phrase(kind: int, colour: int) -> str:
    return f"{COLOUR_NAMES[colour]} {OBJECT_NAMES[kind]}"


def choose(options: tuple[str, ...], rng: np.random.Generator) -> str:
    """One of ``options``, uniformly (faster than ``rng.choice``, which builds an array)."""
    return options[int(rng.integers(len(options)))]


def describe_goal(goal: Goal, rng: np.random.Generator, locked: bool = False, paraphrase: bool = False) -> str:
    """One paraphrase of a single sub-goal (with ``paraphrase``, in words only ``mission_split="paraphrase"`` uses,
    for go-to and pick-up goals)."""
    if paraphrase and goal.verb in (Verb.GOTO, Verb.PICKUP):
        templates = PARAPHRASE_GOTO_TEMPLATES if goal.verb == Verb.GOTO else PARAPHRASE_PICKUP_TEMPLATES
        phrase = f"{choose(PARAPHRASE_COLOURS[goal.colour], rng)} {choose(PARAPHRASE_OBJECTS[goal.kind], rng)}"
        return choose(templates, rng).format(obj=phrase)
    if goal.verb == Verb.GOTO:
        return choose(GOTO_TEMPLATES, rng).format(obj=object_phrase(goal.kind, goal.colour))
    if goal.verb == Verb.PICKUP:
        return choose(PICKUP_TEMPLATES, rng).format(obj=object_phrase(goal.kind, goal.colour))
    if goal.verb == Verb.OPEN:
        door_templates = UNLOCK_TEMPLATES if locked else OPEN_TEMPLATES
        return choose(door_templates, rng).format(colour=COLOUR_NAMES[goal.colour])
    raise ValueError(f"cannot describe a goal with verb {goal.verb!r}")


def describe_goals(goals: list[Goal], rng: np.random.Generator, locked: bool = False, paraphrase: bool = False) -> str:
    """One paraphrase of an instruction made of one or two sub-goals (in completion order)."""
    if len(goals) == 1:
        return describe_goal(goals[0], rng, locked, paraphrase)
    if len(goals) != 2:
        raise ValueError(f"instructions have one or two sub-goals, got {len(goals)}")
    first, second = describe_goal(goals[0], rng, locked, paraphrase), describe_goal(goals[1], rng, locked, paraphrase)
    templates = SEQUENCE_TEMPLATES + REVERSED_SEQUENCE_TEMPLATES
    return choose(templates, rng).format(first=first, second=second)


# ---------------------------------------------------------------------------------------------- parsing
_COLOUR_RE = "|".join(COLOUR_NAMES)
_KIND_RE = "|".join(OBJECT_NAMES[k] for k in NAMED_KINDS)
_KIND_BY_NAME = {OBJECT_NAMES[k]: int(k) for k in NAMED_KINDS}


def _verb_patterns() -> list[tuple[Verb, re.Pattern[str]]]:
    patterns = []
    for verb, templates in ((Verb.GOTO, GOTO_TEMPLATES), (Verb.PICKUP, PICKUP_TEMPLATES)):
        for template in templates:
            regex = re.escape(template).replace(r"\{obj\}", rf"(?P<colour>{_COLOUR_RE}) (?P<kind>{_KIND_RE})")
            patterns.append((verb, re.compile(f"^{regex}$")))
    for template in UNLOCK_TEMPLATES:
        regex = re.escape(template).replace(r"\{colour\}", f"(?P<colour>{_COLOUR_RE})")
        patterns.append((Verb.OPEN, re.compile(f"^{regex}$")))
    return patterns


_VERB_PATTERNS = _verb_patterns()


def parse_goal(text: str) -> Goal:
    """Parse one sub-goal such as ``"pick up the blue key"``; raises ``ValueError`` with the accepted forms."""
    normalized = " ".join(text.lower().replace(",", " ").split())
    for verb, pattern in _VERB_PATTERNS:
        match = pattern.match(normalized)
        if match:
            colour = COLOUR_NAMES.index(match["colour"])
            kind = Kind.DOOR if verb == Verb.OPEN else _KIND_BY_NAME[match["kind"]]
            return Goal(verb, int(kind), colour)
    raise ValueError(
        f"cannot read the instruction {text!r}; write e.g. 'go to the red ball', 'pick up the blue key', "
        f"'open the yellow door' (colours: {', '.join(COLOUR_NAMES)}; objects: {_KIND_RE.replace('|', ', ')})"
    )


def parse_instruction(text: str) -> list[Goal]:
    """Parse a canonical instruction of one or two sub-goals (``"X, then Y"``, ``"Y after you X"``)."""
    normalized = " ".join(text.lower().split())
    if " after you " in normalized:
        second, first = normalized.split(" after you ", 1)
        return [parse_goal(first), parse_goal(second)]
    for separator in (", then ", " and then ", " then "):
        if separator in normalized:
            first, second = normalized.split(separator, 1)
            return [parse_goal(first.removeprefix("first ")), parse_goal(second)]
    return [parse_goal(normalized)]
