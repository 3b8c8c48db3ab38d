"""The cheap memories of egocentric envs: ``frame_stack`` (the last K frames in the image), ``action_history`` (the
last K actions as an ``"actions"`` key) and the extractor's ``image_frames``, which reads stacked frames with one
shared encoder; through training, checkpoints and evaluation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import mmrl
from mmrl.bundle import load_policy
from mmrl.export import export_run
from mmrl.extractor import MultimodalExtractor
from mmrl.training import RunDir, load_model

torch.set_num_threads(1)

ENV = "mmrl/GoTo-12x12-v0"


def _stack(frames: list[np.ndarray], channels_first: bool) -> np.ndarray:
    return np.concatenate(frames, axis=0 if channels_first else -1)


@pytest.mark.parametrize(("image_mode", "channels_first"), [("symbolic", True), ("symbolic", False), ("rgb", False)])
def test_frame_stack_holds_the_last_frames_oldest_first_and_restarts_each_episode(image_mode, channels_first):
    """Along random walks over several episodes the stacked image is exactly the last K single frames (copies of
    the first after a reset), in the declared space."""
    k = 3
    stacked = gym.make(ENV, image_mode=image_mode, channels_first=channels_first, frame_stack=k)
    plain = gym.make(ENV, image_mode=image_mode, channels_first=channels_first)
    obs, _ = stacked.reset(seed=1)
    single, _ = plain.reset(seed=1)
    history = [single["image"]] * k
    rng = np.random.default_rng(0)
    episodes = 0
    for _ in range(400):
        assert np.array_equal(obs["image"], _stack(history, channels_first))
        assert stacked.observation_space.contains(obs)
        action = int(rng.integers(3))
        obs, _, terminated, truncated, _ = stacked.step(action)
        single, _, plain_terminated, plain_truncated, _ = plain.step(action)
        assert (terminated, truncated) == (plain_terminated, plain_truncated)
        history = [*history[1:], single["image"]]
        if terminated or truncated:
            assert np.array_equal(obs["image"], _stack(history, channels_first))  # the last frame of the episode
            episodes += 1
            obs, _ = stacked.reset()
            single, _ = plain.reset()
            history = [single["image"]] * k
    assert episodes >= 3


def test_frame_stack_vector_envs_and_checkpoints_follow_the_single_env():
    """mmrl's SB3 VecEnv (terminal observations included) and a restored checkpoint give the stacks the single
    env gives."""
    k, n = 4, 3
    kwargs = {"image_mode": "symbolic", "channels_first": True}
    venv = mmrl.make_vec_env(ENV, n_envs=n, seed=7, env_kwargs={**kwargs, "frame_stack": k})
    plain = mmrl.make_vec_env(ENV, n_envs=n, seed=7, env_kwargs=kwargs)
    obs, single = venv.reset(), plain.reset()
    history = [[single["image"][i]] * k for i in range(n)]
    rng = np.random.default_rng(1)
    dones_seen = 0
    for step in range(300):
        for i in range(n):
            assert np.array_equal(obs["image"][i], _stack(history[i], True))
        if step == 150:
            state = venv.get_state()
            restored = mmrl.make_vec_env(ENV, n_envs=n, seed=99, env_kwargs={**kwargs, "frame_stack": k})
            restored.reset()
            restored.set_state(state)
            venv = restored
        actions = rng.integers(3, size=n)
        obs, _, dones, infos = venv.step(actions)
        single, _, plain_dones, plain_infos = plain.step(actions)
        assert np.array_equal(dones, plain_dones)
        for i in range(n):
            if dones[i]:
                dones_seen += 1
                last = [*history[i][1:], plain_infos[i]["terminal_observation"]["image"]]
                assert np.array_equal(infos[i]["terminal_observation"]["image"], _stack(last, True))
                history[i] = [single["image"][i]] * k
            else:
                history[i] = [*history[i][1:], single["image"][i]]
    assert dones_seen >= 3


def test_action_history_reports_the_last_actions_and_none_after_a_reset():
    k = 3
    env = gym.make(ENV, image_mode="symbolic", action_history=k)
    none = env.unwrapped.task.n_actions
    assert env.observation_space["actions"] == gym.spaces.MultiDiscrete([none + 1] * k)
    obs, _ = env.reset(seed=2)
    assert obs["actions"].tolist() == [none] * k
    taken: list[int] = []
    rng = np.random.default_rng(3)
    resets = 0
    for _ in range(300):
        action = int(rng.integers(3))
        obs, _, terminated, truncated, _ = env.step(action)
        taken.append(action)
        assert obs["actions"].tolist() == ([none] * k + taken)[-k:]
        assert env.observation_space.contains(obs)
        if terminated or truncated:
            obs, _ = env.reset()
            assert obs["actions"].tolist() == [none] * k
            taken, resets = [], resets + 1
    assert resets >= 3
    venv = gym.make_vec(ENV, 2, image_mode="symbolic", action_history=k)  # gymnasium's vector API, autoreset
    obs, _ = venv.reset(seed=0)
    obs, *_ = venv.step(np.array([1, 2]))
    assert obs["actions"].tolist() == [[none, none, 1], [none, none, 2]]
    state = venv.get_state()
    venv.step(np.array([0, 0]))
    venv.set_state(state)
    obs, *_ = venv.step(np.array([2, 1]))
    assert obs["actions"].tolist() == [[none, 1, 2], [none, 2, 1]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"frame_stack": 0}, "frame_stack"),
        ({"frame_stack": 17}, "frame_stack"),
        ({"frame_stack": 2, "observation": "compact"}, "compact"),
        ({"action_history": -1}, "action_history"),
        ({"action_history": 65}, "action_history"),
    ],
)
def test_memory_options_refuse_bad_values(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        gym.make(ENV, **kwargs)


def test_action_history_needs_an_agent():
    with pytest.raises(ValueError, match="question task"):
        gym.make("mmrl/VisualQuery-Colour-v0", action_history=2)


@pytest.mark.parametrize("channels_first", [True, False])
def test_image_frames_encodes_every_frame_with_one_encoder(channels_first):
    """Each frame's block of the feature map is the shared frame encoder's map of that frame alone (with the same
    FiLM modulation), whatever the layout; the fused width grows with the frames."""
    k = 3
    env = gym.make(ENV, image_mode="symbolic", channels_first=channels_first, frame_stack=k)
    extractor = MultimodalExtractor(
        env.observation_space, image_encoder="factored_locate", fusion="film", image_channels=8, image_frames=k
    )
    one = MultimodalExtractor(
        gym.make(ENV, image_mode="symbolic", channels_first=channels_first).observation_space,
        image_encoder="factored_locate", fusion="film", image_channels=8,
    )  # fmt: skip
    assert extractor.fused_dim == k * one.fused_dim
    obs, _ = env.reset(seed=0)
    batch = []
    for action in (2, 0, 2, 1, 2):
        obs, *_ = env.step(action)
        batch.append(obs)
    observations = {key: torch.as_tensor(np.stack([o[key] for o in batch])).float() for key in obs}
    image = observations["image"] if channels_first else observations["image"].permute(0, 3, 1, 2)
    assert not torch.equal(image[:, :3], image[:, 3:6]), "the frames of the batch differ"
    encoder = extractor.image_encoders[0]
    texts = [extractor.encode_text("mission", observations["mission"])]
    modulations = extractor.fusion.modulations(texts)[0]
    maps = encoder.trunk(image, modulations)
    width = maps.shape[1] // k
    for frame in range(k):
        alone = encoder.frame_encoder.trunk(image[:, 3 * frame : 3 * frame + 3], modulations)
        torch.testing.assert_close(maps[:, frame * width : (frame + 1) * width], alone)
    assert extractor(observations).shape == (5, 128)


def test_image_frames_that_do_not_fit_the_image_are_refused():
    space = gym.make(ENV, image_mode="symbolic", frame_stack=4).observation_space
    with pytest.raises(ValueError, match="image_frames=3"):
        MultimodalExtractor(space, image_encoder="factored", fusion="film", image_frames=3)
    with pytest.raises(ValueError, match="image_frames=5"):
        MultimodalExtractor(space, image_encoder="factored", fusion="film", image_frames=5)
    with pytest.raises(ValueError, match="image_frames must be at most"):
        MultimodalExtractor(space, image_encoder="factored", fusion="film", image_frames=64)


def test_training_with_both_memories_sets_image_frames_and_resumes_exactly(tmp_path):
    """``frame_stack`` in env_kwargs sets the extractor's ``image_frames``; a run stopped and resumed from its
    checkpoint (the frame stacks and action histories in the env state) ends with the weights of an
    uninterrupted run; evaluation rebuilds the same observations."""
    options = {
        "timesteps": 256,
        "n_envs": 2,
        "seed": 3,
        "progress_bar": False,
        "eval_freq": 0,
        "eval_episodes": 2,
        "checkpoint_freq": 0,
        "overrides": {
            "n_steps": 32, "batch_size": 32, "n_epochs": 1, "features_dim": 16, "image_channels": 8,
            "env_kwargs": {"frame_stack": 2, "action_history": 2},
            "final_model": "last",  # the preset's average needs periodic checkpoints
        },
    }  # fmt: skip
    straight = mmrl.train("ppo", ENV, run_dir=tmp_path / "straight", **options)
    assert straight.config.image_frames == 2
    mmrl.train("ppo", ENV, run_dir=tmp_path / "split", stop_at=128, **options)
    assert RunDir(tmp_path / "split").latest_checkpoint() is not None
    resumed = mmrl.train(resume=tmp_path / "split", algo=None, timesteps=256, progress_bar=False)
    weights = [load_model(path).policy.state_dict() for path in (tmp_path / "straight", tmp_path / "split")]
    for key, value in weights[0].items():
        torch.testing.assert_close(value, weights[1][key], msg=key)
    assert resumed.metrics["timesteps"] == straight.metrics["timesteps"]
    report = mmrl.evaluate(tmp_path / "straight", episodes=3, seed=100_000)
    assert report.episodes == 3
    bundle = export_run(tmp_path / "straight")  # the pickle-free bundle rebuilds the stacked-frames extractor
    model, loaded = load_model(tmp_path / "straight"), load_policy(bundle)
    venv = mmrl.make_vec_env(ENV, n_envs=4, seed=11, env_kwargs=dict(straight.config.env_kwargs))
    observations = venv.reset()
    for _ in range(5):
        expected, _ = model.predict(observations, deterministic=True)
        assert np.array_equal(loaded.predict(observations)[0], expected)
        observations, *_ = venv.step(expected)
