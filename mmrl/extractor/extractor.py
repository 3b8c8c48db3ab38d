"""``MultimodalExtractor``: an SB3 features extractor for Dict observations of images, token ids and vectors."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from mmrl.extractor.fusion import FUSIONS, Fusion
from mmrl.extractor.image_encoders import IMAGE_ENCODER_CHOICES, IMAGE_ENCODERS, ImageEncoder, resolve_image_encoder
from mmrl.extractor.snapshot import ParameterSnapshot
from mmrl.extractor.text_encoders import (
    TEXT_ENCODER_CHOICES,
    TextEncoder,
    TextEncoding,
    text_encoder_class,
    trim_padding,
)
from mmrl.tokenizer import PAD_ID, UNK_ID

#: Channel counts recognised at either end of an image shape (grey, RGB, RGBA/RGBD).
IMAGE_CHANNEL_COUNTS = (1, 3, 4)
TOKENIZE_WRAPPER = "mmrl.wrappers.TokenizeText"


def _check_choice(option: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {option} {value!r}; valid choices: {', '.join(choices)}")


def check_dimension(name: str, value: Any, none_allowed: bool = False) -> int:
    """Returns ``value`` as an ``int`` if it is an integer (Python or NumPy, not ``bool``) of at least 1.

    Args:
        name: Argument name, for the message.
        value: The width to check.
        none_allowed: Whether the caller also accepts ``None`` (only said in the message; check ``None`` first).

    Raises:
        TypeError: If ``value`` is not an integer (e.g. a float, a string or ``True``).
        ValueError: If ``value`` is below 1.
    """
    expected = "a positive int or None" if none_allowed else "a positive int"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be {expected} (a layer width), got {value!r} of type {type(value).__name__}; "
            f"pass an integer such as {name}=64"
        )
    if value < 1:
        raise ValueError(
            f"{name} must be {expected} (a layer width of at least 1), got {value!r}; a width of 0 builds a layer "
            f"without outputs, so pass e.g. {name}=64"
        )
    return int(value)


def image_channel_axis(shape: Sequence[int]) -> int:
    """Returns the channel axis (0 or 2) of a 3-D image shape.

    The channel axis is the end (first or last) whose size is 1, 3 or 4. If both ends qualify, the smaller one wins,
    and on a tie the first axis (SB3's ``is_image_space_channels_first`` makes the same call, so a space SB3 leaves
    untransposed is read the way SB3 reads it). If neither qualifies (e.g. stacked frames), the smaller end wins,
    again the first on a tie. MiniGrid's ``(7, 7, 3)`` is channel-last; SB3's transposed ``(3, 56, 56)`` is
    channel-first.
    """
    first, last = shape[0], shape[-1]
    first_ok, last_ok = first in IMAGE_CHANNEL_COUNTS, last in IMAGE_CHANNEL_COUNTS
    if first_ok != last_ok:
        return 0 if first_ok else 2
    return 0 if first <= last else 2


def _is_integer_box(space: spaces.Space) -> bool:
    return isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.integer)


def _looks_like_tokens(space: spaces.Space) -> bool:
    """1-D integer Box whose entries share one range ``[0, V-1]`` with ``V >= 2``."""
    return (
        _is_integer_box(space)
        and len(space.shape) == 1
        and bool(np.all(space.low == 0))
        and bool(np.all(space.high == space.high.flat[0]))
        and space.high.flat[0] >= 1
    )


def _tensor_shape(space: spaces.Space) -> tuple[int, ...]:
    """Per-sample shape of the tensor SB3's ``preprocess_obs`` makes from ``space`` (Discrete: one-hot)."""
    if isinstance(space, spaces.Box | spaces.MultiBinary):
        return tuple(space.shape)
    return (get_flattened_obs_dim(space),)


#: Largest per-channel value count for which an integer image is read as a grid of categories (see
#: :func:`cell_categories`).
MAX_CELL_CATEGORIES = 64


@dataclass(frozen=True)
class ImageInput:
    """How one image key's tensor becomes ``image_BCHW``: layout, scale, channel-first shape and, for integer-coded
    grids, the number of values of each channel (then the ids are embedded, not scaled)."""

    channels_last: bool
    scale: float
    shape_CHW: tuple[int, int, int]
    categories: tuple[int, ...] | None = None


