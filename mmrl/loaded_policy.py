"""``LoadedPolicy``: a policy loaded for inference by :func:`mmrl.load_policy`, with SB3's ``predict``."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

__all__ = ["LoadedPolicy"]


@dataclass
class LoadedPolicy:
    """A policy loaded by :func:`load_policy`, with SB3's ``predict`` signature.

    Attributes:
        observation_space: The space the policy was built for (SB3 transposes channel-last images to channel-first;
            ``predict`` accepts either layout, as SB3's ``predict`` does).
        action_space: The action space.
        manifest: The bundle manifest; for a trusted SB3 zip or a QLearning file, a small summary dict.
        tokenizer_config: :meth:`mmrl.tokenizer.Tokenizer.to_config` output or None when unknown.
        policy: The underlying object (an SB3 ``BasePolicy``, or a ``QLearning`` agent).
    """

    observation_space: spaces.Space
    action_space: spaces.Space
    manifest: dict[str, Any]
    tokenizer_config: dict[str, Any] | None
    policy: Any = field(repr=False)

    def predict(
        self,
        observation: Any,
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Returns ``(actions, None)`` for one observation or a batch (SB3's ``predict`` semantics)."""
        policy: Any = self.policy
        with torch.no_grad() if isinstance(policy, nn.Module) else contextlib.nullcontext():
            actions, _ = policy.predict(observation, state, episode_start, deterministic)
        return actions, None

    @property
    def algo(self) -> str | None:
        """Algorithm name from the manifest (``"PPO"``, ``"A2C"``, ``"DQN"``, ``"QLearning"``) or None."""
        return self.manifest.get("algo")
