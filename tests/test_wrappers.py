"""Tests of mmrl.wrappers on toy environments defined here (fast; MiniGrid is not needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize

import mmrl
from mmrl.tokenizer import PAD_ID, UNK_ID, Tokenizer
from mmrl.wrappers import (
    ChannelOrder,
    GrayscaleImage,
    RenderToImage,
    ResizeImage,
    StackImageFrames,
    TokenizeText,
    TransposeImage,
    find_text_keys,
    is_text_space,
    normalizable_keys,
    vocabulary_from_env,
)
from mmrl.wrappers.minigrid import MiniGridSymbolicImage

MISSIONS = ("go to the red ball", "pick up the blue key", "open the green door")


# ---------------------------------------------------------------------------------------------------- toy spaces/envs
class StringChoiceSpace(spaces.Space):
    """An unusual space (not Text, no str dtype) whose samples are strings."""

    def __init__(self, choices: tuple[str, ...]) -> None:
        super().__init__()
        self.choices = choices

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return self.choices[int(self.np_random.integers(len(self.choices)))]

    def contains(self, x: Any) -> bool:
        return x in self.choices


class MissionSpace(spaces.Space):
    """Stand-in for MiniGrid's MissionSpace, detected by class name (MiniGrid is not imported)."""

    def __init__(self, mission_func: Any, ordered_placeholders: list[list[str]] | None = None) -> None:
        super().__init__()
        self.mission_func = mission_func
        self.ordered_placeholders = ordered_placeholders

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return self.mission_func(*(values[0] for values in self.ordered_placeholders or []))

    def contains(self, x: Any) -> bool:
        return isinstance(x, str)


class MissionDictEnv(gym.Env):
    """Dict(image uint8, vector float32, mission Text); the mission changes every step."""

    def __init__(self, missions: tuple[str, ...] = MISSIONS, mission_space: spaces.Space | None = None) -> None:
        self.missions = missions
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (12, 16, 3), np.uint8),
                "vector": spaces.Box(-1.0, 1.0, (3,), np.float32),
                "mission": mission_space if mission_space is not None else spaces.Text(max_length=60),
            }
        )
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> dict[str, Any]:
        image = self.np_random.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        vector = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return {"image": image, "vector": vector, "mission": self.missions[self.t % len(self.missions)]}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, Any], dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict]:
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 5, {"step": self.t}


class BareTextEnv(gym.Env):
    observation_space = spaces.Text(max_length=20)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        return "Hello, World!", {}

    def step(self, action: int) -> tuple[str, float, bool, bool, dict]:
        return "hello again", 0.0, False, False, {}


class StrKeyEnv(gym.Env):
    """A str key with a custom space and a str key declared (wrongly) as Discrete."""

    observation_space = spaces.Dict(
        {"note": StringChoiceSpace(("north", "south")), "label": spaces.Discrete(3), "x": spaces.Discrete(3)}
    )
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        return {"note": "north", "label": "Label ONE", "x": 1}, {}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        return {"note": "south", "label": "label two", "x": 2}, 0.0, False, False, {}


class DeclaredVocabularyEnv(MissionDictEnv):
    def __init__(self, vocabulary: Any) -> None:
        super().__init__()
        self.vocabulary = vocabulary


class DeclaredTokenizerEnv(MissionDictEnv):
    """Declares both, as mmrl's own environments do: the tokenizer wins (it fixes max_length and on_overflow)."""

    vocabulary = ("go", "to", "the")

    @property
    def tokenizer(self) -> Tokenizer:
        return Tokenizer(["go", "to", "the", "red", "ball"], max_length=9, on_overflow="error")


class ImageBoxEnv(gym.Env):
    """A plain Box image observation with a chosen shape/dtype/bounds; frames count up from 0."""

    def __init__(self, shape: tuple[int, ...] = (12, 16, 3), dtype: Any = np.uint8, low: Any = 0, high: Any = 255):
        self.observation_space = spaces.Box(low, high, shape, dtype)
        self.action_space = spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        sample = self.np_random.uniform(0, 1, self.observation_space.shape)
        low, high = self.observation_space.low, self.observation_space.high
        return (low + sample * (high - low)).astype(self.observation_space.dtype)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 10, {}


