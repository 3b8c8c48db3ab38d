"""QLearning and TabularVecEnv: structured observations in save files, argument checks, wrapper checks."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.wrappers import RecordEpisodeStatistics, TimeLimit, TransformObservation, TransformReward

from mmrl.agents import ConstantSchedule, ExponentialSchedule, LinearSchedule, QLearning, TabularVecEnv
from mmrl.agents.qlearning_file import last_obs_arrays, last_obs_from_arrays


class TupleEnv(gym.Env):
    """Observations ``(Discrete(3), MultiBinary(2))``: members of different shapes."""

    observation_space = spaces.Tuple((spaces.Discrete(3), spaces.MultiBinary(2)))
    action_space = spaces.Discrete(2)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return (0, np.array([0, 1], np.int8)), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return (self.t % 3, np.array([action, 1], np.int8)), float(action), self.t >= 4, False, {}


def assert_same_structure(actual: Any, expected: Any) -> None:
    assert type(actual) is type(expected), (type(actual), type(expected))
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key in expected:
            assert_same_structure(actual[key], expected[key])
    elif isinstance(expected, tuple):
        assert len(actual) == len(expected)
        for left, right in zip(actual, expected, strict=True):
            assert_same_structure(left, right)
    else:
        np.testing.assert_array_equal(actual, expected)
        assert np.asarray(actual).dtype == np.asarray(expected).dtype


def lake(num_envs: int = 2) -> TabularVecEnv:
    return TabularVecEnv.from_env("FrozenLake-v1", num_envs, is_slippery=False, seed=0)


# --------------------------------------------------------------------------------- Tuple observations in a save
def test_tuple_observations_of_different_shapes_save_and_continue(tmp_path: Path) -> None:
    model = QLearning(TupleEnv(), seed=0).learn(20)
    path = model.save(tmp_path / "tuple_model")
    with zipfile.ZipFile(path) as archive:
        assert {"last_obs.0.npy", "last_obs.1.npy"} <= set(archive.namelist())
    restored = QLearning.load(path, env=model.get_env(), force_reset=False)  # the env is where it was
    assert_same_structure(restored._last_obs, model._last_obs)
    np.testing.assert_array_equal(restored._last_rows, model._last_rows)
    restored.learn(8, reset_num_timesteps=False)
    assert restored.num_timesteps == model.num_timesteps + 8


def test_tuple_of_same_shaped_members_loads_as_a_tuple(tmp_path: Path) -> None:
    model = QLearning(gym.make("Blackjack-v1"), seed=0).learn(50)
    assert isinstance(model._last_obs, tuple)
    path = model.save(tmp_path / "blackjack")
    restored = QLearning.load(path, env=model.get_env(), force_reset=False)
    assert_same_structure(restored._last_obs, model._last_obs)
    restored.learn(10, reset_num_timesteps=False)


def test_nested_structures_with_awkward_keys_round_trip() -> None:
    space = spaces.Dict(
        {
            "image": spaces.Box(0, 255, (2, 2), np.uint8),
            "a.b": spaces.Tuple((spaces.Discrete(3), spaces.Dict({"x/y": spaces.MultiBinary(3)}))),
            "a": spaces.Dict({"b": spaces.Discrete(4)}),
            "100%": spaces.MultiDiscrete([2, 3]),
        }
    )
    batch = {
        "image": np.arange(8, dtype=np.uint8).reshape(2, 2, 2),
        "a.b": (np.array([1, 2]), {"x/y": np.array([[0, 1, 1], [1, 0, 0]], np.int8)}),
        "a": {"b": np.array([3, 0])},
        "100%": np.array([[1, 2], [0, 1]]),
    }
    arrays = last_obs_arrays(space, batch)
    assert len(arrays) == 5 and "last_obs.image" in arrays  # plain keys are kept as they are
    assert all("/" not in name for name in arrays)
    assert_same_structure(last_obs_from_arrays(arrays, space), batch)


def test_files_without_last_observations_load_none() -> None:
    space = spaces.Tuple((spaces.Discrete(32), spaces.Discrete(11), spaces.Discrete(2)))
    assert last_obs_from_arrays({"q_table": np.zeros((2, 2))}, space) is None
    with pytest.raises(ValueError, match=r"'last_obs\.1' of the saved last observations is missing"):
        last_obs_from_arrays({"last_obs.0": np.array([1]), "last_obs.2": np.array([0])}, space)


def test_continuing_episodes_needs_as_many_env_copies(tmp_path: Path) -> None:
    path = QLearning(lake(4), seed=0).learn(40).save(tmp_path / "lake")
    with pytest.raises(ValueError, match=r"4 env copies.*has 2.*force_reset=True"):
        QLearning.load(path, env=lake(2), force_reset=False)
    assert QLearning.load(path, env=lake(2))._last_obs is None


# ------------------------------------------------------------------------------------------------ hyperparameters
@pytest.mark.parametrize(
    ("kwargs", "error", "hints"),
    [
        ({"learning_rate": -0.5}, ValueError, ("learning_rate must be in (0, 1]", "-0.5")),
        ({"learning_rate": 0.0}, ValueError, ("learning_rate must be in (0, 1]",)),
        ({"learning_rate": 1.5}, ValueError, ("learning_rate must be in (0, 1]",)),
        ({"learning_rate": float("nan")}, ValueError, ("learning_rate must be in (0, 1]",)),
        ({"learning_rate": lambda progress: 0.1 * progress}, TypeError, ("Schedule", "LinearSchedule", "callable")),
        ({"learning_rate": "0.1"}, TypeError, ("learning_rate must be a float", "str")),
        ({"learning_rate": True}, TypeError, ("learning_rate must be a float",)),
        ({"learning_rate": LinearSchedule(1.5, 0.1, 100)}, ValueError, ("within [0, 1]",)),
        ({"learning_rate": ConstantSchedule(0.0)}, ValueError, ("within [0, 1]",)),
        ({"exploration_initial_eps": 2.0}, ValueError, ("exploration_initial_eps must be in [0, 1]", "2.0")),
        ({"exploration_final_eps": 2.0}, ValueError, ("exploration_final_eps must be in [0, 1]",)),
        ({"exploration_final_eps": -0.1}, ValueError, ("exploration_final_eps must be in [0, 1]",)),
        ({"exploration_initial_eps": None}, TypeError, ("exploration_initial_eps must be a float",)),
        ({"exploration_schedule": ExponentialSchedule(2.0, 0.1, 10.0)}, ValueError, ("within [0, 1]",)),
        ({"exploration_schedule": lambda step: 0.1}, TypeError, ("exploration_schedule must be",)),
        ({"exploration_schedule": "cosine"}, ValueError, ("exploration_schedule must be",)),
        ({"gamma": 1.5}, ValueError, ("gamma must be in [0, 1]",)),
        ({"gamma": "0.9"}, TypeError, ("gamma must be a float",)),
        ({"exploration_fraction": -1}, ValueError, ("exploration_fraction must be in [0, 1]",)),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_hyperparameters_are_rejected(kwargs: dict, error: type[Exception], hints: tuple[str, ...]) -> None:
    with pytest.raises(error) as info:
        QLearning(lake(), **kwargs)
    for hint in hints:
        assert hint in str(info.value), str(info.value)


def test_boundary_hyperparameters_are_accepted() -> None:
    model = QLearning(
        lake(), learning_rate=1, exploration_initial_eps=1.0, exploration_final_eps=0, gamma=np.float32(1.0)
    )
    assert model.learning_rate_value == 1.0
    QLearning(lake(), learning_rate=LinearSchedule(0.5, 0.0, 100), exploration_schedule=ConstantSchedule(0.2))


def test_exploration_covers_every_action() -> None:
    model = QLearning(lake(8), exploration_initial_eps=1.0, exploration_final_eps=1.0, seed=0).learn(800)
    assert (model.visit_counts.sum(axis=0) > 0).all()


# ------------------------------------------------------------------------------------------------------- loading
@pytest.fixture
def saved_lake(tmp_path: Path) -> Path:
    return QLearning(lake(), seed=0).learn(100).save(tmp_path / "lake")


def test_load_reports_a_misspelt_override_as_the_callers_error(saved_lake: Path) -> None:
    with pytest.raises(TypeError) as info:
        QLearning.load(saved_lake, verbos=1)
    message = str(info.value)
    assert "'verbos'" in message and "verbose" in message and "malformed" not in message, message
    with pytest.raises(TypeError, match="'lr_schedule'"):
        QLearning.load(saved_lake, custom_objects={"lr_schedule": 0.1})
    with pytest.raises(TypeError, match="'observation_space'"):
        QLearning.load(saved_lake, observation_space=spaces.Discrete(16))


def test_load_reports_a_bad_override_value_as_the_callers_error(saved_lake: Path) -> None:
    with pytest.raises(ValueError) as info:
        QLearning.load(saved_lake, learning_rate=-1.0)
    assert "learning_rate must be in (0, 1]" in str(info.value) and str(saved_lake) not in str(info.value)
    with pytest.raises(TypeError, match="LinearSchedule"):
        QLearning.load(saved_lake, learning_rate=lambda progress: progress)
    with pytest.raises(TypeError, match="expected an env id"):
        QLearning.load(saved_lake, env=42)


def test_load_applies_valid_overrides(saved_lake: Path) -> None:
    model = QLearning.load(saved_lake, verbose=1, custom_objects={"learning_rate": 0.25})
    assert model.verbose == 1 and model.lr_schedule == ConstantSchedule(0.25)
    original = QLearning.load(saved_lake)
    np.testing.assert_array_equal(model.q_table, original.q_table)
    assert model.num_timesteps == original.num_timesteps == 100


def rewrite_metadata(source: Path, target: Path, edit) -> Path:
    with zipfile.ZipFile(source) as reader, zipfile.ZipFile(target, "w") as writer:
        for info in reader.infolist():
            content = reader.read(info.filename)
            if info.filename == "metadata.json":
                content = json.dumps(edit(json.loads(content))).encode()
            writer.writestr(info.filename, content)
    return target


@pytest.mark.parametrize(
    ("edit", "hints"),
    [
        (lambda metadata: [1, 2], ("not a QLearning file", "list")),
        (lambda metadata: "text", ("not a QLearning file", "str")),
        (lambda metadata: {**metadata, "arrays": {**metadata["arrays"], "q_table": [3, 4]}}, ("not a QLearning file",)),
        (lambda metadata: {**metadata, "arrays": {"q_table": 7}}, ("not a QLearning file", "'q_table'")),
        (lambda metadata: {**metadata, "arrays": [1]}, ("lists no arrays",)),
        (lambda metadata: {**metadata, "hyperparameters": [0.1]}, ("malformed",)),
        (lambda metadata: {**metadata, "hyperparameters": {**metadata["hyperparameters"], "gamma": "x"}}, ("gamma",)),
        (
            lambda metadata: {**metadata, "hyperparameters": {**metadata["hyperparameters"], "learning_rate": 5}},
            ("schedule",),
        ),
        (lambda metadata: {**metadata, "schedules": None}, ("malformed",)),
    ],
    ids=[
        "list",
        "string",
        "array-spec-list",
        "array-spec-int",
        "arrays-list",
        "hyper-list",
        "gamma-str",
        "lr-int",
        "sched",
    ],
)
def test_foreign_or_malformed_metadata_is_reported_as_the_files_fault(
    saved_lake: Path, tmp_path: Path, edit, hints: tuple[str, ...]
) -> None:
    bad = rewrite_metadata(saved_lake, tmp_path / "bad.npz", edit)
    with pytest.raises(ValueError) as info:
        QLearning.load(bad)
    message = str(info.value)
    assert str(bad) in message, message
    for hint in hints:
        assert hint in message, message


def test_foreign_npz_with_list_metadata(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.npz"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("metadata.json", "[1, 2]")
    with pytest.raises(ValueError, match=r"foreign\.npz: not a QLearning file"):
        QLearning.load(foreign)


# ---------------------------------------------------------------------------------------- TabularVecEnv wrappers
def test_from_env_rejects_wrappers_that_change_the_mdp() -> None:
    wrapped = TransformReward(gym.make("FrozenLake-v1", is_slippery=False), lambda reward: reward - 1.0)
    with pytest.raises(ValueError) as info:
        TabularVecEnv.from_env(wrapped, 1, seed=0)
    message = str(info.value)
    assert "TransformReward" in message and "QLearning(env)" in message, message
    observed = TransformObservation(
        gym.make("FrozenLake-v1"), lambda obs: obs, gym.make("FrozenLake-v1").observation_space
    )
    with pytest.raises(ValueError, match="TransformObservation"):
        TabularVecEnv.from_env(observed, 1)

    class MyTimeLimit(TimeLimit):
        pass

    with pytest.raises(ValueError, match="MyTimeLimit"):
        TabularVecEnv.from_env(MyTimeLimit(gym.make("FrozenLake-v1"), 5), 1)


def test_wrapped_env_learns_through_the_gymnasium_path() -> None:
    wrapped = TransformReward(gym.make("FrozenLake-v1", is_slippery=False), lambda reward: reward - 1.0)
    model = QLearning(wrapped, seed=0).learn(50)
    assert model.q_table.min() < 0  # the -1 rewards of the wrapper reached the table


def test_from_env_accepts_mdp_preserving_wrappers_and_reads_their_time_limit() -> None:
    from stable_baselines3.common.monitor import Monitor

    made = gym.make("FrozenLake-v1", is_slippery=False)
    assert TabularVecEnv.from_env(made, 1).max_episode_steps == 100
    env = Monitor(RecordEpisodeStatistics(TimeLimit(made, 7)))
    venv = TabularVecEnv.from_env(env, 2, seed=0)
    assert venv.max_episode_steps == 7
    assert TabularVecEnv.from_env(env, 2, max_episode_steps=None).max_episode_steps is None


# ------------------------------------------------------------------------------------- bounded, finite loading
def rewrite_member(source: Path, target: Path, member: str, content: bytes, edit=None) -> Path:
    """Copies a saved file, replacing ``member``'s bytes (and editing the metadata with ``edit``)."""
    with zipfile.ZipFile(source) as reader, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as writer:
        for info in reader.infolist():
            data = reader.read(info.filename)
            if info.filename == member:
                data = content
            elif info.filename == "metadata.json" and edit is not None:
                data = json.dumps(edit(json.loads(data))).encode()
            writer.writestr(info.filename, data)
    return target


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def declare(name: str, shape: list[int], dtype: str = "<f8"):
    def edit(metadata: dict) -> dict:
        metadata["arrays"][name] = {"shape": shape, "dtype": dtype}
        return metadata

    return edit


