"""``MultimodalExtractor``: an SB3 features extractor for Dict observations of images, token ids and vectors.

Key roles are assigned by :mod:`mmrl.extractor.roles`, instructions go through the text cache
(:mod:`mmrl.extractor.text_cache`), and every size is checked against :mod:`mmrl.extractor.limits` before a layer is
built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from mmrl.extractor.cell_embedding import EMPTY_KINDS
from mmrl.extractor.fusion import FUSION_CHOICES, FUSIONS, IMAGE_POOLS, Fusion, resolve_fusion
from mmrl.extractor.image_encoders import (
    AUTO_GRID_CHANNELS,
    IMAGE_ENCODER_CHOICES,
    ImageEncoder,
    build_image_encoder,
    resolve_image_encoder,
)
from mmrl.extractor.limits import (
    MAX_LAYER_PARAMETERS,
    check_choice,
    check_dimension,
    check_key_sizes,
    check_layer_parameters,
    check_vocabulary,
)
from mmrl.extractor.roles import (
    TOKENIZE_WRAPPER,
    ImageInput,
    assign_roles,
    cell_categories,
    image_channel_axis,
    image_input_of,
    tensor_shape,
)
from mmrl.extractor.stacked_frames import MAX_IMAGE_FRAMES, StackedFramesEncoder
from mmrl.extractor.text_cache import InferenceTextMemo, encode_text
from mmrl.extractor.text_encoders import TEXT_ENCODER_CHOICES, TextEncoder, TextEncoding, text_encoder_class
from mmrl.tokenizer import UNK_ID

__all__ = [
    "InferenceTextMemo",
    "MultimodalExtractor",
    "assign_roles",
    "cell_categories",
    "check_dimension",
    "encode_text",
    "image_channel_axis",
]

#: Kept for callers of the earlier private name; use :func:`mmrl.extractor.limits.check_choice`.
_check_choice = check_choice


def _fuse(
    observations: Mapping[str, torch.Tensor],
    image_inputs: Sequence[tuple[str, ImageInput, ImageEncoder]],
    text_inputs: Sequence[tuple[str, TextEncoder]],
    vector_inputs: Sequence[tuple[str, nn.Module]],
    fusion: Fusion,
    cache_text: bool,
    text_memos: Sequence[InferenceTextMemo | None] | None = None,
) -> torch.Tensor:
    """Encodes every key and fuses the encodings into ``fused_BF`` (shared by ``forward`` and the dummy pass)."""
    memos = text_memos if text_memos is not None else [None] * len(text_inputs)
    texts = [
        encode_text(encoder, observations[key], cache_text, memo)
        for (key, encoder), memo in zip(text_inputs, memos, strict=True)
    ]
    modulations = fusion.modulations(texts) if texts else None
    image_maps = []
    for index, (key, image_input, encoder) in enumerate(image_inputs):
        image = observations[key].float()  # no copy when SB3 already made it float; the scale is in the encoder
        if image_input.channels_last:
            image = image.permute(0, 3, 1, 2)
        image_maps.append(encoder.trunk(image, None if modulations is None else modulations[index]))
    vectors = [encoder(observations[key].float()) for key, encoder in vector_inputs]
    return fusion(image_maps, texts, vectors)


class MultimodalExtractor(BaseFeaturesExtractor):
    """Encodes Dict observations of images, instructions (token ids) and vectors, and fuses them.

    **Roles.** Each key of the Dict space gets a role. Keys listed in ``image_keys``, ``text_keys`` or
    ``ignore_keys`` take that role; the others are classified in this order, and only for roles whose list is
    ``None`` (passing ``text_keys=[]`` disables text detection):

    1. *image*: a 3-D ``Box`` of any dtype. The channel axis is the end of size 1, 3 or 4 (see
       :func:`image_channel_axis`); channel-last tensors are permuted in ``forward``. Scale: float images are used
       as they are; ``uint8`` images with bounds ``[0, 255]`` are assumed divided by 255 by the SB3 policy
       (``normalize_images=True``, SB3's default; pass ``normalized_images=False`` otherwise). Integer-coded grids
       (MiniGrid's symbolic view with its real bounds declared: see :func:`cell_categories`) are embedded cell by
       cell (``embed_cells``); other integer images are divided by their ``high.max()``.
    2. *text*: a 1-D integer ``Box`` whose entries all range over ``[0, V-1]`` (``V >= 2``), i.e. token ids from
       :class:`mmrl.tokenizer.Tokenizer` with ``PAD_ID = 0``. The vocabulary size is ``high.max() + 1``. SB3 hands
       them over as floats; they are cast back with ``.long()``.
    3. *vector*: anything else (``Box`` of other shapes, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``),
       flattened and encoded by ``Linear(·, vector_dim)`` + ReLU.

    A raw ``gymnasium.spaces.Text`` (or a non-Dict space) is rejected with a pointer to
    ``mmrl.wrappers.TokenizeText``.

    **Pipeline.** Text keys are encoded first (:data:`~mmrl.extractor.text_encoders.TEXT_ENCODERS`); the fusion may
    turn them into FiLM modulations of the image encoders (:data:`~mmrl.extractor.image_encoders.IMAGE_ENCODERS`),
    whose feature maps, the text encodings and the vectors are then fused
    (:data:`~mmrl.extractor.fusion.FUSIONS`) and projected by ``Linear(·, features_dim)`` + ReLU. The width of the
    fused vector is measured by one dummy forward pass.

    Every constructor argument is a plain string, number, bool or list of strings, so the configuration is JSON
    serialisable.

    Args:
        observation_space: A ``gymnasium.spaces.Dict``.
        features_dim: Output width; ``None`` returns the fused vector without the final projection.
        image_encoder: ``"auto"``, ``"patch"``, ``"small"``, ``"nature"``, ``"impala"``, ``"pointwise"``,
            ``"factored"``, ``"factored_words"``, ``"factored_match"``, ``"factored_locate"``,
            ``"factored_sink"`` or ``"factored_bilinear"``.
            ``"auto"`` picks ``"factored"`` (48 channels unless ``image_channels`` says otherwise) for embedded
            integer-coded grids, ``"patch"`` below 64 pixels on the smaller side and ``"nature"`` from 64 on.
        text_encoder: ``"bow"``, ``"gru"``, ``"lstm"``, ``"conv"`` or ``"transformer"``.
        fusion: ``"auto"``, ``"concat"``, ``"sum"``, ``"weighted"``, ``"product"``, ``"gated"``, ``"film"`` or
            ``"cross_attention"`` (the last three need an image key and a text key). ``"auto"`` is ``"film"``
            with embedded grids and a text key, ``"gated"`` with pictures and a text key, ``"concat"`` otherwise
            (:func:`~mmrl.extractor.fusion.resolve_fusion`).
        image_keys: Image keys (``None``: detect).
        text_keys: Token-id keys (``None``: detect; ``[]``: no text).
        ignore_keys: Keys to leave out entirely.
        text_dim: Width of word embeddings and text encodings.
        vector_dim: Width of each encoded vector key.
        fusion_dim: Width of the projections of ``sum``/``weighted``/``product`` and of ``cross_attention``.
        cache_text: Encode each distinct token row once per forward pass and scatter the result back; while
            gradients are off (rollouts, ``predict``), also reuse the encodings of rows seen in earlier passes
            until a parameter of the text encoder changes (:class:`InferenceTextMemo`). The bag of words is always
            encoded directly (it costs no more than the bookkeeping).
        normalized_images: Whether the policy already divides ``[0, 255]`` ``uint8`` images by 255.
        embed_cells: How to read integer-coded grids (MiniGrid's symbolic view): ``None`` detects them
            (:func:`cell_categories`) and embeds every cell (:class:`~mmrl.extractor.cell_embedding.CellEmbedding`),
            ``False`` scales the ids to [0, 1] like pictures, ``True`` requires every image key to be such a grid.
        cell_dim: Width of the cell embeddings (the channels the image encoder reads).
        blank_empty_cells: Read the colour and state of unseen and empty cells (MiniGrid's kinds 0 and 1, which it
            codes with colour 0, red, and state 0) as "none", so that red is only ever a red object
            (:class:`~mmrl.extractor.cell_embedding.CellEmbedding`); embedded grids only.
        text_model: ``text_encoder="hf"`` only: a local Hugging Face model directory
            (:mod:`mmrl.extractor.hf_text`).
        text_vocabulary: ``text_encoder="hf"`` only: the words of token ids 2, 3, ... (default: mmrl's vocabulary).
        pretrained: A pre-trained encoder bundle (``mmrl pretrain --method autoencoder``) or a run directory
            (``--method bc``) whose weights are loaded (:func:`mmrl.pretrain.loading.load_into`).
        freeze: Parts that get no gradient: ``"none"``, ``"image"``, ``"text"`` or ``"all"`` (every encoder and the
            fusion).
        image_pool: How the fusion reads each image feature map: ``"none"`` flattens it (positions kept: where
            things are, for navigation), ``"max"``, ``"mean"`` or ``"sum"`` pool every channel over the positions
            (what is in the scene, wherever it is: questions about a whole scene; ``"sum"`` can count).
        image_channels: Width of every convolution of the image encoders (``None``: each encoder's own, e.g. 16
            for ``"patch"``; not settable for ``"nature"``).
        image_frames: Frames stacked along the channel axis of every image key, oldest first (an mmrl env's
            ``frame_stack``, :class:`mmrl.wrappers.StackImageFrames`): each frame goes through the same encoder
            and their feature maps are concatenated (:class:`~mmrl.extractor.stacked_frames.StackedFramesEncoder`).
            1: one image.

    Raises:
        ValueError: For unsupported spaces, bad key lists, unknown option names (the message lists the choices), a
            width below 1, a ``text_dim`` the Transformer's attention heads do not divide, or sizes beyond the
            documented limits of :mod:`mmrl.extractor.limits` (widths up to ``MAX_WIDTH``, values per key, token
            vocabulary, weights of one layer), all checked before any layer is allocated.
        TypeError: For a width (``features_dim``, ``text_dim``, ``vector_dim``, ``fusion_dim``, ``cell_dim``) that is
            not an integer (``bool`` included).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        features_dim: int | None = 128,
        image_encoder: str = "auto",
        text_encoder: str = "gru",
        fusion: str = "auto",
        image_keys: list[str] | None = None,
        text_keys: list[str] | None = None,
        ignore_keys: list[str] | None = None,
        text_dim: int = 64,
        vector_dim: int = 32,
        fusion_dim: int = 128,
        cache_text: bool = True,
        normalized_images: bool = True,
        embed_cells: bool | None = None,
        cell_dim: int = 16,
        blank_empty_cells: bool = False,
        text_model: str | None = None,
        text_vocabulary: list[str] | None = None,
        pretrained: str | None = None,
        freeze: str = "none",
        image_pool: str = "none",
        image_channels: int | None = None,
        image_frames: int = 1,
    ) -> None:
        check_choice("image_encoder", image_encoder, IMAGE_ENCODER_CHOICES)
        check_choice("image_pool", image_pool, IMAGE_POOLS)
        check_choice("text_encoder", text_encoder, TEXT_ENCODER_CHOICES)
        check_choice("fusion", fusion, FUSION_CHOICES)
        if features_dim is not None:
            features_dim = check_dimension("features_dim", features_dim, none_allowed=True)
        text_dim = check_dimension("text_dim", text_dim)
        vector_dim = check_dimension("vector_dim", vector_dim)
        fusion_dim = check_dimension("fusion_dim", fusion_dim)
        cell_dim = check_dimension("cell_dim", cell_dim)
        if not isinstance(blank_empty_cells, bool):
            raise TypeError(f"blank_empty_cells must be True or False, got {type(blank_empty_cells).__name__}")
        if image_channels is not None:
            image_channels = check_dimension("image_channels", image_channels, none_allowed=True)
            if 9 * image_channels**2 > MAX_LAYER_PARAMETERS:
                raise ValueError(
                    f"image_channels={image_channels:,} would give 3x3 convolutions of {9 * image_channels**2:,} "
                    f"weights, more than the limit of {MAX_LAYER_PARAMETERS:,} "
                    f"(mmrl.extractor.limits.MAX_LAYER_PARAMETERS); use image_channels <= "
                    f"{math.isqrt(MAX_LAYER_PARAMETERS // 9):,} (BabyAI uses 128)"
                )
        image_frames = check_dimension("image_frames", image_frames)
        if image_frames > MAX_IMAGE_FRAMES:
            raise ValueError(f"image_frames must be at most {MAX_IMAGE_FRAMES}, got {image_frames}")
        text_encoder_class(text_encoder).check_dimensions(text_dim)
        text_options: dict[str, Any] = {"text_model": text_model, "vocabulary": text_vocabulary}
        text_options = {key: value for key, value in text_options.items() if value is not None}
        if text_options and not getattr(text_encoder_class(text_encoder), "reads_text_model", False):
            raise ValueError(f"text_model and text_vocabulary are read by text_encoder='hf' only, not {text_encoder!r}")
        if isinstance(observation_space, spaces.Dict):
            check_key_sizes(observation_space)  # before anything reads the bounds of a huge space
        roles = assign_roles(observation_space, image_keys, text_keys, ignore_keys)
        subspaces = observation_space.spaces

        def keys_with(role: str, explicit: Sequence[str] | None) -> list[str]:
            return list(explicit) if explicit is not None else [key for key in subspaces if roles[key] == role]

        image_key_list = keys_with("image", image_keys)
        text_key_list = keys_with("text", text_keys)
        vector_key_list = [key for key in subspaces if roles[key] == "vector"]

        image_inputs: list[tuple[str, ImageInput, ImageEncoder]] = []
        for key in image_key_list:
            image_space = subspaces[key]
            assert isinstance(image_space, spaces.Box)  # assign_roles gives the image role to Boxes only
            image_input = image_input_of(image_space, normalized_images, embed_cells, image_frames)
            grid = image_input.categories is not None
            stacked_channels, height, width = image_input.shape_CHW
            frame_shape = (stacked_channels // image_frames, height, width)
            encoder_name = resolve_image_encoder(image_encoder, frame_shape, grid)
            channels = image_channels
            if grid and image_encoder == "auto" and channels is None:
                channels = AUTO_GRID_CHANNELS
            if image_input.categories is None:
                encoder = build_image_encoder(encoder_name, frame_shape, channels)
                encoder.input_scale = image_input.scale
            else:
                encoder = build_image_encoder(encoder_name, (cell_dim, height, width), channels)
                encoder = encoder.embed_cells(image_input.categories, EMPTY_KINDS if blank_empty_cells else 0)
            if image_frames > 1:
                encoder = StackedFramesEncoder(encoder, image_frames)
            image_inputs.append((key, image_input, encoder))
        text_inputs: list[tuple[str, TextEncoder]] = []
        for key in text_key_list:
            space = subspaces[key]
            assert isinstance(space, spaces.Box) and space.shape is not None  # text keys are 1-D Boxes
            vocab_size = check_vocabulary(key, int(space.high.max()) + 1)
            text_class = text_encoder_class(text_encoder)
            text_inputs.append((key, text_class(vocab_size, space.shape[0], text_dim, **text_options)))
        vector_inputs: list[tuple[str, nn.Module]] = []
        for key in vector_key_list:
            flat_dim = get_flattened_obs_dim(subspaces[key])
            check_layer_parameters(f"the encoder of vector key {key[:100]!r}", flat_dim, vector_dim)
            vector_inputs.append((key, nn.Sequential(nn.Flatten(), nn.Linear(flat_dim, vector_dim), nn.ReLU())))
        if blank_empty_cells and not any(image_input.categories is not None for _, image_input, _ in image_inputs):
            raise ValueError(
                "blank_empty_cells=True reads integer-coded grids (MiniGrid's object/colour/state cells), and no "
                "image key is one here; leave it False (for an mmrl env, set env_kwargs image_mode=symbolic)"
            )
        if not image_inputs and not text_inputs and not vector_inputs:
            raise ValueError(f"no observation key left to encode in {observation_space} (roles: {roles})")
        grids = bool(image_inputs) and all(image_input.categories is not None for _, image_input, _ in image_inputs)
        fusion = resolve_fusion(fusion, len(image_inputs), len(text_inputs), grids)
        fusion_module = FUSIONS[fusion](
            [encoder.output_shape for _, _, encoder in image_inputs],
            [encoder.film_stages() for _, _, encoder in image_inputs],
            [encoder.output_dim for _, encoder in text_inputs],
            [vector_dim] * len(vector_inputs),
            fusion_dim,
            image_pool=image_pool,
        )

        expected_shapes = {key: tensor_shape(subspaces[key]) for key in subspaces}
        with torch.no_grad():
            dummy = {key: torch.zeros(1, *shape) for key, shape in expected_shapes.items()}
            for key, text_encoder_module in text_inputs:
                dummy[key].fill_(min(UNK_ID, text_encoder_module.vocab_size - 1))
            fused_dim = _fuse(dummy, image_inputs, text_inputs, vector_inputs, fusion_module, False).shape[1]
        if features_dim:
            check_layer_parameters("the final projection (fused features -> features_dim)", fused_dim, features_dim)
        head = nn.Sequential(nn.Linear(fused_dim, features_dim), nn.ReLU()) if features_dim else nn.Identity()

        super().__init__(observation_space, features_dim=features_dim or fused_dim)
        self.roles = roles
        self.image_keys = image_key_list
        self.text_keys = text_key_list
        self.vector_keys = vector_key_list
        self._vector_key_set = frozenset(vector_key_list)
        self.image_inputs = [image_input for _, image_input, _ in image_inputs]
        self.image_encoders = nn.ModuleList(encoder for _, _, encoder in image_inputs)
        self.text_encoders = nn.ModuleList(encoder for _, encoder in text_inputs)
        self.vector_encoders = nn.ModuleList(encoder for _, encoder in vector_inputs)
        self.fusion = fusion_module
        self.head = head
        self.cache_text = cache_text
        self.text_memos = [InferenceTextMemo() for _ in text_key_list]
        self.fused_dim = fused_dim
        self._expected_shapes = expected_shapes
        self._expected_keys = frozenset(subspaces)
        from mmrl.pretrain.loading import load_into  # pre-trained weights and freezing (a no-op by default)

        load_into(self, pretrained, freeze)

    @property
    def _space(self) -> spaces.Dict:
        """The observation space, as the Dict the constructor checked it is."""
        return cast(spaces.Dict, self._observation_space)

    def check_observations(self, observations: Mapping[str, torch.Tensor]) -> None:
        """Raises ``ValueError`` naming the key, expected space and actual tensor for a bad observation dict."""
        if not isinstance(observations, Mapping):
            raise ValueError(f"expected a dict of tensors for {self._observation_space}, got {type(observations)}")
        if observations.keys() != self._expected_keys:
            missing = sorted(self._expected_keys - observations.keys())
            unexpected = sorted(observations.keys() - self._expected_keys)
            if missing:
                raise ValueError(
                    f"observation key {missing[0]!r} is missing: expected {self._space[missing[0]]}, "
                    f"got keys {sorted(observations)}"
                )
            raise ValueError(
                f"unexpected observation key {unexpected[0]!r} (expected only the keys of {self._observation_space})"
            )
        batch_key: str | None = None
        batch_size = 0
        for key, tensor in observations.items():
            expected = self._expected_shapes[key]
            if not isinstance(tensor, torch.Tensor):
                raise ValueError(f"observation key {key!r}: expected a torch.Tensor, got {type(tensor).__name__}")
            # vector keys are flattened: SB3's rollout buffer hands Discrete keys over one-hot as (B, 1, n)
            mismatch = (
                math.prod(tensor.shape[1:]) != math.prod(expected)
                if key in self._vector_key_set
                else tensor.shape[1:] != expected
            )
            if mismatch:
                raise ValueError(
                    f"observation key {key!r}: expected a tensor of shape (B, {', '.join(map(str, expected))}) for "
                    f"space {self._space[key]}, got shape {tuple(tensor.shape)}"
                )
            if tensor.dtype == torch.bool or tensor.dtype.is_complex:
                raise ValueError(
                    f"observation key {key!r}: expected a real-valued tensor for space "
                    f"{self._space[key]}, got dtype {tensor.dtype}"
                )
            if tensor.is_floating_point() and key in self.text_keys:
                self.check_token_values(key, tensor)
            if batch_key is None:
                batch_key, batch_size = key, tensor.shape[0]
            elif tensor.shape[0] != batch_size:
                raise ValueError(
                    f"observation keys disagree on the batch size: {batch_key!r} has {batch_size} rows, {key!r} has "
                    f"{tensor.shape[0]} (shapes {tuple(observations[batch_key].shape)} and {tuple(tensor.shape)}); "
                    f"every key of one observation batch needs the same first dimension, so stack the same "
                    f"observations for every key"
                )

    def check_token_values(self, key: str, tokens: torch.Tensor) -> None:
        """Raises ``ValueError`` if a float tensor of token ids holds a value that is not a whole number.

        SB3 hands token ids over as floats; ``.long()`` would silently truncate ``2.7`` to ``2``. Integer tensors
        need no check; NaN and out-of-vocabulary ids are reported by the vocabulary check.
        """
        if torch.equal(tokens, tokens.trunc()):
            return
        finite = tokens[torch.isfinite(tokens)]
        fractional = finite[finite != finite.trunc()]
        if fractional.numel() == 0:
            return  # only NaN / inf: reported as ids outside the vocabulary
        raise ValueError(
            f"observation key {key!r}: token ids must be whole numbers, got {fractional[0].item():g} (dtype "
            f"{tokens.dtype}); ids are not rounded. Feed the integer ids of {TOKENIZE_WRAPPER} (int64, or floats "
            f"holding whole numbers as SB3 makes them)"
        )

    def _token_error(self, key: str, tokens: torch.Tensor) -> ValueError | None:
        """A ``ValueError`` describing the token ids of text key ``key`` outside its vocabulary, or ``None``.

        Called only after encoding failed, so its tensor ops cost nothing on the success path.
        """
        encoder = cast(TextEncoder, self.text_encoders[self.text_keys.index(key)])
        highest = encoder.vocab_size - 1
        try:
            tokens = tokens.detach()
            outside = ~((tokens >= 0) & (tokens <= highest))  # NaN compares False both ways: outside too
            if not bool(outside.any()):
                return None
            seen = torch.unique(tokens[outside]).cpu().tolist()
            low, high = tokens.min().item(), tokens.max().item()
        except (RuntimeError, TypeError):  # e.g. a CUDA context broken by a device-side assert: no diagnosis
            return None
        shown = ", ".join(f"{value:g}" for value in seen[:10]) + (
            f" and {len(seen) - 10} more" if len(seen) > 10 else ""
        )
        return ValueError(
            f"observation key {key!r}: token ids must lie in [0, {highest}] (the {encoder.vocab_size} ids of the "
            f"vocabulary declared by the space {self._space[key]}), got {shown} (min {low:g}, max "
            f"{high:g}). Tokenise the text with {TOKENIZE_WRAPPER} and feed the model ids of the vocabulary it was "
            f"built for (ids of another tokenizer or a larger vocabulary do not fit)"
        )

    def _diagnose(self, observations: Mapping[str, torch.Tensor], error: Exception) -> None:
        """Raises a ``ValueError`` explaining ``error`` (raised while encoding) if bad token ids caused it.

        Returns without raising when no cause is found; the caller then re-raises ``error``.
        """
        for key in self.text_keys:
            diagnosis = self._token_error(key, observations[key])
            if diagnosis is not None:
                raise diagnosis from error

    def encode_text(self, key: str, tokens: torch.Tensor) -> TextEncoding:
        """Encodes the token ids of text key ``key`` (honours ``cache_text``).

        Raises:
            ValueError: For token ids outside the vocabulary of ``key``'s space, or float ids that are not whole.
        """
        index = self.text_keys.index(key)
        if tokens.is_floating_point():
            self.check_token_values(key, tokens)
        try:
            return encode_text(
                cast(TextEncoder, self.text_encoders[index]), tokens, self.cache_text, self.text_memos[index]
            )
        except (IndexError, RuntimeError) as error:
            diagnosis = self._token_error(key, tokens)
            if diagnosis is not None:
                raise diagnosis from error
            raise

    def forward(self, observations: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Encodes and fuses a batch of observations into ``(B, features_dim)`` features.

        Raises:
            ValueError: For missing or unexpected keys, wrong shapes or dtypes, keys with different batch sizes, or
                token ids outside the vocabulary of their space (the message names the key and the fix).
        """
        self.check_observations(observations)
        try:
            fused_BF = _fuse(
                observations,
                list(
                    zip(self.image_keys, self.image_inputs, cast(list[ImageEncoder], self.image_encoders), strict=True)
                ),
                list(zip(self.text_keys, cast(list[TextEncoder], self.text_encoders), strict=True)),
                list(zip(self.vector_keys, self.vector_encoders, strict=True)),
                self.fusion,
                self.cache_text,
                self.text_memos,
            )
        except (IndexError, RuntimeError) as error:
            # Diagnosed only after a failure: no tensor op is added to the success path.
            self._diagnose(observations, error)
            raise
        return self.head(fused_BF)