class RenderEnv(gym.Env):
    """A 1-D float observation; renders a (30, 40, 3) frame whose red channel holds the step count."""

    metadata = {"render_modes": ["rgb_array"]}
    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, render_mode: str | None = "rgb_array", alpha: bool = False) -> None:
        self.render_mode = render_mode
        self.alpha = alpha
        self.t: int | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        self.t += 1
        return np.full(2, 0.5, np.float32), 0.0, False, False, {}

    def render(self) -> np.ndarray:
        if self.t is None:
            raise RuntimeError("reset first")
        frame = np.zeros((30, 40, 4 if self.alpha else 3), np.uint8)
        frame[..., 0] = self.t
        return frame


class ImageDictEnv(gym.Env):
    """Dict(image (H, W, 3) uint8, chw (3, H, W) float32, vector float32, direction Discrete)."""

    observation_space = spaces.Dict(
        {
            "image": spaces.Box(0, 255, (12, 16, 3), np.uint8),
            "chw": spaces.Box(0.0, 1.0, (3, 12, 16), np.float32),
            "vector": spaces.Box(-1.0, 1.0, (3,), np.float32),
            "direction": spaces.Discrete(4),
        }
    )
    action_space = spaces.Discrete(2)

    def _obs(self) -> dict[str, Any]:
        return {
            "image": self.np_random.integers(0, 256, (12, 16, 3), dtype=np.uint8),
            "chw": self.np_random.uniform(0, 1, (3, 12, 16)).astype(np.float32),
            "vector": self.np_random.uniform(-1, 1, 3).astype(np.float32),
            "direction": int(self.np_random.integers(4)),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action: int) -> tuple[dict, float, bool, bool, dict]:
        return self._obs(), 0.0, False, False, {}


class BareTextEnvDict(gym.Env):
    observation_space = spaces.Dict({"vector": spaces.Box(0, 1, (2,)), "mission": spaces.Text(10)})
    action_space = spaces.Discrete(2)