def test_a_zip_bomb_member_is_refused_before_it_is_inflated(saved_lake: Path, tmp_path: Path) -> None:
    # The metadata declares the real 16 x 4 table; the member inflates to 64 MB (a few dozen KB on disk).
    header = npy_bytes(np.zeros((16, 4)))[:128]
    bomb = rewrite_member(saved_lake, tmp_path / "bomb.npz", "q_table.npy", header + bytes(64 * 2**20))
    assert bomb.stat().st_size < 2**20
    with pytest.raises(ValueError) as info:
        QLearning.load(bomb)
    message = str(info.value)
    assert str(bomb) in message and "'q_table.npy' inflates to 67,108,992 bytes" in message, message
    assert "\n" not in message


def test_a_table_declared_larger_than_the_limit_is_refused_before_reading(saved_lake: Path, tmp_path: Path) -> None:
    # 600M x 1 float64 = 4.8 GB declared (and in the .npy header); nothing of it is decompressed.
    shape = [600_000_000, 1]
    header = npy_bytes(np.zeros((1, 1)))[:128].replace(b"(1, 1)", b"(600000000, 1)".ljust(6))
    big = rewrite_member(saved_lake, tmp_path / "big.npz", "q_table.npy", header, declare("q_table", shape))
    with pytest.raises(ValueError) as info:
        QLearning.load(big)
    message = str(info.value)
    assert "4,800,0" in message and "max_bytes=" in message and "\n" not in message, message


