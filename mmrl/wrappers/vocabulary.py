"""Finding text observations and the vocabulary an environment speaks, without importing the environment's package.

Text detection (:func:`is_text_space`, :func:`find_text_keys`) accepts Gymnasium ``spaces.Text``, MiniGrid/BabyAI's
``MissionSpace`` (recognised by class name, so MiniGrid need not be installed), spaces whose ``dtype`` is a numpy
string type, and any other space whose ``sample()`` is a ``str``.

Vocabulary discovery (:func:`vocabulary_from_env`) tries, in order:

1. what the environment declares, looked up through the wrapper chain down to ``env.unwrapped``: a ``tokenizer``
   attribute that is a :class:`~mmrl.tokenizer.Tokenizer` (mmrl's own environments have one), else a ``vocabulary``
   attribute (a list of words or a Tokenizer);
2. BabyAI levels: :func:`babyai_vocabulary`, i.e. MiniGrid's colour names, the object types and relative locations
   BabyAI's verifier may describe, and the fixed words of BabyAI's instruction grammar ("go to", "pick up", "put ...
   next to", "open", "then", "after you", "and", "in front of you", ...);
3. MiniGrid ``MissionSpace`` with placeholders: the words of the missions generated from the placeholder lists
   (every combination when there are at most :data:`MAX_ENUMERATED_MISSIONS`, otherwise each placeholder value in
   turn with the others fixed);
4. nothing known: ``None``, and the caller falls back to the hashing tokenizer.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mmrl.tokenizer import Tokenizer, split_words

MAX_ENUMERATED_MISSIONS = 10_000
"""Above this many placeholder combinations a ``MissionSpace`` is not enumerated exhaustively."""

BABYAI_MAX_LENGTH = 64
"""Default token length for BabyAI: the longest instruction the grammar can produce (two ``and``-joined pairs of
``put ... in front of you next to ... in front of you`` joined by ``after you``) has 64 words. Pass a smaller
``max_length`` for simple levels (``GoTo*`` missions have at most 10 words)."""

# Fixed words of BabyAI's instruction grammar (verbs, articles, connectives, location phrases). Colours, object
# types and location names are read from MiniGrid when it is installed; the lists below are the fallback.
_BABYAI_GRAMMAR_WORDS = (
    "go", "to", "pick", "up", "open", "put", "next",
    "the", "a", "object",
    "then", "after", "you", "and",
    "in", "front", "of", "behind", "on", "your", "left", "right",
)  # fmt: skip
_FALLBACK_COLOR_NAMES = ("blue", "green", "grey", "purple", "red", "yellow")
_FALLBACK_OBJECT_TYPES = ("box", "ball", "key", "door")
_FALLBACK_LOCATION_NAMES = ("left", "right", "front", "behind")


@dataclass(frozen=True)
class EnvVocabulary:
    """A vocabulary discovered in an environment.

    Attributes:
        source: Where it came from: ``"declared"``, ``"babyai"`` or ``"mission_space"``.
        words: The words (PAD/UNK excluded), or ``None`` when the environment declared a full tokenizer.
        tokenizer: The tokenizer the environment declared, if it declared one.
        max_length: The longest text in words when it is known exactly or by convention, else ``None``.
    """

    source: str
    words: tuple[str, ...] | None = None
    tokenizer: Tokenizer | None = None
    max_length: int | None = None


# ---------------------------------------------------------------------------------------------------- detection
def _class_names(obj: object) -> list[str]:
    return [cls.__name__ for cls in type(obj).__mro__]


def is_mission_space(space: spaces.Space) -> bool:
    """Whether ``space`` is MiniGrid's ``MissionSpace`` (or a subclass such as BabyAI's), without importing MiniGrid."""
    return any(name.endswith("MissionSpace") for name in _class_names(space))


def is_babyai_env(env: gym.Env) -> bool:
    """Whether ``env`` (any wrapper of it) is a BabyAI level, recognised by class names only."""
    base = env.unwrapped
    if "RoomGridLevel" in _class_names(base):
        return True
    observation_space = getattr(base, "observation_space", None)
    if isinstance(observation_space, spaces.Dict):
        return any("BabyAIMissionSpace" in _class_names(sub) for sub in observation_space.spaces.values())
    return False


def is_text_space(space: spaces.Space) -> bool:
    """Whether observations from ``space`` are strings.

    True for ``spaces.Text``, MiniGrid's ``MissionSpace``, a space with a numpy string ``dtype``, or any space whose
    ``sample()`` returns a ``str`` (sampled from a copy, so the space's random state is not advanced).
    """
    if isinstance(space, spaces.Text) or is_mission_space(space):
        return True
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        return False
    if isinstance(space, (spaces.Dict, spaces.Tuple, spaces.Sequence, spaces.Graph, spaces.OneOf)):
        return False
    dtype = getattr(space, "dtype", None)
    if dtype is not None and np.dtype(dtype).kind in ("U", "S"):
        return True
    try:
        return isinstance(copy.deepcopy(space).sample(), str)
    except Exception:  # a space that cannot sample tells us nothing; the caller may name its keys explicitly
        return False


def find_text_keys(observation_space: spaces.Space) -> list[str]:
    """The top-level keys of a ``Dict`` space whose observations are text (see :func:`is_text_space`).

    Raises:
        TypeError: If ``observation_space`` is not a ``spaces.Dict``.
    """
    if not isinstance(observation_space, spaces.Dict):
        raise TypeError(f"find_text_keys needs a spaces.Dict, got {observation_space}")
    return [key for key, subspace in observation_space.spaces.items() if is_text_space(subspace)]


# ---------------------------------------------------------------------------------------------------- vocabularies
def normalize_word_list(words: Iterable[str]) -> list[str]:
    """Lower-case and split entries the way texts are split (``"Pick up"`` -> ``pick``, ``up``), keeping order.

    The order defines the ids, so an unordered ``set``/``frozenset`` (whose iteration order changes with
    ``PYTHONHASHSEED``) is sorted first.
    """
    if isinstance(words, str):
        raise TypeError("a vocabulary must be a sequence of words, not a single str")
    if isinstance(words, (set, frozenset)):
        words = sorted(words)
    out: list[str] = []
    seen: set[str] = set()
    for entry in words:
        if not isinstance(entry, str):
            raise TypeError(f"vocabulary entries must be str, got {type(entry).__name__}: {entry!r}")
        for word in split_words(entry):
            if word not in seen:
                seen.add(word)
                out.append(word)
    return out


def babyai_vocabulary() -> list[str]:
    """Every word BabyAI's instruction generator can produce.

    Colour names come from ``minigrid.core.constants.COLOR_NAMES`` and object types/locations from BabyAI's verifier
    when MiniGrid is importable (a fixed copy of MiniGrid 2.x/3.x's lists otherwise), followed by the grammar's
    fixed words. The order is fixed, so the ids are reproducible.
    """
    try:
        from minigrid.core.constants import COLOR_NAMES
        from minigrid.envs.babyai.core.verifier import LOC_NAMES, OBJ_TYPES

        colors, objects, locations = tuple(COLOR_NAMES), tuple(OBJ_TYPES), tuple(LOC_NAMES)
    except ImportError:
        colors, objects, locations = _FALLBACK_COLOR_NAMES, _FALLBACK_OBJECT_TYPES, _FALLBACK_LOCATION_NAMES
    return normalize_word_list([*colors, *objects, *locations, *_BABYAI_GRAMMAR_WORDS])


def mission_space_missions(space: spaces.Space) -> list[str]:
    """Missions a MiniGrid ``MissionSpace`` can generate: all of them, or a covering subset when there are too many.

    With placeholder lists ``P_1..P_k``, all ``|P_1| * ... * |P_k|`` combinations are generated when there are at
    most :data:`MAX_ENUMERATED_MISSIONS`; otherwise every placeholder value is tried once with the other positions
    fixed to their first value, which yields every word of a template-style mission function.
    """
    mission_func = cast(Any, space).mission_func  # MiniGrid's MissionSpace (checked by the caller)
    placeholders: Sequence[Sequence[str]] | None = getattr(space, "ordered_placeholders", None)
    if not placeholders:
        return [mission_func()]
    n_combinations = int(np.prod([len(values) for values in placeholders]))
    if n_combinations <= MAX_ENUMERATED_MISSIONS:
        return [mission_func(*combination) for combination in itertools.product(*placeholders)]
    defaults = [values[0] for values in placeholders]
    missions = []
    for position, values in enumerate(placeholders):
        for value in values:
            arguments = list(defaults)
            arguments[position] = value
            missions.append(mission_func(*arguments))
    return missions


def _declared_attribute(env: gym.Env, name: str) -> Any:
    try:
        return env.get_wrapper_attr(name)
    except AttributeError:
        return getattr(env.unwrapped, name, None)


def vocabulary_from_env(env: gym.Env, text_spaces: Mapping[str, spaces.Space] | None = None) -> EnvVocabulary | None:
    """Discover the vocabulary of ``env``'s texts (see the module docstring for the order of the attempts).

    Args:
        env: The environment (wrappers allowed).
        text_spaces: The text spaces to look at for ``MissionSpace`` placeholders; by default the text keys of the
            observation space (or the whole space when it is a text space).

    Returns:
        The vocabulary, or ``None`` when nothing is known (use hashing then).

    Raises:
        TypeError: If the environment declares a ``vocabulary`` that is neither a word list nor a Tokenizer.
    """
    declared_tokenizer = _declared_attribute(env, "tokenizer")
    if isinstance(declared_tokenizer, Tokenizer):
        return EnvVocabulary(source="declared", tokenizer=declared_tokenizer, max_length=declared_tokenizer.max_length)
    declared = _declared_attribute(env, "vocabulary")
    if declared is not None:
        if isinstance(declared, Tokenizer):
            return EnvVocabulary(source="declared", tokenizer=declared, max_length=declared.max_length)
        if isinstance(declared, (str, bytes)) or not isinstance(declared, Iterable):
            raise TypeError(
                f"env declares vocabulary={declared!r}; expected a list of words or an mmrl.tokenizer.Tokenizer"
            )
        return EnvVocabulary(source="declared", words=tuple(normalize_word_list(declared)))

    if is_babyai_env(env):
        return EnvVocabulary(source="babyai", words=tuple(babyai_vocabulary()), max_length=BABYAI_MAX_LENGTH)

    if text_spaces is None:
        observation_space = env.observation_space
        if isinstance(observation_space, spaces.Dict):
            text_spaces = {key: observation_space[key] for key in find_text_keys(observation_space)}
        elif is_text_space(observation_space):
            text_spaces = {"": observation_space}
        else:
            text_spaces = {}
    if text_spaces and all(is_mission_space(space) for space in text_spaces.values()):
        missions = [mission for space in text_spaces.values() for mission in mission_space_missions(space)]
        return EnvVocabulary(
            source="mission_space",
            words=tuple(normalize_word_list(missions)),
            max_length=max(1, *(len(split_words(mission)) for mission in missions)),
        )
    return None