def check_wrapped_env(env: gym.Env, n_steps: int = 6) -> None:
    """Gymnasium's env checker (space/determinism checks) plus a short rollout with every observation in its space."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    for _ in range(n_steps):
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(observation)
        if terminated or truncated:
            observation, _ = env.reset()


def token_env() -> gym.Env:
    return TokenizeText(MissionDictEnv(), vocabulary=["go", "to", "the", "red", "ball"], max_length=6)


# ---------------------------------------------------------------------------------------------------- text detection
def test_text_space_detection() -> None:
    assert is_text_space(spaces.Text(10))
    assert is_text_space(StringChoiceSpace(("a",)))
    assert is_text_space(MissionSpace(lambda: "get the ball"))
    assert not is_text_space(spaces.Discrete(3))
    assert not is_text_space(spaces.Box(0, 1, (2,)))
    assert find_text_keys(MissionDictEnv().observation_space) == ["mission"]
    assert find_text_keys(StrKeyEnv.observation_space) == ["note"]
    with pytest.raises(TypeError):
        find_text_keys(spaces.Text(3))


# ---------------------------------------------------------------------------------------------------- TokenizeText
def test_dict_env_text_key_found_and_tokenised() -> None:
    env = TokenizeText(MissionDictEnv(), vocabulary=["go", "to", "the", "red", "ball"], max_length=6)
    assert env.text_keys == ("mission",)
    assert env.observation_space["mission"] == spaces.Box(0, 6, (6,), np.int64)
    assert env.observation_space["image"] == MissionDictEnv().observation_space["image"]
    observation, info = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    assert observation["mission"].tolist() == [2, 3, 4, 5, 6, 0]
    assert info["mission"] == "go to the red ball"
    observation, _, _, _, info = env.step(0)
    assert info == {"step": 1, "mission": "pick up the blue key"}
    assert observation["mission"].tolist() == [UNK_ID, UNK_ID, 4, UNK_ID, UNK_ID, PAD_ID]
    check_wrapped_env(env)


def test_bare_text_env() -> None:
    env = TokenizeText(BareTextEnv(), vocabulary=["hello", "world"])
    assert env.text_keys == ()
    assert env.observation_space == spaces.Box(0, 3, (10,), np.int64)  # Text(max_length=20) -> at most 10 words
    observation, info = env.reset()
    assert observation[:3].tolist() == [2, 3, 0]
    assert info["mission"] == "Hello, World!"
    observation, *_, info = env.step(0)
    assert observation[:3].tolist() == [2, UNK_ID, 0]
    assert info["mission"] == "hello again"


def test_str_key_with_unusual_space() -> None:
    env = TokenizeText(StrKeyEnv(), vocabulary="hashing", max_length=4)
    assert env.text_keys == ("note",)  # found by sampling the custom space
    # A str key declared as Discrete is only tokenised when named.
    env = TokenizeText(StrKeyEnv(), keys=["note", "label"], vocabulary=["label", "one", "two", "north", "south"])
    observation, info = env.reset()
    assert env.observation_space.contains(observation)
    assert observation["label"][:3].tolist() == [2, 3, 0] and observation["note"][0] == 5
    assert info["label"] == "Label ONE" and info["note"] == "north"
    assert observation["x"] == 1
    with pytest.raises(TypeError, match="expected a str at 'x'"):
        TokenizeText(StrKeyEnv(), keys="x").reset()


def test_word_list_lowercase_punctuation_and_oov() -> None:
    env = TokenizeText(BareTextEnv(), vocabulary=["Go", "TO", "pick up", "the", "red", "ball"], max_length=8)
    assert env.vocabulary_source == "words"
    assert env.tokenizer.words == ("go", "to", "pick", "up", "the", "red", "ball")
    with pytest.warns(UserWarning, match="truncated"):
        tokens = env.observation("GO to the Red ball, then PICK-UP the purple box!")
    assert tokens.tolist() == [2, 3, 6, 7, 8, UNK_ID, 4, 5]  # truncated to 8 words (warned)
    assert env.tokenizer.decode(tokens) == "go to the red ball <unk> pick up"
    unordered = TokenizeText(BareTextEnv(), vocabulary={"red", "ball", "go"})
    assert unordered.tokenizer.words == ("ball", "go", "red")  # sets are sorted: ids do not depend on hash seeds


def test_hashing_oov_maps_to_bucket() -> None:
    env = TokenizeText(BareTextEnv(), n_buckets=50)
    assert env.vocabulary_source == "hashing"
    tokens = env.observation("zyzzyva Quokka!")
    expected = [2 + zlib.crc32(word.encode()) % 50 for word in ("zyzzyva", "quokka")]
    assert tokens[:2].tolist() == expected
    assert UNK_ID not in tokens.tolist()
    assert env.observation_space == spaces.Box(0, 51, (10,), np.int64)


def test_hashing_is_stable_across_processes() -> None:
    text = "Go to the purple box, then open the grey door behind you"
    env = TokenizeText(BareTextEnv(), vocabulary="hashing", n_buckets=97, max_length=16)
    expected = env.observation(text).tolist()
    repo_root = str(Path(mmrl.__file__).resolve().parent.parent)
    code = (
        "import json; from mmrl.tokenizer import Tokenizer; "
        f"print(json.dumps(Tokenizer(None, max_length=16, n_buckets=97).encode({text!r}).tolist()))"
    )
    for hash_seed in ("1", "4242"):
        environ = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": repo_root}
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, check=True)
        assert json.loads(result.stdout) == expected


def test_vocabulary_declared_by_env() -> None:
    env = TokenizeText(DeclaredVocabularyEnv(["Go", "to", "red", "ball"]), max_length=5)
    assert env.vocabulary_source == "declared"
    assert env.tokenizer.words == ("go", "to", "red", "ball")
    declared = Tokenizer(["open", "door"], max_length=3)
    env = TokenizeText(DeclaredVocabularyEnv(declared))
    assert env.tokenizer is declared and env.vocabulary_source == "declared"
    assert env.observation_space["mission"] == declared.space()
    # Overriding the length keeps the ids.
    longer = TokenizeText(DeclaredVocabularyEnv(declared), max_length=7).tokenizer
    assert longer.max_length == 7 and longer.words == declared.words
    with pytest.raises(TypeError, match="vocabulary"):
        TokenizeText(DeclaredVocabularyEnv(42))
    env = TokenizeText(gym.wrappers.TimeLimit(DeclaredTokenizerEnv(), 10))  # found through wrappers
    assert env.tokenizer == DeclaredTokenizerEnv().tokenizer and env.vocabulary_source == "declared"


def test_vocabulary_from_mission_space_without_minigrid() -> None:
    space = MissionSpace(lambda color, obj: f"Get the {color} {obj}.", [["red", "green"], ["ball", "key"]])
    env = TokenizeText(MissionDictEnv(missions=("get the green key", "get the red ball"), mission_space=space))
    assert env.vocabulary_source == "mission_space"
    assert set(env.tokenizer.words) == {"get", "the", "red", "green", "ball", "key"}
    assert env.tokenizer.max_length == 4  # the longest mission
    observation, _ = env.reset()
    assert UNK_ID not in observation["mission"].tolist() and PAD_ID not in observation["mission"].tolist()
    found = vocabulary_from_env(env.env)
    assert found is not None and found.source == "mission_space"


def test_tokenizer_and_config_round_trip() -> None:
    trained = TokenizeText(MissionDictEnv(), vocabulary=["go", "to", "the", "red", "ball", "key"], max_length=7)
    config = json.loads(json.dumps(trained.tokenizer.to_config()))
    for replica in (
        TokenizeText(MissionDictEnv(), tokenizer_config=config),
        TokenizeText(MissionDictEnv(), tokenizer=Tokenizer.from_config(config)),
        TokenizeText(MissionDictEnv(), vocabulary=Tokenizer.from_config(config)),
    ):
        assert replica.tokenizer == trained.tokenizer
        assert replica.observation_space == trained.observation_space
        np.testing.assert_array_equal(trained.reset(seed=3)[0]["mission"], replica.reset(seed=3)[0]["mission"])
        np.testing.assert_array_equal(trained.step(0)[0]["mission"], replica.step(0)[0]["mission"])
    hashing = TokenizeText(BareTextEnv(), n_buckets=33)
    replica = TokenizeText(BareTextEnv(), tokenizer_config=hashing.tokenizer.to_config())
    np.testing.assert_array_equal(hashing.observation("any words at all"), replica.observation("any words at all"))


def test_truncation_warns_or_refuses() -> None:
    env = TokenizeText(BareTextEnv(), vocabulary="hashing", max_length=1)
    with pytest.warns(UserWarning, match="truncated"):
        observation, _ = env.reset()
    assert (observation != PAD_ID).all()
    env = TokenizeText(BareTextEnv(), vocabulary="hashing", max_length=1, on_overflow="error")
    with pytest.raises(ValueError, match="max_length"):
        env.reset()
    given = Tokenizer(None, max_length=1, on_overflow="error")
    with pytest.raises(ValueError, match="max_length"):
        TokenizeText(BareTextEnv(), tokenizer=given).reset()
    with pytest.warns(UserWarning, match="truncated"):
        TokenizeText(BareTextEnv(), tokenizer=given, on_overflow="truncate").reset()


def test_tokenize_text_errors() -> None:
    with pytest.raises(ValueError, match="not in the observation space"):
        TokenizeText(MissionDictEnv(), keys=["missing"])
    with pytest.raises(ValueError, match="no text key"):
        TokenizeText(ImageDictEnv())
    with pytest.raises(TypeError, match="text observation space"):
        TokenizeText(ImageBoxEnv())
    with pytest.raises(ValueError, match="not a Dict"):
        TokenizeText(BareTextEnv(), keys=["mission"])
    with pytest.raises(ValueError, match="only one of"):
        TokenizeText(BareTextEnv(), vocabulary=["a"], tokenizer=Tokenizer(["a"]))
    with pytest.raises(ValueError, match="vocabulary="):
        TokenizeText(BareTextEnv(), vocabulary="words")
    with pytest.raises(ValueError, match="max_length"):
        TokenizeText(BareTextEnv(), max_length=0)
    with pytest.raises(TypeError):
        TokenizeText(BareTextEnv(), vocabulary=["hello", 3])  # type: ignore[list-item]


TEXT_ENVS = {
    "words": TokenizeText(BareTextEnv(), vocabulary=["go", "to", "the", "red", "ball"], max_length=5),
    "hashing": TokenizeText(BareTextEnv(), vocabulary="hashing", n_buckets=7, max_length=5),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=80), mode=st.sampled_from(sorted(TEXT_ENVS)))
def test_any_text_gives_ids_inside_space_deterministically(text: str, mode: str) -> None:
    env = TEXT_ENVS[mode]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokens = env.observation(text)
        again = env.observation(text)
    assert env.observation_space.contains(tokens)
    np.testing.assert_array_equal(tokens, again)


# ---------------------------------------------------------------------------------------------------- image wrappers
def test_resize_image_dict_and_box() -> None:
    env = ResizeImage(ImageDictEnv(), key="image", size=(6, 8))
    assert env.observation_space["image"] == spaces.Box(0, 255, (6, 8, 3), np.uint8)
    assert env.observation_space["chw"] == ImageDictEnv.observation_space["chw"]
    check_wrapped_env(env)
    env = ResizeImage(ImageDictEnv(), key="chw", size=5, interpolation="linear")
    assert env.observation_space["chw"] == spaces.Box(0.0, 1.0, (3, 5, 5), np.float32)
    observation, _ = env.reset(seed=0)
    assert observation["chw"].shape == (3, 5, 5) and observation["chw"].flags.c_contiguous
    box_env = ResizeImage(ImageBoxEnv(shape=(20, 10)), size=(40, 5))  # 2-D image, key unused
    observation, _ = box_env.reset(seed=0)
    assert observation.shape == (40, 5) and observation.dtype == np.uint8
    assert box_env.observation_space.contains(observation)


def test_resize_image_values() -> None:
    env = ResizeImage(ImageBoxEnv(), size=(3, 4), interpolation="nearest")
    constant = np.full((12, 16, 3), 77, np.uint8)
    constant[..., 1] = 5
    resized = env.observation(constant)
    assert (resized[..., 0] == 77).all() and (resized[..., 1] == 5).all()
    checker = (np.indices((12, 16)).sum(axis=0) % 2 * 255).astype(np.uint8)
    averaged = ResizeImage(ImageBoxEnv(shape=(12, 16)), size=(6, 8), interpolation="area").observation(checker)
    assert np.abs(averaged.astype(int) - 128).max() <= 1  # 2x2 blocks of the checkerboard average to grey
    # Dtypes OpenCV cannot resize (int64) and overshooting interpolation (cubic) stay inside the declared bounds.
    int_env = ResizeImage(ImageBoxEnv(shape=(8, 8, 3), dtype=np.int64, low=0, high=10), size=(13, 13), interpolation=2)
    observation, _ = int_env.reset(seed=1)
    assert observation.dtype == np.int64 and int_env.observation_space.contains(observation)
    float_env = ImageBoxEnv(shape=(9, 9, 1), dtype=np.float32, low=0.0, high=1.0)
    observation, _ = ResizeImage(float_env, size=(30, 30), interpolation="lanczos").reset(seed=2)
    assert observation.shape == (30, 30, 1) and observation.min() >= 0.0 and observation.max() <= 1.0


def test_transpose_image() -> None:
    env = TransposeImage(ImageDictEnv(), key="image", to="first")
    assert env.observation_space["image"] == spaces.Box(0, 255, (3, 12, 16), np.uint8)
    observation, _ = env.reset(seed=0)
    inner, _ = ImageDictEnv().reset(seed=0)
    np.testing.assert_array_equal(observation["image"], inner["image"].transpose(2, 0, 1))
    check_wrapped_env(env)
    back = ChannelOrder(env, key="image", to="last")
    assert back.observation_space["image"] == ImageDictEnv.observation_space["image"]
    np.testing.assert_array_equal(back.reset(seed=0)[0]["image"], inner["image"])
    assert ChannelOrder is TransposeImage
    low = np.zeros((4, 5, 3), np.float32)
    low[0, 1, 2] = -1.0
    bounded = TransposeImage(ImageBoxEnv(shape=(4, 5, 3), dtype=np.float32, low=low, high=1.0), key=None, to="first")
    assert bounded.observation_space.low[2, 0, 1] == -1.0
    assert TransposeImage(ImageBoxEnv(shape=(6, 7)), to="last").observation_space.shape == (6, 7, 1)
    assert TransposeImage(ImageBoxEnv(shape=(6, 7)), to="first").observation_space.shape == (1, 6, 7)
    same = TransposeImage(ImageDictEnv(), key="chw", to="first")
    assert same.observation_space["chw"] == ImageDictEnv.observation_space["chw"]


def test_grayscale_image() -> None:
    env = GrayscaleImage(ImageBoxEnv(shape=(4, 5, 3)))
    assert env.observation_space == spaces.Box(0, 255, (4, 5, 1), np.uint8)
    red = np.zeros((4, 5, 3), np.uint8)
    red[..., 0] = 255
    assert (env.observation(red) == 76).all()  # 0.299 * 255
    flat = GrayscaleImage(ImageBoxEnv(shape=(4, 5, 3)), keep_dim=False)
    assert flat.observation_space.shape == (4, 5) and flat.observation(red).shape == (4, 5)
    chw = GrayscaleImage(ImageDictEnv(), key="chw")
    assert chw.observation_space["chw"] == spaces.Box(0.0, 1.0, (1, 12, 16), np.float32)
    observation, _ = chw.reset(seed=0)
    assert chw.observation_space.contains(observation)
    rgba = GrayscaleImage(ImageBoxEnv(shape=(4, 5, 4)))
    assert rgba.observation_space.shape == (4, 5, 1)
    with pytest.raises(ValueError, match="RGB"):
        GrayscaleImage(ImageBoxEnv(shape=(4, 5)))
    with pytest.raises(ValueError, match="RGB"):
        GrayscaleImage(ImageBoxEnv(shape=(4, 5, 2)))


@pytest.mark.parametrize("wrapper", [ResizeImage, TransposeImage, GrayscaleImage])
def test_image_wrapper_errors(wrapper: type[gym.Wrapper]) -> None:
    with pytest.raises(ValueError, match="not in the observation space"):
        wrapper(ImageDictEnv(), key="nope")
    with pytest.raises(TypeError, match="image"):
        wrapper(ImageDictEnv(), key="vector")
    with pytest.raises(TypeError, match="image"):
        wrapper(ImageDictEnv(), key="direction")
    with pytest.raises(TypeError, match="image"):
        wrapper(BareTextEnv())


@pytest.mark.parametrize("size", [(0, 4), (4,), "big", (2.5, 4), (True, 3), -3])
def test_resize_bad_size(size: Any) -> None:
    with pytest.raises(ValueError, match="size"):
        ResizeImage(ImageBoxEnv(), size=size)


def test_resize_bad_interpolation() -> None:
    with pytest.raises(ValueError, match="interpolation"):
        ResizeImage(ImageBoxEnv(), size=4, interpolation="bicubic-ish")


def test_render_to_image() -> None:
    env = RenderToImage(RenderEnv(), size=(15, 20))
    assert env.observation_space == spaces.Dict(
        {"observation": RenderEnv.observation_space, "image": spaces.Box(0, 255, (15, 20, 3), np.uint8)}
    )
    observation, _ = env.reset()
    assert env.observation_space.contains(observation) and (observation["image"][..., 0] == 0).all()
    observation, *_ = env.step(0)
    assert (observation["image"][..., 0] == 1).all() and (observation["image"][..., 1:] == 0).all()
    measured = RenderToImage(RenderEnv(alpha=True), key="pixels", original_key=None)  # size measured after a reset
    assert measured.observation_space == spaces.Dict({"pixels": spaces.Box(0, 255, (30, 40, 3), np.uint8)})
    observation, _ = measured.reset()
    assert measured.observation_space.contains(observation)
    on_dict = RenderToImage(RenderToImage(RenderEnv(), size=8), key="x", size=(4, 6))
    assert set(on_dict.observation_space.spaces) == {"observation", "image", "x"}
    assert on_dict.observation_space["x"].shape == (4, 6, 3)
    observation, _ = on_dict.reset()
    assert on_dict.observation_space.contains(observation)


def test_render_to_image_errors() -> None:
    with pytest.raises(ValueError, match="rgb_array"):
        RenderToImage(RenderEnv(render_mode=None))
    with pytest.raises(ValueError, match="already"):
        RenderToImage(RenderToImage(RenderEnv(), size=4), size=4)
    replaced = RenderToImage(RenderToImage(RenderEnv(), size=4), size=6, overwrite=True)
    assert replaced.observation_space["image"].shape == (6, 6, 3)
    with pytest.raises(ValueError, match="differ"):
        RenderToImage(RenderEnv(), key="observation", size=4)
    with pytest.raises(ValueError, match="size"):
        RenderToImage(RenderEnv(), size=(0, 3))


def test_minigrid_symbolic_image_bounds() -> None:
    grid_env = ImageBoxEnv(shape=(7, 7, 3), dtype=np.uint8, low=0, high=2)
    env = MiniGridSymbolicImage(grid_env, key=None)
    assert env.observation_space.high[0, 0].tolist() == [10, 5, 3]  # state: door 0-2, agent direction 0-3
    observation, _ = env.reset(seed=0)
    assert env.observation_space.contains(observation)
    with pytest.raises(ValueError, match="symbolic"):
        MiniGridSymbolicImage(ImageBoxEnv(shape=(7, 7, 4)))


# ---------------------------------------------------------------------------------------------------- SB3 plumbing
class MultimodalEnv(MissionDictEnv):
    """MissionDictEnv plus a Discrete key, tokenised below."""

    def __init__(self) -> None:
        super().__init__()
        self.observation_space = spaces.Dict({**self.observation_space.spaces, "direction": spaces.Discrete(4)})

    def _obs(self) -> dict[str, Any]:
        return {**super()._obs(), "direction": int(self.t % 4)}


def test_normalizable_keys_and_vec_normalize() -> None:
    env = token_env()
    assert normalizable_keys(env.observation_space) == ["vector"]
    assert normalizable_keys(env) == ["vector"]
    with pytest.raises(TypeError, match="Dict"):
        normalizable_keys(spaces.Box(0, 1, (3,)))
    venv = VecNormalize(DummyVecEnv([token_env, token_env]), norm_obs_keys=normalizable_keys(env))
    observation = venv.reset()
    for _ in range(6):
        observation, *_ = venv.step(np.zeros(2, dtype=np.int64))
        raw = venv.get_original_obs()
        np.testing.assert_array_equal(observation["mission"], raw["mission"])
        np.testing.assert_array_equal(observation["image"], raw["image"])
        assert observation["mission"].dtype == np.int64
    assert not np.allclose(observation["vector"], raw["vector"])  # the float vector is normalised
    # Without norm_obs_keys VecNormalize would normalise the tokens too.
    default = VecNormalize(DummyVecEnv([token_env]))
    default.reset()
    assert set(default.obs_rms) == {"image", "mission", "vector"}


def test_sb3_vec_frame_stack_with_token_key() -> None:
    venv = VecFrameStack(DummyVecEnv([token_env]), n_stack=3)
    assert venv.observation_space["mission"].shape == (18,)  # tokens are stacked (repeated) too
    assert venv.observation_space["image"].shape == (12, 16, 9)
    observation = venv.reset()
    assert (observation["mission"][0, :12] == PAD_ID).all()  # zero-filled: the instruction is missing at first
    for _ in range(6):
        observation, *_ = venv.step(np.zeros(1, dtype=np.int64))
        assert venv.observation_space.contains({key: value[0] for key, value in observation.items()})
    with pytest.raises(TypeError, match="Box and Dict"):
        VecFrameStack(DummyVecEnv([lambda: TokenizeText(MultimodalEnv(), vocabulary="hashing")]), n_stack=2)


def test_stack_image_frames_leaves_tokens_alone() -> None:
    def make() -> gym.Env:
        return StackImageFrames(TokenizeText(MultimodalEnv(), vocabulary=["go", "to"], max_length=6), n_stack=3)

    env = make()
    assert env.keys == ("image",)
    assert env.observation_space["image"] == spaces.Box(0, 255, (12, 16, 9), np.uint8)
    assert env.observation_space["mission"] == spaces.Box(0, 3, (6,), np.int64)
    assert env.observation_space["direction"] == spaces.Discrete(4)
    observation, _ = env.reset(seed=0)
    first = observation["image"][..., :3].copy()
    np.testing.assert_array_equal(observation["image"], np.concatenate([first] * 3, axis=-1))
    observation, *_ = env.step(0)
    np.testing.assert_array_equal(observation["image"][..., 3:6], first)  # oldest first, newest last
    assert observation["mission"].shape == (6,)
    check_wrapped_env(make())
    venv = DummyVecEnv([make, make])
    observation = venv.reset()
    assert observation["image"].shape == (2, 12, 16, 9) and observation["mission"].shape == (2, 6)
    for step in range(1, 8):  # crosses an episode end (5 steps) through DummyVecEnv's auto-reset
        observation, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
        assert dones.all() == (step == 5)
        if step == 5:
            assert infos[0]["terminal_observation"]["image"].shape == (12, 16, 9)
            reset_image = observation["image"][0]
            np.testing.assert_array_equal(reset_image[..., :3], reset_image[..., 6:])  # refilled after the reset
    chw = StackImageFrames(ImageDictEnv(), n_stack=2, keys=["chw"])
    assert chw.observation_space["chw"].shape == (6, 12, 16)
    plain = StackImageFrames(ImageBoxEnv(shape=(5, 6)), n_stack=4)
    assert plain.observation_space.shape == (5, 6, 4) and plain.reset(seed=0)[0].shape == (5, 6, 4)
    with pytest.raises(ValueError, match="n_stack"):
        StackImageFrames(ImageBoxEnv(), n_stack=0)
    with pytest.raises(ValueError, match="no image key"):
        StackImageFrames(BareTextEnvDict())
    with pytest.raises(TypeError, match="image"):
        StackImageFrames(ImageDictEnv(), keys=["vector"])


def test_ppo_runs_with_mmrl_extractor_on_wrapped_env() -> None:
    """The wrappers produce what mmrl's extractor reads (skipped until the extractor exists)."""
    try:
        policy_kwargs = mmrl.policy_kwargs(text_encoder="bow", features_dim=16)
    except (AttributeError, ImportError):
        pytest.skip("mmrl.policy_kwargs is not available yet")
    from stable_baselines3 import PPO

    def make() -> gym.Env:
        return StackImageFrames(ResizeImage(TokenizeText(MissionDictEnv(), max_length=6), size=(8, 8)), n_stack=2)

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        venv = VecNormalize(DummyVecEnv([make]), norm_obs_keys=normalizable_keys(make()))
        model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=policy_kwargs)
        model.learn(32)
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------- review fixes
def test_minigrid_symbolic_image_keeps_the_agent_direction_under_full_observation() -> None:
    pytest.importorskip("minigrid")
    from minigrid.wrappers import FullyObsWrapper

    raw = FullyObsWrapper(gym.make("MiniGrid-Empty-5x5-v0"))
    env = MiniGridSymbolicImage(raw)
    env.reset(seed=0)
    seen = set()
    for _ in range(4):  # turn left through every heading, north (3) included
        observation, *_ = env.step(0)
        row, col = np.argwhere(observation["image"][:, :, 0] == 10)[0]
        assert observation["image"][row, col, 2] == env.unwrapped.agent_dir
        assert env.observation_space.contains(observation)
        seen.add(int(env.unwrapped.agent_dir))
    assert seen == {0, 1, 2, 3}