def test_max_bytes_is_the_callers_limit(saved_lake: Path) -> None:
    with pytest.raises(ValueError, match="more than the limit of 100"):
        QLearning.load(saved_lake, max_bytes=100)
    assert QLearning.load(saved_lake, max_bytes=10**6).num_timesteps == 100


def test_a_member_whose_header_disagrees_with_the_metadata_is_refused(saved_lake: Path, tmp_path: Path) -> None:
    bad = rewrite_member(saved_lake, tmp_path / "bad.npz", "q_table.npy", npy_bytes(np.zeros((4, 16))))
    with pytest.raises(ValueError, match=r"array 'q_table' is \(4, 16\) <f8, the metadata says \[16, 4\]"):
        QLearning.load(bad)
    objects = rewrite_member(saved_lake, tmp_path / "obj.npz", "q_table.npy", b"", declare("q_table", [16, 4], "|O"))
    with pytest.raises(ValueError, match="only numeric arrays"):
        QLearning.load(objects)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_a_non_finite_q_table_is_refused_on_load(saved_lake: Path, tmp_path: Path, value: float) -> None:
    table = QLearning.load(saved_lake).q_table
    table[3, 1] = value
    bad = rewrite_member(saved_lake, tmp_path / "nan.npz", "q_table.npy", npy_bytes(table))
    with pytest.raises(ValueError) as info:
        QLearning.load(bad)
    message = str(info.value)
    assert str(bad) in message and "'q_table' holds NaN or infinite action values" in message, message
    assert "\n" not in message


def test_a_non_finite_initial_q_value_is_refused() -> None:
    with pytest.raises(ValueError, match="initial_q_value must be a finite float"):
        QLearning(lake(), initial_q_value=float("nan"))
    with pytest.raises(ValueError, match="max_states must be an int >= 1"):
        QLearning(lake(), max_states=0)
