"""MiniGrid/BabyAI through mmrl.wrappers (optional extra ``mmrl[minigrid]``): vocabulary coverage and PPO learning."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

pytest.importorskip("minigrid")

import gymnasium as gym

from mmrl.tokenizer import PAD_ID, UNK_ID, split_words
from mmrl.wrappers import TokenizeText, babyai_vocabulary, wrap_spec

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
    env = example.make_env("BabyAI-GoToObj-v0")
    assert set(env.observation_space.spaces) == {"image", "mission"}  # auto_wrap drops direction
    assert env.observation_space["image"].high[0, 0].tolist() == [10, 5, 3]  # state: 0-3 (direction, full view)
    assert env.observation_space["mission"].shape == (64,)
    observation, info = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert info["mission"].startswith("go to")
    replica = example.make_env("BabyAI-GoToObj-v0", wrap_spec=wrap_spec(env))
    np.testing.assert_array_equal(replica.reset(seed=0)[0]["mission"], observation["mission"])


def test_example_help_documents_every_option() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    options = re.findall(r"^  (--[a-z-]+)", result.stdout, flags=re.MULTILINE)
    assert len(options) >= 10
    for option in options:  # each option line (or the next one) carries a help text
        block = result.stdout.split(option, 1)[1].split("\n  --", 1)[0]
        assert len(block.split()) >= 3, option
    assert "pip install mmrl" not in EXAMPLE.read_text()


def test_example_without_minigrid_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    example = load_example()
    monkeypatch.setitem(sys.modules, "minigrid", None)  # import minigrid raises ImportError
    with pytest.raises(SystemExit) as raised:
        example.main(["--timesteps", "16"])
    message = str(raised.value.code)
    assert "\n" not in message and 'pip install -c constraints-cpu.txt -e ".[minigrid]"' in message


@pytest.mark.slow
def test_ppo_learns_babyai_goto_obj() -> None:
    """The example's one-line path beats a random policy by a wide margin on held-out seeds."""
    pytest.importorskip("mmrl.extractor")
    import torch

    torch.set_num_threads(1)
    example = load_example()
    level, n_episodes = "BabyAI-GoToObj-v0", 100

    start = time.perf_counter()
    model = example.train(level, total_timesteps=40_960, seed=0)
    train_seconds = time.perf_counter() - start
    spec = wrap_spec(model.get_env().envs[0])

    random_rate = example.success_rate(example.random_policy(int(model.action_space.n)), level, n_episodes)
    ppo_rate = example.success_rate(example.model_policy(model), level, n_episodes, wrap_spec=spec)
    print(f"BabyAI {level}: PPO {ppo_rate:.0%} vs random {random_rate:.0%} after 40,960 steps ({train_seconds:.0f} s)")
    assert random_rate < 0.4
    assert ppo_rate >= 0.9