def test_minigrid_symbolic_image_raises_instead_of_clipping() -> None:
    env = MiniGridSymbolicImage(ImageBoxEnv(shape=(7, 7, 3), dtype=np.uint8, low=0, high=255), key=None)
    grid = np.zeros((7, 7, 3), dtype=np.uint8)
    grid[2, 3, 2] = 4
    with pytest.raises(ValueError, match=r"state channel holds 4 at cell \(2, 3\), outside .* bound \[0, 3\]"):
        env.observation(grid)
    grid[2, 3, 2] = 3
    assert np.array_equal(env.observation(grid), grid)


@pytest.mark.parametrize("interpolation", ["area", "linear", "nearest", "cubic"])
@pytest.mark.parametrize("channels", [5, 12])
def test_resize_image_handles_more_than_four_channels(interpolation: str, channels: int) -> None:
    env = ResizeImage(ImageBoxEnv(shape=(56, 56, channels)), key=None, size=(20, 30), interpolation=interpolation)
    image = np.random.default_rng(0).integers(0, 256, (56, 56, channels), dtype=np.uint8)
    resized = env.observation(image)
    assert resized.shape == (20, 30, channels) and env.observation_space.contains(resized)
    # each channel is resized on its own, exactly as a 1-channel resize would do it
    alone = ResizeImage(ImageBoxEnv(shape=(56, 56, 1)), key=None, size=(20, 30), interpolation=interpolation)
    np.testing.assert_array_equal(resized[:, :, channels - 1 :], alone.observation(image[:, :, channels - 1 :]))


def test_resize_image_after_frame_stacking() -> None:
    env = ResizeImage(StackImageFrames(gym.make("mmrl/GoTo-v0", tile_size=12), n_stack=4), size=64)
    observation, _ = env.reset(seed=0)
    assert observation["image"].shape == (64, 64, 12) and env.observation_space.contains(observation)