def cell_categories(space: spaces.Box, channel_axis: int) -> tuple[int, ...] | None:
    """Values per channel if ``space`` is an integer-coded grid, else ``None``.

    A grid of categories is an integer ``Box`` with lower bound 0 everywhere, an upper bound that is the same at
    every pixel of a channel (it may differ between channels, like MiniGrid's object / colour / state ids once
    :class:`mmrl.wrappers.minigrid.MiniGridSymbolicImage` declares them, or mmrl's ``image_mode="symbolic"``), and
    at most :data:`MAX_CELL_CATEGORIES` values per channel. ``uint8`` images bounded by 255 are pictures.
    """
    if not np.issubdtype(space.dtype, np.integer) or not bool(np.all(space.low == 0)):
        return None
    high_CHW = np.moveaxis(np.asarray(space.high), channel_axis, 0).reshape(space.shape[channel_axis], -1)
    if not bool(np.all(high_CHW == high_CHW[:, :1])):
        return None
    highs = [int(value) for value in high_CHW[:, 0]]
    if max(highs) + 1 > MAX_CELL_CATEGORIES or min(highs) < 1:
        return None
    return tuple(high + 1 for high in highs)


def assign_roles(
    observation_space: spaces.Dict,
    image_keys: Sequence[str] | None = None,
    text_keys: Sequence[str] | None = None,
    ignore_keys: Sequence[str] | None = None,
) -> dict[str, str]:
    """Assigns each key of ``observation_space`` a role: ``"image"``, ``"text"``, ``"vector"`` or ``"ignore"``.

    Explicit lists win; keys in none of them are classified automatically (see :class:`MultimodalExtractor`).

    Raises:
        ValueError: For a non-Dict space, an unsupported subspace (with the wrapper to use), a listed key that is
            absent or in two lists, or a listed key whose space does not fit its role.
    """
    if not isinstance(observation_space, spaces.Dict):
        raise ValueError(
            f"MultimodalExtractor needs a gymnasium.spaces.Dict observation space of images and token ids, got "
            f"{observation_space}. Tokenise text observations with {TOKENIZE_WRAPPER} (it yields a Dict with an "
            f"image and a token-id key); for image-only Box observations use SB3's CnnPolicy"
        )
    subspaces = observation_space.spaces
    for key, subspace in subspaces.items():
        if isinstance(subspace, spaces.Text):
            raise ValueError(
                f"observation key {key!r} is a raw text space {subspace}; the extractor needs token ids "
                f"(a 1-D integer Box): wrap the env with {TOKENIZE_WRAPPER}"
            )
        if not isinstance(subspace, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
            raise ValueError(
                f"observation key {key!r} has unsupported space {subspace}; expected Box images, 1-D integer Box "
                f"token ids (see {TOKENIZE_WRAPPER}) or Box/Discrete/MultiDiscrete/MultiBinary vectors"
            )

    explicit: dict[str, str] = {}
    for role, keys in (("image", image_keys), ("text", text_keys), ("ignore", ignore_keys)):
        if isinstance(keys, str):
            raise ValueError(f"{role}_keys must be a list of keys, got the string {keys!r}")
        for key in keys or ():
            if key not in subspaces:
                raise ValueError(f"{role} key {key!r} is not in the observation space; keys: {list(subspaces)}")
            if key in explicit:
                raise ValueError(f"observation key {key!r} is listed as both {explicit[key]} and {role}")
            explicit[key] = role
    for key, role in explicit.items():
        subspace = subspaces[key]
        if role == "image" and not (isinstance(subspace, spaces.Box) and len(subspace.shape) == 3):
            raise ValueError(
                f"image key {key!r}: expected a 3-D Box (H, W, C) or (C, H, W), got {subspace} with shape "
                f"{getattr(subspace, 'shape', None)}"
            )
        if role == "text" and not (
            _is_integer_box(subspace) and len(subspace.shape) == 1 and bool(np.all(subspace.low >= 0))
        ):
            raise ValueError(
                f"text key {key!r}: expected a 1-D integer Box of token ids like Box(0, V-1, (L,), int64), got "
                f"{subspace}; tokenise text with {TOKENIZE_WRAPPER}"
            )

    roles: dict[str, str] = {}
    for key, subspace in subspaces.items():
        if key in explicit:
            roles[key] = explicit[key]
        elif image_keys is None and isinstance(subspace, spaces.Box) and len(subspace.shape) == 3:
            roles[key] = "image"
        elif text_keys is None and _looks_like_tokens(subspace):
            roles[key] = "text"
        else:
            roles[key] = "vector"
    return roles


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


#: Odd multipliers of the row hash used by :func:`unique_rows` (fixed, so results do not depend on a seed).
_ROW_HASH_WEIGHTS = torch.tensor(
    [0x9E3779B97F4A7C15 - (1 << 64), 0xC2B2AE3D27D4EB4F - (1 << 64), 0x165667B19E3779F9, 0x27D4EB2F165667C5],
    dtype=torch.int64,
)


def unique_rows(tokens_BL: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct rows of an integer matrix and the inverse index: ``unique_UL[inverse_B] == tokens_BL``.

    Same contract as ``torch.unique(tokens_BL, dim=0, return_inverse=True)`` (up to the order of the rows), which
    is slow on CPU (2 ms for 256 x 16 tokens, 18 ms for 2048 x 16): rows are hashed to one int64 each, the 1-D
    keys are deduplicated (0.4 ms / 1.2 ms), and the result is verified exactly; on a hash collision the function
    falls back to ``torch.unique(dim=0)``.
    """
    length = tokens_BL.shape[1]
    weights_L = _ROW_HASH_WEIGHTS.to(tokens_BL.device).repeat((length + 3) // 4)[:length]
    weights_L = weights_L * torch.arange(1, 2 * length, 2, device=tokens_BL.device)  # odd, distinct per position
    keys_B = (tokens_BL * weights_L).sum(dim=1)  # wraps around on overflow: a hash, checked below
    unique_keys_U, inverse_B = torch.unique(keys_B, return_inverse=True)
    representative_U = torch.empty_like(unique_keys_U).scatter_(
        0, inverse_B, torch.arange(tokens_BL.shape[0], device=tokens_BL.device)
    )
    unique_UL = tokens_BL[representative_U]
    if not torch.equal(unique_UL[inverse_B], tokens_BL):
        unique_UL, inverse_B = torch.unique(tokens_BL, dim=0, return_inverse=True)
    return unique_UL, inverse_B


#: Batches up to this size go to the inference memo row by row; larger ones are deduplicated on the tensor first.
MEMO_ROW_BY_ROW_MAX_BATCH = 64


class InferenceTextMemo:
    """Remembers sentence encodings across forward passes while gradients are off (rollouts, ``predict``).

    An instruction usually stays the same for a whole episode, so consecutive rollout steps re-encode the same
    rows. The memo keeps the previous batch whole (between episode ends a rollout batch repeats exactly, and the
    check costs one ``torch.equal``) and every encoded row by its token ids. Everything is dropped as soon as a
    parameter of the encoder holds a different value (an optimizer step, ``load_state_dict``, SB3's
    ``polyak_update`` through ``.data``: compared by value, see :class:`~mmrl.extractor.snapshot.ParameterSnapshot`),
    when the encoder switches between train and eval mode, or when ``max_entries`` rows are exceeded.

    The memo is a cache: pickling (``torch.save`` of a policy, ``copy.deepcopy``, sending a model to a subprocess)
    keeps only its configuration and the copy starts empty. The remembered :class:`TextEncoding` objects hold
    closures (computed on first access), which cannot be pickled, and tensors that are only valid for the
    parameters they were computed with.

    Args:
        max_entries: Largest number of remembered rows.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, tuple[torch.Tensor, TextEncoding, int]] = {}
        self._last: tuple[torch.Tensor, TextEncoding] | None = None
        self._training: bool | None = None
        self._snapshot = ParameterSnapshot()

    def __getstate__(self) -> dict[str, Any]:
        """Only the configuration: the remembered encodings are a cache (and hold unpicklable closures)."""
        return {"max_entries": self.max_entries}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Re-initialises an empty memo with the pickled configuration."""
        InferenceTextMemo.__init__(self, **state)

    def _refresh(self, encoder: TextEncoder, batch_size: int) -> None:
        """Drops everything if the encoder's parameters or mode changed (or the memo would grow too large)."""
        if (
            encoder.training is not self._training
            or not self._snapshot.matches([encoder])
            or len(self._entries) + batch_size > self.max_entries
        ):
            self._entries.clear()
            self._last = None
            self._training = encoder.training
            self._snapshot.take([encoder])

    def encode(self, encoder: TextEncoder, tokens: torch.Tensor) -> TextEncoding:
        """Encodes a batch of token ids (any dtype, as in :func:`encode_text`), reusing remembered encodings."""
        self._refresh(encoder, tokens.shape[0])
        last = self._last
        if (
            last is not None
            and last[0].shape == tokens.shape
            and last[0].dtype == tokens.dtype
            and last[0].device == tokens.device
            and torch.equal(last[0], tokens)
        ):
            return last[1]
        tokens_BL = trim_padding(tokens.long())
        if tokens_BL.shape[0] <= MEMO_ROW_BY_ROW_MAX_BATCH:
            encoding = self._encode_rows(encoder, tokens_BL)
        else:
            unique_UL, inverse_B = unique_rows(tokens_BL)
            encoding = self._encode_rows(encoder, unique_UL).index_select(inverse_B)
        self._last = (tokens.clone(), encoding)
        return encoding

    def _encode_rows(self, encoder: TextEncoder, tokens_BL: torch.Tensor) -> TextEncoding:
        """Looks rows up one by one, running ``encoder`` once on the distinct rows not remembered yet."""
        keys = [row.tobytes() for row in tokens_BL.cpu().numpy()]
        missing: dict[bytes, int] = {}
        for index, key in enumerate(keys):
            if key not in self._entries and key not in missing:
                missing[key] = index
        if missing:
            fresh = encoder(tokens_BL[list(missing.values())])
            for row, key in enumerate(missing):
                self._entries[key] = (fresh.sentence_BD[row], fresh, row)  # token vectors: read on demand
        rows = [self._entries[key] for key in keys]
        sentence_BD = torch.stack([sentence_D for sentence_D, _, _ in rows])
        return TextEncoding(
            sentence_BD,
            lambda: torch.stack([encoding.tokens_BLD[row] for _, encoding, row in rows]),
            lambda: tokens_BL == PAD_ID,
        )


def encode_text(
    encoder: TextEncoder, tokens: torch.Tensor, cache_text: bool = True, memo: InferenceTextMemo | None = None
) -> TextEncoding:
    """Encodes token ids (float or integer tensor ``tokens_BL``) with ``encoder``.

    Trailing all-PAD columns are trimmed first (:func:`trim_padding`), so ``tokens_BLD`` may be shorter than the
    token space. With ``cache_text``, each distinct row is encoded once (:func:`unique_rows`, a fast equivalent of
    ``torch.unique(tokens_BL, dim=0, return_inverse=True)``) and the encodings are scattered back with the inverse
    index; outputs and gradients equal the plain path up to float rounding. With a ``memo`` as well, and gradients
    off, rows encoded by an earlier call with unchanged parameters are not encoded again
    (:class:`InferenceTextMemo`). Encoders with ``deduplicate = False`` (the bag of words, one matrix product)
    skip all of this: the bookkeeping would cost more than the encoding.
    """
    if not encoder.deduplicate:
        return encoder(tokens.long())  # as cheap as the bookkeeping of the cache
    if cache_text and memo is not None and not torch.is_grad_enabled():
        return memo.encode(encoder, tokens)
    tokens_BL = trim_padding(tokens.long())
    if cache_text and tokens_BL.shape[0] > 1:
        unique_UL, inverse_B = unique_rows(tokens_BL)
        if unique_UL.shape[0] < tokens_BL.shape[0]:
            return encoder(unique_UL).index_select(inverse_B)
    return encoder(tokens_BL)


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
        image_encoder: ``"auto"``, ``"patch"``, ``"small"``, ``"nature"`` or ``"impala"``. ``"auto"`` picks
            ``"patch"`` below 64 pixels on the smaller side and ``"nature"`` from 64 on.
        text_encoder: ``"bow"``, ``"gru"``, ``"lstm"``, ``"conv"`` or ``"transformer"``.
        fusion: ``"concat"``, ``"sum"``, ``"weighted"``, ``"product"``, ``"gated"``, ``"film"`` or
            ``"cross_attention"`` (the last three need an image key and a text key).
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
            (:func:`cell_categories`) and embeds every cell (:class:`~mmrl.extractor.image_encoders.CellEmbedding`),
            ``False`` scales the ids to [0, 1] like pictures, ``True`` requires every image key to be such a grid.
        cell_dim: Width of the cell embeddings (the channels the image encoder reads).
        text_model: ``text_encoder="hf"`` only: a local Hugging Face model directory
            (:mod:`mmrl.extractor.hf_text`).
        text_vocabulary: ``text_encoder="hf"`` only: the words of token ids 2, 3, ... (default: mmrl's vocabulary).
        pretrained: A pre-trained encoder bundle (``mmrl pretrain --method autoencoder``) or a run directory
            (``--method bc``) whose weights are loaded (:func:`mmrl.pretrain.loading.load_into`).
        freeze: Parts that get no gradient: ``"none"``, ``"image"``, ``"text"`` or ``"all"`` (every encoder and the
            fusion).

    Raises:
        ValueError: For unsupported spaces, bad key lists, unknown option names (the message lists the choices), a
            width below 1, or a ``text_dim`` the Transformer's attention heads do not divide.
        TypeError: For a width (``features_dim``, ``text_dim``, ``vector_dim``, ``fusion_dim``, ``cell_dim``) that is
            not an integer (``bool`` included).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        features_dim: int | None = 128,
        image_encoder: str = "auto",
        text_encoder: str = "gru",
        fusion: str = "gated",
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
        text_model: str | None = None,
        text_vocabulary: list[str] | None = None,
        pretrained: str | None = None,
        freeze: str = "none",
    ) -> None:
        _check_choice("image_encoder", image_encoder, IMAGE_ENCODER_CHOICES)
        _check_choice("text_encoder", text_encoder, TEXT_ENCODER_CHOICES)
        _check_choice("fusion", fusion, tuple(FUSIONS))
        if features_dim is not None:
            features_dim = check_dimension("features_dim", features_dim, none_allowed=True)
        text_dim = check_dimension("text_dim", text_dim)
        vector_dim = check_dimension("vector_dim", vector_dim)
        fusion_dim = check_dimension("fusion_dim", fusion_dim)
        cell_dim = check_dimension("cell_dim", cell_dim)
        text_encoder_class(text_encoder).check_dimensions(text_dim)
        text_options = {"text_model": text_model, "vocabulary": text_vocabulary}
        text_options = {key: value for key, value in text_options.items() if value is not None}
        if text_options and not getattr(text_encoder_class(text_encoder), "reads_text_model", False):
            raise ValueError(f"text_model and text_vocabulary are read by text_encoder='hf' only, not {text_encoder!r}")
        roles = assign_roles(observation_space, image_keys, text_keys, ignore_keys)
        subspaces = observation_space.spaces

        def keys_with(role: str, explicit: Sequence[str] | None) -> list[str]:
            return list(explicit) if explicit is not None else [key for key in subspaces if roles[key] == role]

        image_key_list = keys_with("image", image_keys)
        text_key_list = keys_with("text", text_keys)
        vector_key_list = [key for key in subspaces if roles[key] == "vector"]

        image_inputs: list[tuple[str, ImageInput, ImageEncoder]] = []
        for key in image_key_list:
            image_input = self._image_input(subspaces[key], normalized_images, embed_cells)
            encoder_name = resolve_image_encoder(image_encoder, image_input.shape_CHW)
            if image_input.categories is None:
                encoder = IMAGE_ENCODERS[encoder_name](image_input.shape_CHW)
                encoder.input_scale = image_input.scale
            else:
                _, height, width = image_input.shape_CHW
                encoder = IMAGE_ENCODERS[encoder_name]((cell_dim, height, width)).embed_cells(image_input.categories)
            image_inputs.append((key, image_input, encoder))
        text_inputs: list[tuple[str, TextEncoder]] = []
        for key in text_key_list:
            space = subspaces[key]
            vocab_size = int(space.high.max()) + 1
            text_class = text_encoder_class(text_encoder)
            text_inputs.append((key, text_class(vocab_size, space.shape[0], text_dim, **text_options)))
        vector_inputs: list[tuple[str, nn.Module]] = [
            (key, nn.Sequential(nn.Flatten(), nn.Linear(get_flattened_obs_dim(subspaces[key]), vector_dim), nn.ReLU()))
            for key in vector_key_list
        ]
        if not image_inputs and not text_inputs and not vector_inputs:
            raise ValueError(f"no observation key left to encode in {observation_space} (roles: {roles})")
        fusion_module = FUSIONS[fusion](
            [encoder.output_shape for _, _, encoder in image_inputs],
            [list(encoder.stage_channels) for _, _, encoder in image_inputs],
            [encoder.output_dim for _, encoder in text_inputs],
            [vector_dim] * len(vector_inputs),
            fusion_dim,
        )

        expected_shapes = {key: _tensor_shape(subspaces[key]) for key in subspaces}
        with torch.no_grad():
            dummy = {key: torch.zeros(1, *shape) for key, shape in expected_shapes.items()}
            for key, _ in text_inputs:
                dummy[key].fill_(min(UNK_ID, int(subspaces[key].high.max())))
            fused_dim = _fuse(dummy, image_inputs, text_inputs, vector_inputs, fusion_module, False).shape[1]
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

    @staticmethod
    def _image_input(space: spaces.Box, normalized_images: bool, embed_cells: bool | None) -> ImageInput:
        channel_axis = image_channel_axis(space.shape)
        height, width = (space.shape[1], space.shape[2]) if channel_axis == 0 else (space.shape[0], space.shape[1])
        channels = space.shape[channel_axis]
        categories = cell_categories(space, channel_axis) if embed_cells is not False else None
        if embed_cells and categories is None:
            raise ValueError(
                f"embed_cells=True needs integer-coded image grids (integer Box, low 0, one upper bound per channel, "
                f"at most {MAX_CELL_CATEGORIES} values), got {space}; pass embed_cells=None to detect them"
            )
        if categories is not None:
            return ImageInput(channel_axis == 2, 1.0, (int(channels), int(height), int(width)), categories)
        if np.issubdtype(space.dtype, np.floating):
            scale = 1.0
        elif space.dtype == np.uint8 and bool(np.all(space.low == 0)) and bool(np.all(space.high == 255)):
            scale = 1.0 if normalized_images else 1.0 / 255.0
        else:
            high = float(np.max(space.high))
            scale = 1.0 / high if np.isfinite(high) and high > 0 else 1.0
        return ImageInput(channel_axis == 2, scale, (int(channels), int(height), int(width)))

    def check_observations(self, observations: Mapping[str, torch.Tensor]) -> None:
        """Raises ``ValueError`` naming the key, expected space and actual tensor for a bad observation dict."""
        if not isinstance(observations, Mapping):
            raise ValueError(f"expected a dict of tensors for {self._observation_space}, got {type(observations)}")
        if observations.keys() != self._expected_keys:
            missing = sorted(self._expected_keys - observations.keys())
            unexpected = sorted(observations.keys() - self._expected_keys)
            if missing:
                raise ValueError(
                    f"observation key {missing[0]!r} is missing: expected {self._observation_space[missing[0]]}, "
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
                    f"space {self._observation_space[key]}, got shape {tuple(tensor.shape)}"
                )
            if tensor.dtype == torch.bool or tensor.dtype.is_complex:
                raise ValueError(
                    f"observation key {key!r}: expected a real-valued tensor for space "
                    f"{self._observation_space[key]}, got dtype {tensor.dtype}"
                )
            if batch_key is None:
                batch_key, batch_size = key, tensor.shape[0]
            elif tensor.shape[0] != batch_size:
                raise ValueError(
                    f"observation keys disagree on the batch size: {batch_key!r} has {batch_size} rows, {key!r} has "
                    f"{tensor.shape[0]} (shapes {tuple(observations[batch_key].shape)} and {tuple(tensor.shape)}); "
                    f"every key of one observation batch needs the same first dimension, so stack the same "
                    f"observations for every key"
                )

    def _token_error(self, key: str, tokens: torch.Tensor) -> ValueError | None:
        """A ``ValueError`` describing the token ids of text key ``key`` outside its vocabulary, or ``None``.

        Called only after encoding failed, so its tensor ops cost nothing on the success path.
        """
        encoder = self.text_encoders[self.text_keys.index(key)]
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
            f"vocabulary declared by the space {self._observation_space[key]}), got {shown} (min {low:g}, max "
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
            ValueError: For token ids outside the vocabulary of ``key``'s space.
        """
        index = self.text_keys.index(key)
        try:
            return encode_text(self.text_encoders[index], tokens, self.cache_text, self.text_memos[index])
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
                list(zip(self.image_keys, self.image_inputs, self.image_encoders, strict=True)),
                list(zip(self.text_keys, self.text_encoders, strict=True)),
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
