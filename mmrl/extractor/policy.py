"""``policy_kwargs``: SB3 ``policy_kwargs`` for ``MultiInputPolicy`` with the :class:`MultimodalExtractor`."""

from __future__ import annotations

from typing import Any

from mmrl.extractor.extractor import MultimodalExtractor, _check_choice
from mmrl.extractor.fusion import FUSIONS
from mmrl.extractor.image_encoders import IMAGE_ENCODER_CHOICES
from mmrl.extractor.text_encoders import TEXT_ENCODERS

#: Hidden layers of the policy and value heads on top of the extractor (SB3 accepts a list for PPO, A2C and DQN).
DEFAULT_NET_ARCH = (64,)


def policy_kwargs(
    fusion: str = "film",
    text_encoder: str = "gru",
    image_encoder: str = "auto",
    features_dim: int = 128,
    net_arch: list[int] | dict[str, list[int]] | None = None,
    **extractor_kwargs: Any,
) -> dict[str, Any]:
    """Builds SB3 ``policy_kwargs`` that plug :class:`MultimodalExtractor` into ``MultiInputPolicy``.

    The defaults (FiLM fusion, GRU instructions, the cheap adaptive-stride ``"small"`` CNN for images below
    64 px, 128 features, one hidden layer of 64 units per head) learned the image+text grounding task of
    ``tests/test_extractor_learning.py`` fastest among the fusions tested; FiLM conditions every conv stage on
    the instruction as BabyAI does (Chevalier-Boisvert et al., 2019), which suits "find the object named in the
    instruction" tasks.

    Models trained with these kwargs save and load with a plain ``PPO.load(path)`` (the extractor class is pickled
    by reference). ``features_extractor_kwargs`` only holds strings, numbers, bools and lists, so it can be stored
    as JSON.

    Args:
        fusion: A name in :data:`~mmrl.extractor.fusion.FUSIONS`.
        text_encoder: A name in :data:`~mmrl.extractor.text_encoders.TEXT_ENCODERS`.
        image_encoder: ``"auto"`` or a name in :data:`~mmrl.extractor.image_encoders.IMAGE_ENCODERS`.
        features_dim: Output width of the extractor.
        net_arch: SB3 ``net_arch`` of the heads (default ``[64]``).
        **extractor_kwargs: Further :class:`MultimodalExtractor` arguments (``image_keys``, ``text_keys``,
            ``ignore_keys``, ``text_dim``, ``vector_dim``, ``fusion_dim``, ``cache_text``, ``normalized_images``).

    Returns:
        ``{"features_extractor_class": MultimodalExtractor, "features_extractor_kwargs": {...}, "net_arch": ...}``.

    Raises:
        ValueError: For unknown option names (the message lists the valid choices).
    """
    _check_choice("fusion", fusion, tuple(FUSIONS))
    _check_choice("text_encoder", text_encoder, tuple(TEXT_ENCODERS))
    _check_choice("image_encoder", image_encoder, IMAGE_ENCODER_CHOICES)
    return {
        "features_extractor_class": MultimodalExtractor,
        "features_extractor_kwargs": {
            "features_dim": features_dim,
            "image_encoder": image_encoder,
            "text_encoder": text_encoder,
            "fusion": fusion,
            **extractor_kwargs,
        },
        "net_arch": list(DEFAULT_NET_ARCH) if net_arch is None else net_arch,
    }
