"""NStepDictReplayBuffer: n-step returns on Dict observations, checked against a step-by-step recomputation."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from mmrl.agents.replay_buffer import NStepDictReplayBuffer

OBS_SPACE = spaces.Dict({"image": spaces.Box(0, 255, (2, 2, 1), np.uint8), "mission": spaces.Box(0, 9, (3,), np.int64)})


def _filled_buffer(size: int, steps: int, n_steps: int, gamma: float, seed: int = 0) -> NStepDictReplayBuffer:
    """A 2-env buffer (``size // 2`` rows) after ``steps`` adds; ``image`` holds the step count t (mod 256)."""
    rng = np.random.default_rng(seed)
    buffer = NStepDictReplayBuffer(size, OBS_SPACE, spaces.Discrete(3), n_envs=2, n_steps=n_steps, gamma=gamma)
    for t in range(steps):
        obs = {"image": np.full((2, 2, 2, 1), t % 256, np.uint8), "mission": np.zeros((2, 3), np.int64)}
        nxt = {"image": np.full((2, 2, 2, 1), (t + 1) % 256, np.uint8), "mission": np.zeros((2, 3), np.int64)}
        done = rng.random(2) < 0.2
        truncated = done & (rng.random(2) < 0.3)
        infos = [{"TimeLimit.truncated": bool(flag)} for flag in truncated]
        buffer.add(obs, nxt, np.array([[0], [1]]), rng.random(2).astype(np.float32), done.astype(np.float32), infos)
    return buffer


def _expected(buffer: NStepDictReplayBuffer, row: int, env: int) -> tuple[float, int, float, float]:
    """(return, last row, terminal flag, discount) by walking the env's steps one at a time."""
    newest = (buffer.pos - 1) % buffer.buffer_size
    total, current = 0.0, row
    for k in range(buffer.n_steps):
        current = (row + k) % buffer.buffer_size
        total += buffer.gamma**k * float(buffer.rewards[current, env])
        if buffer.dones[current, env] or buffer.timeouts[current, env] or current == newest:
            break
    terminal = float(buffer.dones[current, env] * (1 - buffer.timeouts[current, env]))
    return total, current, terminal, buffer.gamma ** (((current - row) % buffer.buffer_size) + 1)


@pytest.mark.parametrize("steps", [7, 30, 33], ids=["partly-filled", "wrapped-at-0", "wrapped-mid"])
@pytest.mark.parametrize("n_steps", [1, 3, 5])
def test_n_step_samples_sum_discounted_rewards_up_to_the_episode_end_and_the_newest_step(
    steps: int, n_steps: int
) -> None:
    buffer = _filled_buffer(size=20, steps=steps, n_steps=n_steps, gamma=0.9)
    stored = buffer.buffer_size if buffer.full else buffer.pos
    rows = np.arange(stored)
    np.random.seed(1)
    envs = np.random.randint(0, high=2, size=(len(rows),))
    np.random.seed(1)
    samples = buffer._get_samples(rows)
    for i, (row, env) in enumerate(zip(rows, envs, strict=True)):
        total, last, terminal, discount = _expected(buffer, int(row), int(env))
        assert samples.rewards[i, 0].item() == pytest.approx(total, rel=1e-5)
        assert samples.dones[i, 0].item() == terminal
        assert samples.discounts is not None
        assert samples.discounts[i, 0].item() == pytest.approx(discount, rel=1e-5)
        stored_next = buffer.next_observations["image"][last, env].flat[0]
        assert samples.next_observations["image"][i].flatten()[0] == stored_next
        assert samples.observations["image"][i].flatten()[0] == buffer.observations["image"][row, env].flat[0]


def test_one_step_buffer_matches_the_plain_dict_buffer() -> None:
    buffer = _filled_buffer(size=20, steps=33, n_steps=1, gamma=0.99)
    rows = np.arange(buffer.buffer_size)
    np.random.seed(3)
    n_step = buffer._get_samples(rows)
    np.random.seed(3)
    plain = super(NStepDictReplayBuffer, buffer)._get_samples(rows)
    assert np.allclose(n_step.rewards.numpy(), plain.rewards.numpy())
    assert np.array_equal(n_step.dones.numpy(), plain.dones.numpy())
    assert np.array_equal(n_step.next_observations["image"].numpy(), plain.next_observations["image"].numpy())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_steps": 0}, "n_steps must be"),
        ({"gamma": 1.5}, "gamma must be"),
        ({"optimize_memory_usage": True}, "optimize"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NStepDictReplayBuffer(10, OBS_SPACE, spaces.Discrete(3), **kwargs)


def test_dqn_run_with_n_steps_uses_the_n_step_buffer(tmp_path) -> None:
    from mmrl.training import train

    result = train(
        "dqn",
        "mmrl/GoTo-5x5-v0",
        timesteps=400,
        seed=0,
        n_envs=2,
        overrides={"n_steps": 3, "learning_starts": 50, "buffer_size": 500, "gamma": 0.9},
        run_dir=tmp_path / "run",
        progress_bar=False,
        eval_freq=0,
        checkpoint_freq=0,
    )
    buffer = result.model.replay_buffer
    assert isinstance(buffer, NStepDictReplayBuffer)
    assert (buffer.n_steps, buffer.gamma) == (3, 0.9)
