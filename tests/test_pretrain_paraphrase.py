"""``mission_split="paraphrase"``: instructions in words no other split uses, on the training split's layouts."""

from __future__ import annotations

import gymnasium as gym
import pytest

import mmrl  # noqa: F401  (registers the envs)
from mmrl.engine.constants import COLOUR_NAMES
from mmrl.envs.grammar import (
    PARAPHRASE_COLOURS,
    PARAPHRASE_GOTO_TEMPLATES,
    PARAPHRASE_OBJECTS,
    PARAPHRASE_PICKUP_TEMPLATES,
    VOCABULARY,
    combos,
)
from mmrl.tokenizer import UNK_ID


def _paraphrase_words() -> set[str]:
    words = {word for template in PARAPHRASE_GOTO_TEMPLATES + PARAPHRASE_PICKUP_TEMPLATES for word in template.split()}
    words |= {word for synonyms in (*PARAPHRASE_COLOURS, *PARAPHRASE_OBJECTS.values()) for word in synonyms}
    return words - {"{obj}", "the", "to", "walk", "key"}


@pytest.mark.parametrize("env_id", ["mmrl/GoTo-5x5-v0", "mmrl/PickUp-5x5-v0", "mmrl/GoTo-v0"])
def test_paraphrase_words_are_new_and_in_the_vocabulary(env_id: str) -> None:
    new_words = _paraphrase_words()
    assert new_words <= set(VOCABULARY)
    for split in ("train", "test", "all"):
        env = gym.make(env_id, mission_split=split)
        for seed in range(60):
            _, info = env.reset(seed=seed)
            assert not set(info["mission"].split()) & new_words, (split, info["mission"])
    env = gym.make(env_id, mission_split="paraphrase")
    train_targets = set(combos("train"))
    for seed in range(60):
        observation, info = env.reset(seed=seed)
        words = info["mission"].split()
        assert set(words) & new_words and not set(words) & set(COLOUR_NAMES), info["mission"]
        assert UNK_ID not in observation["mission"]  # every new word has its own id
        goal = env.unwrapped.batch.world.layout(0).goals[0]
        assert (goal.colour, goal.kind) in train_targets
        assert env.unwrapped.tokenizer.decode(observation["mission"]) == info["mission"]
