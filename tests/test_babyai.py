"""MiniGrid/BabyAI through mmrl.wrappers (optional extra ``mmrl[minigrid]``): vocabulary coverage and PPO learning."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("minigrid")

import gymnasium as gym

from mmrl.tokenizer import PAD_ID, UNK_ID, split_words
from mmrl.wrappers import TokenizeText, babyai_vocabulary

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "babyai_ppo.py"
SKIPPED_ENV_PREFIXES = ("MiniGrid-WFC",)  # need the imageio extra


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("babyai_ppo_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def registered(prefix: str) -> list[str]:
    return [
        env_id for env_id in gym.registry if env_id.startswith(prefix) and not env_id.startswith(SKIPPED_ENV_PREFIXES)
    ]


def test_babyai_vocabulary_covers_every_level() -> None:
    vocabulary = set(babyai_vocabulary())
    for env_id in registered("BabyAI-"):
        env = TokenizeText(gym.make(env_id))
        assert env.vocabulary_source == "babyai"
        assert env.tokenizer.words == tuple(babyai_vocabulary())
        for seed in range(2):
            observation, info = env.reset(seed=seed)
            words = split_words(info["mission"])
            assert set(words) <= vocabulary, (env_id, info["mission"])
            assert len(words) <= env.tokenizer.max_length
            assert env.observation_space.contains(observation)
            assert UNK_ID not in observation["mission"].tolist()
            assert int((observation["mission"] != PAD_ID).sum()) == len(words)


@pytest.mark.filterwarnings("ignore:.*is out of date:DeprecationWarning")
def test_minigrid_missions_are_enumerated_without_unknown_words() -> None:
    for env_id in registered("MiniGrid-"):
        env = TokenizeText(gym.make(env_id))
        assert env.vocabulary_source == "mission_space"
        observation, info = env.reset(seed=0)
        assert env.observation_space.contains(observation)
        assert UNK_ID not in observation["mission"].tolist(), (env_id, info["mission"])
        assert int((observation["mission"] != PAD_ID).sum()) == len(split_words(info["mission"]))


def test_example_env_spaces() -> None:
    example = load_example()
    env = example.make_babyai_env("BabyAI-GoToObj-v0")
    assert set(env.observation_space.spaces) == {"image", "mission"}
    assert env.observation_space["image"].high[0, 0].tolist() == [10, 5, 3]  # state: 0-3 (direction, full view)
    assert env.observation_space["mission"].shape == (16,)
    observation, info = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert info["mission"].startswith("go to")
    replica = example.make_babyai_env("BabyAI-GoToObj-v0", tokenizer_config=env.tokenizer.to_config())
    np.testing.assert_array_equal(replica.reset(seed=0)[0]["mission"], observation["mission"])
    with_direction = example.make_babyai_env("BabyAI-GoToObj-v0", keep_direction=True)
    assert set(with_direction.observation_space.spaces) == {"direction", "image", "mission"}


@pytest.mark.slow
def test_ppo_learns_babyai_goto_obj() -> None:
    """PPO + mmrl's extractor beats a random policy by a wide margin on held-out seeds (about 70 s on 2 cores)."""
    pytest.importorskip("mmrl.extractor")
    import torch

    torch.set_num_threads(1)
    example = load_example()
    level, n_episodes = "BabyAI-GoToObj-v0", 100

    start = time.perf_counter()
    model = example.train(level, total_timesteps=60_000, seed=0, n_envs=8)
    train_seconds = time.perf_counter() - start
    tokenizer_config = model.get_env().get_attr("tokenizer")[0].to_config()

    random_rate = example.success_rate(example.random_policy(int(model.action_space.n)), level, n_episodes)
    ppo_rate = example.success_rate(example.model_policy(model), level, n_episodes, tokenizer_config=tokenizer_config)
    print(f"BabyAI {level}: PPO {ppo_rate:.0%} vs random {random_rate:.0%} after 60k steps ({train_seconds:.0f} s)")
    # Seeds 0-6 reached 78-100% (random: 21%) while tuning; the test runs seed 0.
    assert random_rate < 0.4
    assert ppo_rate >= max(0.6, random_rate + 0.3)
