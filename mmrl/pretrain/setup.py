"""What pre-training shares with ``mmrl train``: the preset's env options and extractor settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PretrainSetup:
    """The env and extractor a pre-training run uses: those of ``mmrl train --algo ppo --env ENV_ID`` with the same
    ``--set`` overrides, so the bundle loads into that run without further flags."""

    env_id: str
    env_kwargs: dict[str, Any]
    extractor: dict[str, Any]
    config: Any = field(repr=False)

    def policy_kwargs(self) -> dict[str, Any]:
        """``mmrl.policy_kwargs`` of this setup (without ``pretrained``/``freeze``)."""
        from mmrl.extractor import policy_kwargs

        return policy_kwargs(**self.extractor)

    def build_extractor(self, observation_space: Any) -> Any:
        from mmrl.extractor import MultimodalExtractor

        kwargs = self.policy_kwargs()
        return MultimodalExtractor(observation_space, **kwargs["features_extractor_kwargs"])


def resolve_setup(env_id: str, overrides: list[str] | dict[str, Any] | None = None, seed: int = 0) -> PretrainSetup:
    """The PPO preset's settings for ``env_id`` with ``overrides`` (``["key=value", ...]`` as ``--set`` takes).

    Raises:
        ValueError: For an unknown env id or bad overrides (as ``mmrl train``), or ``pretrained``/``freeze`` among
            them (pre-training starts from fresh weights).
    """
    from mmrl.training.config import EXTRACTOR_FIELDS
    from mmrl.training.presets import resolve_config

    config = resolve_config("ppo", env_id, seed=seed, overrides=overrides)
    if getattr(config, "pretrained", None) or getattr(config, "freeze", None):
        raise ValueError("pretrained and freeze are settings of 'mmrl train'; pre-training starts from fresh weights")
    extractor = {key: getattr(config, key) for key in EXTRACTOR_FIELDS if getattr(config, key, None) is not None}
    return PretrainSetup(env_id, dict(config.env_kwargs), extractor, config)
