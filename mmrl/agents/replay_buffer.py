"""N-step returns for off-policy learners on Dict observations (SB3 refuses ``n_steps > 1`` with them).

``mmrl train --algo dqn --set n_steps=3`` uses :class:`NStepDictReplayBuffer` on mmrl's image + text envs; in
Python, pass it to SB3 yourself::

    from stable_baselines3 import DQN
    from mmrl.agents.replay_buffer import NStepDictReplayBuffer

    model = DQN("MultiInputPolicy", venv, gamma=0.99, replay_buffer_class=NStepDictReplayBuffer,
                replay_buffer_kwargs={"n_steps": 3, "gamma": 0.99}, policy_kwargs=mmrl.policy_kwargs())

A sparse success reward then reaches the Q-value of the state ``n`` steps before it in one update instead of
``n``: on GoTo-5x5, 3-step returns halve the frames DQN needs to reach 0.95 (``agents/dqn.yaml``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import DictReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


class NStepDictReplayBuffer(DictReplayBuffer):
    """A :class:`~stable_baselines3.common.buffers.DictReplayBuffer` whose samples carry n-step returns.

    Each sampled transition at step ``t`` of one env becomes ``(o_t, a_t, R, o_{t+k}, done, gamma**k)`` with
    ``R = r_t + gamma r_{t+1} + ... + gamma**(k-1) r_{t+k-1}``, where ``k <= n_steps`` stops early at the end of
    the episode (termination or truncation) and at the newest stored step. Storage is the plain buffer's: the sum
    is taken at sampling time. SB3's DQN (>= 2.6) bootstraps with the ``discounts`` field.

    Args:
        *args: As :class:`~stable_baselines3.common.buffers.DictReplayBuffer`.
        n_steps: Rewards summed per sample (1 is the plain one-step buffer).
        gamma: Discount factor; give the algorithm's ``gamma``.
        **kwargs: As :class:`~stable_baselines3.common.buffers.DictReplayBuffer` (``optimize_memory_usage``
            is not supported).

    Raises:
        ValueError: For ``n_steps < 1``, ``gamma`` outside [0, 1] or ``optimize_memory_usage=True``.
    """

    def __init__(self, *args: Any, n_steps: int = 3, gamma: float = 0.99, **kwargs: Any) -> None:
        if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 1:
            raise ValueError(f"n_steps must be an integer >= 1, got {n_steps!r:.40}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma!r:.40}")
        if kwargs.get("optimize_memory_usage"):
            raise ValueError("NStepDictReplayBuffer does not support optimize_memory_usage=True; leave it False")
        super().__init__(*args, **kwargs)
        self.n_steps = n_steps
        self.gamma = float(gamma)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> DictReplayBufferSamples:
        envs_B = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        offsets_N = np.arange(self.n_steps)
        rows_BN = (batch_inds[:, None] + offsets_N) % self.buffer_size
        # steps stored after each sampled one (the newest is pos - 1): a window never reads past it
        stored_after_B = (self.pos - 1 - batch_inds) % self.buffer_size
        ends_BN = np.logical_or(self.dones[rows_BN, envs_B[:, None]], self.timeouts[rows_BN, envs_B[:, None]])
        ends_BN[:, -1] = True
        first_end_B = ends_BN.argmax(axis=1)
        last_B = np.minimum(first_end_B, stored_after_B)
        used_BN = offsets_N[None, :] <= last_B[:, None]

        rewards_BN = self._normalize_reward(self.rewards[rows_BN, envs_B[:, None]], env)
        powers_N = self.gamma ** offsets_N.astype(np.float32)
        returns_B = (rewards_BN * powers_N * used_BN).sum(axis=1)
        last_rows_B = (batch_inds + last_B) % self.buffer_size
        terminal_B = self.dones[last_rows_B, envs_B] * (1.0 - self.timeouts[last_rows_B, envs_B])
        discounts_B = self.gamma ** (last_B + 1).astype(np.float32)

        obs = self._normalize_obs({key: obs[batch_inds, envs_B] for key, obs in self.observations.items()}, env)
        next_obs = self._normalize_obs(
            {key: obs[last_rows_B, envs_B] for key, obs in self.next_observations.items()}, env
        )
        assert isinstance(obs, dict) and isinstance(next_obs, dict)
        return DictReplayBufferSamples(
            observations={key: self.to_torch(value) for key, value in obs.items()},
            actions=self.to_torch(self.actions[batch_inds, envs_B]),
            next_observations={key: self.to_torch(value) for key, value in next_obs.items()},
            dones=self.to_torch(terminal_B.reshape(-1, 1)),
            rewards=self.to_torch(returns_B.reshape(-1, 1).astype(np.float32)),
            discounts=self.to_torch(discounts_B.reshape(-1, 1)),
        )
