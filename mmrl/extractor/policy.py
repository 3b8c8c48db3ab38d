"""``policy_kwargs``: SB3 ``policy_kwargs`` for ``MultiInputPolicy`` with the :class:`MultimodalExtractor`."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from mmrl.extractor.extractor import MultimodalExtractor, _check_choice
from mmrl.extractor.fusion import FUSION_CHOICES, IMAGE_POOLS
from mmrl.extractor.image_encoders import IMAGE_ENCODER_CHOICES
from mmrl.extractor.text_encoders import TEXT_ENCODER_CHOICES

#: Hidden layers of the policy and value heads on top of the extractor (SB3 accepts a list for PPO, A2C and DQN).
DEFAULT_NET_ARCH = (64,)


def policy_kwargs(
    fusion: str = "auto",
    text_encoder: str = "bow",
    image_encoder: str = "auto",
    features_dim: int = 128,
    net_arch: list[int] | dict[str, list[int]] | None = None,
    **extractor_kwargs: Any,
) -> dict[str, Any]:
    """Builds SB3 ``policy_kwargs`` that plug :class:`MultimodalExtractor` into ``MultiInputPolicy``.

    Defaults and why:

    * ``fusion="auto"`` and ``image_encoder="auto"`` pick the network from the observation space
      (:func:`~mmrl.extractor.fusion.resolve_fusion`, :func:`~mmrl.extractor.image_encoders.resolve_image_encoder`):

      - an integer-coded grid (MiniGrid/BabyAI's symbolic view through ``mmrl.wrappers.auto_wrap``, mmrl's
        ``image_mode="symbolic"``) with an instruction: the ``"factored"`` cell encoder, 48 channels (each cell's
        kind, colour and state read apart in the first layer), FiLM-conditioned on the instruction; the network of
        mmrl's room presets;
      - pictures with an instruction: gated attention, with the patch CNN below 64 px (MiniGrid's RGB views,
        mmrl's 56x56 renders) and the Nature CNN from 64 px on;
      - no instruction: concatenation.

      These are the one-line path for other people's envs (``auto_wrap`` + ``policy_kwargs()``), measured with
      ``benchmarks/other_envs.py`` (PPO n_steps 128, batch 256, 4 epochs, lr 1e-3, 16 envs; frames until 0.90
      training success over 200 episodes, median of 3 seeds): BabyAI-GoToLocal-v0 294k frames and
      BabyAI-PickupLoc-v0 882k, where gated attention, concatenation and a plain CNN + GRU + concat extractor
      levelled off (GoToLocal 0.65-0.75, PickupLoc 0.3-0.45 up to 1M); BabyAI-GoToRedBall-v0 47k (seed 0:
      concatenation 67k, gated attention 83k; the plain extractor 128k); a 72x72 RGB env with a ``spaces.Text``
      colour instruction 95k with gated attention (concatenation 175k, the plain extractor 224k). mmrl's own
      presets (``agents/*.yaml``) name their network where it was measured.
    * ``text_encoder="bow"`` (bag of words): it learned fastest on BabyAI-GoToRedBall-v0 (with concatenation
      66,880 frames to 0.90; gated + GRU 79,952; concat + GRU had only 0.66 training success at 81,920, below the
      plain CNN + GRU baseline's 0.71), and it is the cheapest encoder (5-8 % of PPO's frames/s against about 15 % for
      the GRU). It ignores word order: for instructions where order matters ("go to the red ball after you open
      the door" means the door first) pass ``text_encoder="gru"`` (or ``"conv"``), as mmrl's Sequence-* preset
      does.
    * ``features_dim=128`` and ``net_arch=[64]``: one hidden layer of 64 units per head on 128 fused features.
    * ``normalize_images=False`` for SB3, ``normalized_images=False`` for the extractor: SB3 then only casts
      ``uint8`` images to float, and the extractor folds the 1/255 into its first convolution's weights
      (:class:`~mmrl.extractor.image_encoders.InputConv2d`): the same network, one pass over every image batch less
      (about 8 % more PPO frames per second). Pass ``normalized_images=True`` to let SB3 divide instead.

    **MiniGrid's raw grid is read as a picture.** The extractor embeds integer-coded grids only when their space
    says so (integer ``Box``, low 0, small per-channel bounds). MiniGrid declares its ``(7, 7, 3)`` object/colour/
    state codes as a 0..255 ``uint8`` picture, and nothing in that declaration tells them from pixels, so an env
    passed without ``mmrl.wrappers.auto_wrap`` (or ``MiniGridSymbolicImage``) has its codes scaled by 1/255 and
    learns more slowly (2.5-3x the frames on BabyAI-GoToRedBall-v0). ``auto_wrap`` declares the real bounds.

    Models trained with these kwargs save and load with a plain ``PPO.load(path)`` (the extractor class is pickled
    by reference). ``features_extractor_kwargs`` only holds strings, numbers, bools and lists, so it can be stored
    as JSON.

    Args:
        fusion: ``"auto"`` or a name in :data:`~mmrl.extractor.fusion.FUSIONS`.
        text_encoder: A name in :data:`~mmrl.extractor.text_encoders.TEXT_ENCODERS`.
        image_encoder: ``"auto"`` or a name in :data:`~mmrl.extractor.image_encoders.IMAGE_ENCODERS`.
        features_dim: Output width of the extractor.
        net_arch: SB3 ``net_arch`` of the heads (default ``[64]``).
        **extractor_kwargs: Further :class:`MultimodalExtractor` arguments (``image_keys``, ``text_keys``,
            ``ignore_keys``, ``text_dim``, ``vector_dim``, ``fusion_dim``, ``cache_text``, ``normalized_images``,
            ``embed_cells``, ``cell_dim``, ``blank_empty_cells``, ``image_pool``).

    Returns:
        ``{"features_extractor_class": MultimodalExtractor, "features_extractor_kwargs": {...}, "net_arch": ...,
        "normalize_images": ...}``.

    Raises:
        ValueError: For unknown option names (the message lists the valid choices).
    """
    _check_choice("fusion", fusion, FUSION_CHOICES)
    _check_choice("text_encoder", text_encoder, TEXT_ENCODER_CHOICES)
    _check_choice("image_encoder", image_encoder, IMAGE_ENCODER_CHOICES)
    if "image_pool" in extractor_kwargs:
        _check_choice("image_pool", extractor_kwargs["image_pool"], IMAGE_POOLS)
    normalized_images = bool(extractor_kwargs.pop("normalized_images", False))
    return {
        "features_extractor_class": MultimodalExtractor,
        "features_extractor_kwargs": {
            "features_dim": features_dim,
            "image_encoder": image_encoder,
            "text_encoder": text_encoder,
            "fusion": fusion,
            "normalized_images": normalized_images,
            **extractor_kwargs,
        },
        "net_arch": list(DEFAULT_NET_ARCH) if net_arch is None else net_arch,
        "normalize_images": normalized_images,
    }


#: Largest per-channel bound of an integer image read as a grid of categories (as in the extractor's detection).
_MAX_GRID_BOUND = 63


def _is_token_box(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and np.issubdtype(space.dtype, np.integer)
        and len(space.shape) == 1
        and bool(np.all(space.low == 0))
    )


def _is_integer_grid(space: spaces.Space) -> bool:
    return (
        isinstance(space, spaces.Box)
        and np.issubdtype(space.dtype, np.integer)
        and len(space.shape) == 3
        and bool(np.all(space.low == 0))
        and 1 <= int(np.max(space.high)) <= _MAX_GRID_BOUND
    )


def policy_for(observation_space: spaces.Space, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """The SB3 policy name and ``policy_kwargs`` that fit an env, e.g. one returned by ``mmrl.wrappers.auto_wrap``.

    * A ``Dict`` with token ids (a 1-D integer ``Box`` from ``0``) or an integer-coded grid (MiniGrid's symbolic
      view with its bounds declared): ``("MultiInputPolicy", policy_kwargs(**overrides))``, mmrl's extractor.
    * Any other ``Dict``: ``("MultiInputPolicy", {})``, SB3's ``CombinedExtractor``.
    * A 3-D ``Box`` image: ``("CnnPolicy", {})``; anything else: ``("MlpPolicy", {})``.

    The check reads only the declared space: MiniGrid's raw grid (codes 0-10 declared as a 0..255 ``uint8``
    picture) looks like a picture here and in the extractor, which then scales its codes by 1/255 instead of
    embedding them. Wrap such envs with ``auto_wrap`` (or ``MiniGridSymbolicImage``) first.

    Args:
        observation_space: The (wrapped) env's observation space.
        **overrides: :func:`policy_kwargs` arguments, used when mmrl's extractor is chosen.

    Returns:
        ``(policy, policy_kwargs)`` for ``PPO(policy, env, policy_kwargs=...)`` (also A2C and DQN).
    """
    if isinstance(observation_space, spaces.Dict):
        subspaces = observation_space.spaces.values()
        if any(_is_token_box(sub) or _is_integer_grid(sub) for sub in subspaces):
            return "MultiInputPolicy", policy_kwargs(**overrides)
        return "MultiInputPolicy", {}
    if isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 3:
        return "CnnPolicy", {}
    return "MlpPolicy", {}
