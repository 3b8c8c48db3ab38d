"""The episode contract shared by every construction path, and constructor argument checks."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import DummyVecEnv

import mmrl
from mmrl.engine.view import CAPTION_MARGIN, caption, text_width, wrap_caption
from mmrl.envs import ENTRIES
from mmrl.tokenizer import Tokenizer

TURN_RIGHT = 1  # never reaches anything: every episode runs to the time limit


def single_episode_length(env: gym.Env) -> tuple[int, dict]:
    env.reset(seed=0)
    for t in range(1, 10_000):
        _, _, terminated, truncated, info = env.step(TURN_RIGHT)
        if terminated or truncated:
            return t, info
    raise AssertionError("episode never ended")


def sb3_episode_length(venv) -> tuple[int, dict]:
    venv.reset()
    for t in range(1, 10_000):
        _, _, dones, infos = venv.step(np.array([TURN_RIGHT]))
        if dones[0]:
            return t, infos[0]
    raise AssertionError("episode never ended")


def gym_vector_episode_length(venv) -> int:
    venv.reset(seed=0)
    for t in range(1, 10_000):
        _, _, terminated, truncated, info = venv.step(np.array([TURN_RIGHT]))
        if terminated[0] or truncated[0]:
            assert "is_success" in info
            return t
    raise AssertionError("episode never ended")


@pytest.mark.parametrize("env_id", ["mmrl/GoTo-v0", "mmrl/Level-Corridor-v0"])
def test_max_steps_override_gives_the_same_length_on_every_path(env_id: str) -> None:
    length, info = single_episode_length(gym.make(env_id, max_steps=200))
    assert length == 200 and info["is_success"] is False
    assert gym_vector_episode_length(gym.make_vec(env_id, 1, max_steps=200)) == 200
    assert gym_vector_episode_length(gym.make_vec(env_id, 1, max_episode_steps=10)) == 10
    for vec_env_cls in (None, DummyVecEnv):
        venv = mmrl.make_vec_env(env_id, 1, seed=0, env_kwargs={"max_steps": 200}, vec_env_cls=vec_env_cls)
        length, info = sb3_episode_length(venv)
        assert length == 200 and info["is_success"] is False and info["TimeLimit.truncated"]


def test_max_episode_steps_and_max_steps_must_agree() -> None:
    assert gym_vector_episode_length(gym.make_vec("mmrl/GoTo-v0", 1, max_steps=12, max_episode_steps=12)) == 12
    with pytest.raises(ValueError, match="max_steps=20 and max_episode_steps=10"):
        gym.make_vec("mmrl/GoTo-v0", 1, max_steps=20, max_episode_steps=10)
    for vec_env_cls in (None, DummyVecEnv):  # the batched path and SB3's give the same length
        venv = mmrl.make_vec_env(
            "mmrl/GoTo-v0", 1, seed=0, env_kwargs={"max_episode_steps": 70}, vec_env_cls=vec_env_cls
        )
        assert sb3_episode_length(venv)[0] == 70


def test_registered_envs_have_no_gymnasium_time_limit_and_catalogue_matches() -> None:
    for entry in ENTRIES:
        spec = gym.spec(entry.env_id)
        assert spec.max_episode_steps is None, entry.env_id
        assert "max_steps" not in spec.kwargs
        assert gym.make(entry.env_id).unwrapped.task.max_steps == entry.max_episode_steps, entry.env_id


def test_outer_time_limit_still_reports_is_success() -> None:
    env = gym.make("mmrl/GoTo-v0", max_episode_steps=10)
    length, info = single_episode_length(env)
    assert length == 10 and info["is_success"] is False
    env.reset(seed=0)
    _, _, _, _, info = env.step(0)
    assert info["is_success"] is False  # on every step, not only the last


def test_make_vec_env_honours_or_rejects_sb3_options(tmp_path: Path) -> None:
    from mmrl.wrappers import StackImageFrames

    venv = mmrl.make_vec_env(
        "mmrl/GoTo-v0",
        2,
        seed=0,
        wrapper_class=lambda env: StackImageFrames(env, n_stack=4),
        monitor_dir=str(tmp_path),
    )
    assert venv.observation_space["image"].shape == (56, 56, 12)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.monitor.csv", "1.monitor.csv"]
    with pytest.raises(TypeError, match=r"bogus_option.*env_kwargs"):
        mmrl.make_vec_env("mmrl/GoTo-v0", 2, bogus_option=123)


def test_batched_vec_env_reports_per_world_missions() -> None:
    venv = mmrl.make_vec_env("mmrl/GoTo-v0", n_envs=3, seed=0)
    venv.reset()
    missions = [info["mission"] for info in venv.reset_infos]
    assert venv.get_attr("mission") == missions and all(missions)
    assert venv.get_attr("mission", indices=[2]) == missions[2:]
    assert venv.get_attr("action_names")[0] == ("left", "right", "forward")
    with pytest.raises(AttributeError, match=r"venv\.get_state"):
        venv.env_method("get_state")


@pytest.mark.parametrize(
    ("env_id", "kwargs", "error", "match"),
    [
        ("mmrl/GoTo-v0", {"n_distractors": -1}, ValueError, "n_distractors must be an int >= 0"),
        ("mmrl/GoTo-v0", {"n_distractors": 2.0}, TypeError, "n_distractors must be an int"),
        ("mmrl/GoTo-v0", {"size": 4, "n_distractors": 20}, ValueError, "lower n_distractors to at most 2"),
        ("mmrl/VisualQuery-Colour-v0", {"n_objects": 0}, ValueError, "n_objects must be an int >= 1"),
        ("mmrl/VisualQuery-v0", {"questions": "count"}, TypeError, r"questions=\['count'\]"),
        ("mmrl/Open-v0", {"size": 2}, ValueError, "size must be an int >= 3"),
        ("mmrl/Open-v0", {"size": 3, "n_doors": 6}, ValueError, "use n_doors <= 4"),
        ("mmrl/Open-v0", {"locked": "yes"}, TypeError, "locked must be a bool"),
        ("mmrl/GoTo-v0", {"channels_first": "no"}, TypeError, "channels_first must be a bool"),
        ("mmrl/GoTo-v0", {"tile_size": True}, TypeError, "tile_size must be an int"),
        ("mmrl/Level-Corridor-v0", {"max_steps": 0}, ValueError, "max_steps must be an int >= 1"),
        ("mmrl/GoTo-v0", {"max_steps": True}, TypeError, "max_steps must be an int"),
        ("mmrl/Level-v0", {"level": 123}, TypeError, "built-in level name"),
    ],
)
def test_bad_constructor_arguments_fail_at_construction(env_id, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        gym.make(env_id, **kwargs)  # no reset needed: the constructor checks


def test_explicit_max_steps_is_used_even_when_falsy_defaults_exist() -> None:
    assert gym.make("mmrl/Level-Corridor-v0", max_steps=3).unwrapped.task.max_steps == 3


def test_vector_reset_accepts_numpy_int_seed() -> None:
    venv = gym.make_vec("mmrl/GoTo-v0", num_envs=2)
    first = venv.reset(seed=np.int64(3))[1]["mission"]
    assert list(first) == list(venv.reset(seed=3)[1]["mission"])
    with pytest.raises(ValueError, match="expected 2 seeds"):
        venv.reset(seed=[1])


def test_tokenizer_decode_rejects_ids_outside_the_vocabulary() -> None:
    tokenizer = Tokenizer(["go", "to", "red", "ball"], max_length=4)
    assert tokenizer.decode(np.array([2, 3, 0, 0])) == "go to"
    assert tokenizer.decode(np.array([2.0, 3.0, 0.0, 0.0])) == "go to"
    for bad in ([-1, 2, 0, 0], [9, 0, 0, 0]):
        with pytest.raises(ValueError, match=r"outside this tokenizer's ids \[0, 5\]"):
            tokenizer.decode(np.array(bad))
    with pytest.raises(TypeError, match="integers"):
        tokenizer.decode(np.array([2.5, 0, 0, 0]))


def test_render_wraps_long_instructions_instead_of_cutting_them() -> None:
    env = gym.make("mmrl/Sequence-5x5-v0", render_mode="rgb_array")
    _, info = env.reset(seed=0)
    frame = env.render()
    width = frame.shape[1]
    mission = info["mission"]
    assert text_width(mission) + 2 * CAPTION_MARGIN > width  # one line would be cut off
    lines = wrap_caption([mission], width)
    assert len(lines) > 1 and " ".join(lines) == mission
    assert all(text_width(line) + 2 * CAPTION_MARGIN <= width for line in lines)
    one_line = caption(np.zeros((8, width, 3), np.uint8), ["go"], wrap=True)
    assert caption(np.zeros((8, width, 3), np.uint8), [mission], wrap=True).shape[0] > one_line.shape[0]
    # frames keep one size from episode to episode (videos need it)
    assert {env.reset(seed=seed) and env.render().shape for seed in range(10)} == {frame.shape}


def test_wrap_caption_splits_a_word_wider_than_the_frame() -> None:
    lines = wrap_caption(["a" * 40], 60)
    assert "".join(lines) == "a" * 40
    assert all(text_width(line) + 2 * CAPTION_MARGIN <= 60 for line in lines)


def test_random_policy_benchmark_counts_one_episode_per_world() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        from random_policy import random_success
    finally:
        sys.path.pop(0)
    episodes = 40
    venv = mmrl.make_vec_env("mmrl/GoTo-5x5-v0", n_envs=episodes, seed=1000)
    venv.reset()
    rng = np.random.default_rng(0)
    first: list[bool | None] = [None] * episodes
    while any(outcome is None for outcome in first):
        _, _, dones, infos = venv.step(rng.integers(venv.action_space.n, size=episodes))
        for i in np.flatnonzero(dones):
            if first[i] is None:
                first[i] = infos[i]["is_success"]
    assert random_success("mmrl/GoTo-5x5-v0", episodes) == pytest.approx(np.mean(first))
