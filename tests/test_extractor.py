"""Unit tests of ``mmrl.extractor``: shapes, roles, padding invariance, text cache, errors, save/load."""

from __future__ import annotations

import inspect
import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs

import mmrl
from mmrl.extractor import (
    FUSIONS,
    IMAGE_ENCODER_CHOICES,
    IMAGE_ENCODERS,
    TEXT_ENCODERS,
    MultimodalExtractor,
    assign_roles,
    image_channel_axis,
    policy_kwargs,
)
from mmrl.extractor.fusion import read_out
from mmrl.extractor.image_encoders import FiLMStage
from mmrl.extractor.text_cache import encode_text
from mmrl.tokenizer import PAD_ID

VOCAB_SIZE = 20
MAX_LENGTH = 16
REPO_ROOT = str(Path(__file__).resolve().parents[1])
SPATIAL_FUSIONS = ("gated", "film", "cross_attention")

torch.set_num_threads(1)


def contract_space(vocab_size: int = VOCAB_SIZE, max_length: int = MAX_LENGTH) -> spaces.Dict:
    """The observation space of mmrl's environments: 56x56 RGB image (channel-last uint8) + token ids."""
    return spaces.Dict(
        {
            "image": spaces.Box(0, 255, (56, 56, 3), np.uint8),
            "mission": spaces.Box(0, vocab_size - 1, (max_length,), np.int64),
        }
    )


def cell_grid_space() -> spaces.Dict:
    """A 7x7 MiniGrid-style grid of integer-coded cells (kind < 11, colour < 6, state < 4) and a mission."""
    high_CHW = np.broadcast_to(np.array([10, 5, 3], np.int64)[:, None, None], (3, 7, 7))
    return spaces.Dict(
        {
            "image": spaces.Box(0, high_CHW.copy(), dtype=np.int64),  # integer-coded cells: embedded
            "mission": spaces.Box(0, VOCAB_SIZE - 1, (MAX_LENGTH,), np.int64),
        }
    )


def random_observations(space: spaces.Dict, batch_size: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random batch as SB3's ``preprocess_obs`` hands it to the extractor (floats, one-hot, images / 255)."""
    space.seed(seed)
    samples = [space.sample() for _ in range(batch_size)]
    raw = {key: torch.as_tensor(np.stack([sample[key] for sample in samples])) for key in space.spaces}
    return preprocess_obs(raw, space)


def tokens(*ids: int, length: int = MAX_LENGTH) -> torch.Tensor:
    """One padded token row, shape ``(1, length)``."""
    return torch.tensor([list(ids) + [PAD_ID] * (length - len(ids))])


# --------------------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize(
    ("image_encoder", "text_encoder", "fusion"),
    list(itertools.product(IMAGE_ENCODER_CHOICES, TEXT_ENCODERS, FUSIONS)),
)
def test_every_combination_outputs_features_dim_on_contract(image_encoder: str, text_encoder: str, fusion: str):
    space = contract_space()
    extractor = MultimodalExtractor(
        space, features_dim=32, image_encoder=image_encoder, text_encoder=text_encoder, fusion=fusion
    )
    features = extractor(random_observations(space, batch_size=3))
    assert extractor.features_dim == 32
    assert features.shape == (3, 32)
    assert torch.isfinite(features).all()


OTHER_CONTRACTS = {
    "minigrid_7x7x3": spaces.Dict(
        {
            "image": spaces.Box(0, 255, (7, 7, 3), np.uint8),
            "direction": spaces.Discrete(4),
            "mission": spaces.Box(0, VOCAB_SIZE - 1, (8,), np.int64),
        }
    ),
    "channel_first": spaces.Dict(
        {"image": spaces.Box(0, 255, (3, 40, 40), np.uint8), "mission": spaces.Box(0, 9, (6,), np.int64)}
    ),
    "float_image": spaces.Dict(
        {"image": spaces.Box(0.0, 1.0, (20, 20, 3), np.float32), "mission": spaces.Box(0, 9, (6,), np.int64)}
    ),
    "extra_vectors": spaces.Dict(
        {
            "image": spaces.Box(0, 255, (16, 16, 3), np.uint8),
            "mission": spaces.Box(0, 9, (6,), np.int64),
            "position": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "carrying": spaces.MultiDiscrete([3, 5]),
        }
    ),
    "two_images_two_texts": spaces.Dict(
        {
            "front": spaces.Box(0, 255, (12, 12, 1), np.uint8),
            "top": spaces.Box(0, 255, (3, 16, 16), np.uint8),
            "mission": spaces.Box(0, 9, (6,), np.int64),
            "hint": spaces.Box(0, 14, (4,), np.int64),
        }
    ),
}


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize(
    "image_encoder",
    IMAGE_ENCODER_CHOICES,
)
@pytest.mark.parametrize("contract", OTHER_CONTRACTS)
def test_other_contracts(contract: str, image_encoder: str, fusion: str):
    space = OTHER_CONTRACTS[contract]
    if image_encoder == "nature" and contract != "channel_first":  # the others have images below 36x36
        with pytest.raises(ValueError, match="at least 36x36"):
            MultimodalExtractor(space, image_encoder=image_encoder, fusion=fusion)
        return
    extractor = MultimodalExtractor(
        space, features_dim=24, image_encoder=image_encoder, text_encoder="gru", fusion=fusion
    )
    features = extractor(random_observations(space, batch_size=2))
    assert features.shape == (2, 24)
    assert torch.isfinite(features).all()


def test_features_dim_none_returns_fused_vector():
    extractor = MultimodalExtractor(
        contract_space(), features_dim=None, fusion="concat", text_encoder="bow", text_dim=8
    )
    # patch CNN on 56x56: 8x8 stride-8 stem and a 3x3 layer -> 16 x 7 x 7 map, plus the 8-d bag of words
    assert extractor.features_dim == 16 * 7 * 7 + 8
    assert extractor(random_observations(contract_space(), 2)).shape == (2, extractor.features_dim)


@pytest.mark.parametrize(
    ("image_shape", "map_hw", "patch"),
    [((3, 56, 56), (7, 7), 8), ((3, 7, 7), (7, 7), 1), ((3, 16, 16), (8, 8), 2), ((1, 64, 48), (8, 6), 8)],
)
def test_patch_encoder_stem_embeds_each_tile_on_its_own(
    image_shape: tuple[int, int, int], map_hw: tuple[int, int], patch: int
):
    from mmrl.extractor.image_encoders import PatchCNN, resolve_image_encoder

    encoder = PatchCNN(image_shape)
    assert resolve_image_encoder("auto", image_shape) == "patch"
    assert encoder.output_shape == (16, *map_hw)
    if patch == 1:
        return  # a 7x7 grid keeps one feature per cell (3x3 stem)
    image = torch.rand(1, *image_shape)
    changed = image.clone()
    changed[:, :, patch : 2 * patch, 2 * patch : 3 * patch] += 1.0  # the tile at row 1, column 2
    stem = encoder.stages[0]
    with torch.no_grad():
        difference = (stem(changed) - stem(image)).abs().sum(dim=1)[0]
    assert difference[1, 2] > 0
    difference[1, 2] = 0
    assert torch.count_nonzero(difference) == 0


# ---------------------------------------------------------------------------------------------------------- roles


def test_automatic_roles_are_predictable():
    space = OTHER_CONTRACTS["minigrid_7x7x3"]
    assert assign_roles(space) == {"direction": "vector", "image": "image", "mission": "text"}
    extra = OTHER_CONTRACTS["extra_vectors"]
    assert assign_roles(extra) == {"carrying": "vector", "image": "image", "mission": "text", "position": "vector"}
    # A 1-D integer Box with mixed bounds is not a token row.
    mixed = spaces.Dict({"ids": spaces.Box(np.array([0, 0]), np.array([3, 5]), dtype=np.int64)})
    assert assign_roles(mixed) == {"ids": "vector"}


def test_explicit_roles_override_detection():
    space = contract_space()
    roles = assign_roles(space, text_keys=[], ignore_keys=["image"])
    assert roles == {"image": "ignore", "mission": "vector"}
    extractor = MultimodalExtractor(space, fusion="concat", text_keys=[], ignore_keys=["mission"])
    assert extractor.text_keys == [] and extractor.image_keys == ["image"] and extractor.vector_keys == []
    assert extractor(random_observations(space, 2)).shape == (2, 128)


@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((7, 7, 3), 2),
        ((3, 7, 7), 0),
        ((56, 56, 3), 2),
        ((3, 56, 56), 0),
        ((1, 84, 84), 0),
        ((84, 84, 4), 2),
        ((3, 4, 4), 0),
        ((4, 4, 3), 2),
        ((12, 32, 32), 0),
        ((32, 32, 12), 2),
    ],
)
def test_image_channel_axis(shape: tuple[int, int, int], axis: int):
    assert image_channel_axis(shape) == axis


def test_image_scaling():
    def scale_of(space: spaces.Box, **kwargs) -> float:
        extractor = MultimodalExtractor(spaces.Dict({"image": space}), fusion="concat", **kwargs)
        return extractor.image_inputs[0].scale

    assert scale_of(spaces.Box(0, 255, (8, 8, 3), np.uint8)) == 1.0  # SB3 divides by 255
    assert scale_of(spaces.Box(0, 255, (8, 8, 3), np.uint8), normalized_images=False) == pytest.approx(1 / 255)
    # a symbolic grid read as magnitudes (SB3 leaves it as is); by default it is embedded instead (next test)
    assert scale_of(spaces.Box(0, 10, (8, 8, 3), np.uint8), embed_cells=False) == pytest.approx(1 / 10)
    assert scale_of(spaces.Box(0, 300, (8, 8, 3), np.int64)) == pytest.approx(1 / 300)  # too many values to embed
    assert scale_of(spaces.Box(0.0, 1.0, (8, 8, 3), np.float32)) == 1.0


@pytest.mark.parametrize(
    "image_encoder",
    list(IMAGE_ENCODERS),
)
def test_scale_folded_into_the_first_conv_equals_scaling_the_image(image_encoder: str):
    """``normalized_images=False`` on raw pixels == ``True`` on pixels / 255: outputs and gradients, the latter up to
    1 % of each gradient's largest entry (float32 rounding can flip a ReLU whose input is near 0: up to 0.1 % over
    30 seeds; a wrong scale would be off by a factor of 255)."""
    torch.manual_seed(0)
    space = spaces.Dict({"image": spaces.Box(0, 255, (3, 40, 40), np.uint8)})
    folded = MultimodalExtractor(space, fusion="concat", image_encoder=image_encoder, normalized_images=False)
    divided = MultimodalExtractor(space, fusion="concat", image_encoder=image_encoder, normalized_images=True)
    divided.load_state_dict(folded.state_dict())
    assert folded.image_encoders[0].input_scale == pytest.approx(1 / 255)
    pixels = torch.randint(0, 256, (4, 3, 40, 40)).float()
    out_folded, out_divided = folded({"image": pixels}), divided({"image": pixels / 255.0})
    torch.testing.assert_close(out_folded, out_divided)
    out_folded.square().sum().backward()
    out_divided.square().sum().backward()
    for (name, a), (_, b) in zip(folded.named_parameters(), divided.named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-3, atol=1e-2 * float(b.grad.abs().max()), msg=name)


def test_policy_kwargs_leave_the_division_to_the_extractor():
    kwargs = policy_kwargs()
    assert kwargs["normalize_images"] is False
    assert kwargs["features_extractor_kwargs"]["normalized_images"] is False
    kwargs = policy_kwargs(normalized_images=True)
    assert kwargs["normalize_images"] is True
    assert kwargs["features_extractor_kwargs"]["normalized_images"] is True


def test_integer_coded_grids_are_embedded_cell_by_cell():
    from mmrl.extractor.cell_embedding import CellEmbedding
    from mmrl.extractor.roles import cell_categories

    high = np.broadcast_to(np.array([10, 5, 2], dtype=np.uint8), (7, 7, 3))
    grid = spaces.Box(np.zeros_like(high), high.copy(), dtype=np.uint8)  # MiniGridSymbolicImage's declaration
    assert cell_categories(grid, channel_axis=2) == (11, 6, 3)
    assert cell_categories(spaces.Box(0, 255, (8, 8, 3), np.uint8), channel_axis=2) is None  # a picture
    assert cell_categories(spaces.Box(0.0, 10.0, (8, 8, 3), np.float32), channel_axis=2) is None
    uneven = high.copy()
    uneven[0, 0, 0] = 9
    assert cell_categories(spaces.Box(np.zeros_like(high), uneven, dtype=np.uint8), channel_axis=2) is None

    space = spaces.Dict({"image": grid, "mission": spaces.Box(0, 9, (6,), np.int64)})
    extractor = MultimodalExtractor(space, fusion="gated", image_encoder="patch", cell_dim=8)
    assert extractor.image_inputs[0].categories == (11, 6, 3)
    embedding = extractor.image_encoders[0].cell_embedding
    assert isinstance(embedding, CellEmbedding) and embedding.embedding.num_embeddings == 11 + 6 + 3

    # One cell's vector is the sum of its three ids' vectors; ids of different channels never share a vector.
    ids_BCHW = torch.zeros(1, 3, 7, 7)
    ids_BCHW[0, :, 2, 3] = torch.tensor([5.0, 4.0, 1.0])
    vectors = embedding(ids_BCHW)
    table = embedding.embedding.weight
    torch.testing.assert_close(vectors[0, :, 2, 3], table[5] + table[11 + 4] + table[17 + 1])
    torch.testing.assert_close(vectors[0, :, 0, 0], table[0] + table[11] + table[17])
    # out-of-range ids are clamped into their own channel instead of failing or reading the next channel's table
    ids_BCHW[0, :, 2, 3] = torch.tensor([99.0, -3.0, 7.0])
    torch.testing.assert_close(embedding(ids_BCHW)[0, :, 2, 3], table[10] + table[11] + table[17 + 2])

    features = extractor(random_observations(space, 4))
    features.sum().backward()
    assert table.grad is not None and table.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="embed_cells=True needs integer-coded image grids"):
        MultimodalExtractor(contract_space(), embed_cells=True)


@pytest.mark.parametrize("image_encoder", ["patch", "factored", "factored_match"])
def test_blank_empty_cells_reads_no_colour_where_minigrid_codes_red(image_encoder: str):
    from mmrl.extractor.cell_embedding import EMPTY_KINDS, CellEmbedding

    high = np.broadcast_to(np.array([10, 5, 2], dtype=np.uint8), (5, 5, 3))
    grid = spaces.Box(np.zeros_like(high), high.copy(), dtype=np.uint8)
    space = spaces.Dict({"image": grid, "mission": spaces.Box(0, 9, (6,), np.int64)})
    ids_BCHW = torch.zeros(1, 3, 5, 5)
    ids_BCHW[0, :, 0, 0] = torch.tensor([1.0, 0.0, 0.0])  # empty: MiniGrid's colour 0 (red), state 0
    ids_BCHW[0, :, 0, 1] = torch.tensor([5.0, 0.0, 0.0])  # a red key
    ids_BCHW[0, :, 0, 2] = torch.tensor([0.0, 3.0, 2.0])  # unseen, whatever the other codes say
    ids_BCHW[0, :, 0, 3] = torch.tensor([1.0, 0.0, 2.0])  # empty with another state
    dim = 4

    def colour_and_state(embedding: CellEmbedding, column: int) -> torch.Tensor:
        vectors = embedding(ids_BCHW)[0, :, 0, column]
        return (
            vectors[dim:]
            if embedding.combine == "concat"
            else vectors - embedding.embedding.weight[int(ids_BCHW[0, 0, 0, column])]
        )

    blanked = MultimodalExtractor(
        space, image_encoder=image_encoder, fusion="film", cell_dim=dim, blank_empty_cells=True
    )
    embedding = blanked.image_encoders[0].cell_embedding
    assert isinstance(embedding, CellEmbedding) and embedding.blank_kinds == EMPTY_KINDS
    assert embedding.embedding.num_embeddings == 11 + (6 + 1) + (3 + 1)  # one "none" value per later channel
    empty = colour_and_state(embedding, 0)
    torch.testing.assert_close(colour_and_state(embedding, 2), empty)  # unseen and empty: the same "none"
    torch.testing.assert_close(colour_and_state(embedding, 3), empty)
    assert not torch.allclose(colour_and_state(embedding, 1), empty)  # only the key reads red
    blanked(random_observations(space, 3)).sum().backward()  # trains end to end

    plain = MultimodalExtractor(space, image_encoder=image_encoder, fusion="film", cell_dim=dim)
    embedding = plain.image_encoders[0].cell_embedding
    assert isinstance(embedding, CellEmbedding) and embedding.embedding.num_embeddings == 11 + 6 + 3
    torch.testing.assert_close(colour_and_state(embedding, 0), colour_and_state(embedding, 1))  # empty reads red


def test_blank_empty_cells_refuses_pictures_and_non_bools():
    from mmrl.extractor.cell_embedding import CellEmbedding

    with pytest.raises(ValueError, match="blank_empty_cells=True reads integer-coded grids"):
        MultimodalExtractor(contract_space(), blank_empty_cells=True)
    high = np.broadcast_to(np.array([10, 5, 2], dtype=np.uint8), (5, 5, 3))
    grid = spaces.Box(np.zeros_like(high), high.copy(), dtype=np.uint8)
    with pytest.raises(TypeError, match="blank_empty_cells must be True or False"):
        MultimodalExtractor(spaces.Dict({"image": grid}), blank_empty_cells="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least two channels"):
        CellEmbedding((11,), 4, blank_kinds=2)


def test_auto_picks_the_factored_film_network_on_grids_and_gated_attention_on_pictures():
    from mmrl.extractor.fusion import ConcatFusion, FiLMFusion, GatedAttentionFusion
    from mmrl.extractor.image_encoders import AUTO_GRID_CHANNELS, FactoredCNN, PatchCNN

    high = np.broadcast_to(np.array([10, 5, 2], dtype=np.uint8), (7, 7, 3))
    grid = spaces.Box(np.zeros_like(high), high.copy(), dtype=np.uint8)
    mission = spaces.Box(0, 9, (6,), np.int64)
    picture = spaces.Box(0, 255, (7, 7, 3), np.uint8)

    on_grid = MultimodalExtractor(spaces.Dict({"image": grid, "mission": mission}))
    assert isinstance(on_grid.image_encoders[0], FactoredCNN) and isinstance(on_grid.fusion, FiLMFusion)
    assert on_grid.image_encoders[0].stage_channels == [AUTO_GRID_CHANNELS] * 2
    on_picture = MultimodalExtractor(spaces.Dict({"image": picture, "mission": mission}))
    assert isinstance(on_picture.image_encoders[0], PatchCNN)
    assert isinstance(on_picture.fusion, GatedAttentionFusion)
    no_text = MultimodalExtractor(spaces.Dict({"image": grid}))
    assert isinstance(no_text.image_encoders[0], FactoredCNN) and isinstance(no_text.fusion, ConcatFusion)

    # explicit choices override every part of the rule
    wide = MultimodalExtractor(spaces.Dict({"image": grid, "mission": mission}), image_channels=16)
    assert wide.image_encoders[0].stage_channels == [18, 16]  # the first layer rounds up to the 3 attributes
    patch = MultimodalExtractor(spaces.Dict({"image": grid, "mission": mission}), image_encoder="patch")
    assert isinstance(patch.image_encoders[0], PatchCNN) and isinstance(patch.fusion, FiLMFusion)
    gated = MultimodalExtractor(spaces.Dict({"image": grid, "mission": mission}), fusion="gated")
    assert isinstance(gated.image_encoders[0], FactoredCNN) and isinstance(gated.fusion, GatedAttentionFusion)
    scaled = MultimodalExtractor(spaces.Dict({"image": grid, "mission": mission}), embed_cells=False)
    assert isinstance(scaled.image_encoders[0], PatchCNN) and isinstance(scaled.fusion, GatedAttentionFusion)


def test_channel_last_and_channel_first_inputs_agree():
    last = MultimodalExtractor(spaces.Dict({"image": spaces.Box(0.0, 1.0, (20, 20, 3), np.float32)}), fusion="concat")
    first = MultimodalExtractor(spaces.Dict({"image": spaces.Box(0.0, 1.0, (3, 20, 20), np.float32)}), fusion="concat")
    first.load_state_dict(last.state_dict())
    image_BHWC = torch.rand(2, 20, 20, 3)
    torch.testing.assert_close(last({"image": image_BHWC}), first({"image": image_BHWC.permute(0, 3, 1, 2)}))


# ---------------------------------------------------------------------------------------------------------- text


@pytest.mark.parametrize("text_encoder", TEXT_ENCODERS)
def test_word_order_matters_except_for_the_bag_of_words(text_encoder: str):
    """ "red ball ... blue door" and "blue ball ... red door" hold the same words: only order tells them apart."""
    torch.manual_seed(0)
    encoder = TEXT_ENCODERS[text_encoder](VOCAB_SIZE, MAX_LENGTH, 16).eval()
    red, ball, blue, door, after = 3, 4, 5, 6, 7
    first = encoder(tokens(red, ball, after, blue, door)).sentence_BD
    second = encoder(tokens(blue, ball, after, red, door)).sentence_BD
    if text_encoder == "bow":
        torch.testing.assert_close(first, second)
    else:
        assert (first - second).abs().max() > 1e-3


@pytest.mark.parametrize("text_encoder", TEXT_ENCODERS)
def test_padding_never_changes_the_encoding(text_encoder: str):
    torch.manual_seed(0)
    encoder = TEXT_ENCODERS[text_encoder](VOCAB_SIZE, MAX_LENGTH, 16).eval()
    sentence = (5, 3, 9, 2, 7)
    short = encoder(tokens(*sentence, length=8))
    long = encoder(tokens(*sentence, length=16))
    torch.testing.assert_close(short.sentence_BD, long.sentence_BD)
    torch.testing.assert_close(short.tokens_BLD, long.tokens_BLD[:, :8])
    empty = encoder(torch.zeros(3, MAX_LENGTH, dtype=torch.long))
    assert torch.isfinite(empty.sentence_BD).all() and torch.isfinite(empty.tokens_BLD).all()
    assert not empty.sentence_BD.any()


@pytest.mark.parametrize("vocab_size", [VOCAB_SIZE, 5000])
def test_bag_of_words_is_the_mean_embedding_of_the_real_tokens(vocab_size: int):
    """Both implementations (word frequencies x table for small vocabularies, ``embedding_bag`` for large ones)
    equal a plain masked mean, in values and in the table's gradient (PAD gets none)."""
    torch.manual_seed(0)
    encoder = TEXT_ENCODERS["bow"](vocab_size, MAX_LENGTH, 8)
    tokens_BL = torch.cat([tokens(3, 4, 3), tokens(vocab_size - 1), tokens(), tokens(*range(1, 17))])
    sentence_BD = encoder(tokens_BL).sentence_BD
    weights_BD = torch.linspace(-1, 1, sentence_BD.numel()).view_as(sentence_BD)
    (sentence_BD * weights_BD).sum().backward()
    table = encoder.embedding.weight.detach().clone().requires_grad_(True)
    real_BL1 = (tokens_BL != PAD_ID).unsqueeze(-1).float()
    expected_BD = (table[tokens_BL] * real_BL1).sum(1) / real_BL1.sum(1).clamp(min=1)
    (expected_BD * weights_BD).sum().backward()
    torch.testing.assert_close(sentence_BD, expected_BD)
    torch.testing.assert_close(encoder.embedding.weight.grad, table.grad)
    assert not sentence_BD[2].any() and not encoder.embedding.weight.grad[PAD_ID].any()


@pytest.mark.parametrize("fusion", FUSIONS)
def test_all_pad_instructions_give_finite_features(fusion: str):
    space = contract_space()
    extractor = MultimodalExtractor(space, fusion=fusion, text_encoder="transformer")
    observations = random_observations(space, 3)
    observations["mission"] = torch.zeros_like(observations["mission"])
    features = extractor(observations)
    features.sum().backward()
    assert torch.isfinite(features).all()
    assert all(torch.isfinite(p.grad).all() for p in extractor.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    ("text_encoder", "fusion"), [(t, "film") for t in TEXT_ENCODERS] + [("gru", "cross_attention")]
)
def test_text_cache_gives_identical_outputs_and_gradients(text_encoder: str, fusion: str):
    space = contract_space()
    torch.manual_seed(0)
    cached = MultimodalExtractor(space, text_encoder=text_encoder, fusion=fusion, cache_text=True)
    plain = MultimodalExtractor(space, text_encoder=text_encoder, fusion=fusion, cache_text=False)
    plain.load_state_dict(cached.state_dict())
    observations = random_observations(space, 8)
    instructions = torch.cat([tokens(4, 5, 6), tokens(7, 8), tokens(4, 5, 6), torch.zeros(1, MAX_LENGTH).long()])
    observations["mission"] = instructions[torch.tensor([0, 1, 2, 0, 3, 1, 0, 3])].float()

    outputs = [model(observations) for model in (cached, plain)]
    torch.testing.assert_close(outputs[0], outputs[1])
    for output in outputs:
        (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum().backward()
    for (name, cached_param), plain_param in zip(cached.named_parameters(), plain.parameters(), strict=True):
        assert cached_param.grad is not None, name
        torch.testing.assert_close(cached_param.grad, plain_param.grad, msg=name)


def test_cache_encodes_each_distinct_row_once():
    encoder = TEXT_ENCODERS["gru"](VOCAB_SIZE, MAX_LENGTH, 8)
    batch_sizes = []
    encoder.register_forward_pre_hook(lambda module, args: batch_sizes.append(args[0].shape[0]))
    encode_text(encoder, torch.cat([tokens(2, 3)] * 5 + [tokens(4)] * 3).float(), cache_text=True)
    encode_text(encoder, torch.cat([tokens(2, 3)] * 5 + [tokens(4)] * 3).float(), cache_text=False)
    assert batch_sizes == [2, 8]
    # The bag of words is a gather per token: deduplicating would cost more than it saves, so it sees every row.
    bow = TEXT_ENCODERS["bow"](VOCAB_SIZE, MAX_LENGTH, 8)
    bow_batch_sizes = []
    bow.register_forward_pre_hook(lambda module, args: bow_batch_sizes.append(args[0].shape[0]))
    encode_text(bow, torch.cat([tokens(2, 3)] * 5 + [tokens(4)] * 3).float(), cache_text=True)
    assert bow_batch_sizes == [8]


def test_inference_memo_reuses_encodings_until_parameters_change():
    space = contract_space()
    torch.manual_seed(0)
    extractor = MultimodalExtractor(space, text_encoder="gru", fusion="film")
    plain = MultimodalExtractor(space, text_encoder="gru", fusion="film", cache_text=False)
    plain.load_state_dict(extractor.state_dict())
    encoded_rows = []
    extractor.text_encoders[0].register_forward_pre_hook(lambda module, args: encoded_rows.append(args[0].shape[0]))
    observations = random_observations(space, 4)
    observations["mission"] = torch.cat([tokens(4, 5), tokens(6), tokens(4, 5), tokens(7)]).float()
    with torch.no_grad():
        first = extractor(observations)
        second = extractor(observations)
        torch.testing.assert_close(first, plain(observations))
        torch.testing.assert_close(second, first)
        swapped = {**observations, "mission": observations["mission"].flip(0)}
        torch.testing.assert_close(extractor(swapped), plain(swapped))
    assert encoded_rows == [3]  # three distinct rows, encoded once across three forward passes

    optimizer = torch.optim.SGD(extractor.parameters(), lr=0.1)
    extractor(observations).sum().backward()  # gradients on: the memo is not used
    optimizer.step()
    plain.load_state_dict(extractor.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(extractor(observations), plain(observations))
    assert encoded_rows == [3, 3, 3]

    large = random_observations(space, 100)
    large["mission"] = observations["mission"][torch.arange(100) % 4]  # deduplicated on the tensor first
    with torch.no_grad():
        torch.testing.assert_close(extractor(large), plain(large))
    assert encoded_rows == [3, 3, 3]  # still remembered


@pytest.mark.parametrize(("text_encoder", "fusion"), [("gru", "gated"), ("gru", "film"), ("conv", "concat")])
def test_text_memo_sees_parameters_changed_behind_autograd(text_encoder: str, fusion: str):
    """SB3's ``polyak_update`` (DQN target networks) writes through ``.data`` and ``load_state_dict(assign=True)``
    swaps the parameter objects: neither bumps a version counter, and the memo must still notice."""
    from stable_baselines3.common.utils import polyak_update

    space = contract_space()
    torch.manual_seed(0)
    target = MultimodalExtractor(space, text_encoder=text_encoder, fusion=fusion)
    online = MultimodalExtractor(space, text_encoder=text_encoder, fusion=fusion)
    plain = MultimodalExtractor(space, text_encoder=text_encoder, fusion=fusion, cache_text=False)
    observations = random_observations(space, 4)
    observations["mission"] = torch.cat([tokens(4, 5), tokens(6), tokens(4, 5), tokens(7)]).float()
    with torch.no_grad():
        target(observations)
        polyak_update(online.parameters(), target.parameters(), 1.0)
        plain.load_state_dict(target.state_dict())
        torch.testing.assert_close(target(observations), plain(observations))
        fresh = MultimodalExtractor(space, text_encoder=text_encoder, fusion=fusion)
        target.load_state_dict(fresh.state_dict(), assign=True)
        torch.testing.assert_close(target(observations), fresh(observations))


def test_text_only_features_do_not_alias_the_memo():
    space = spaces.Dict({"mission": contract_space()["mission"]})
    extractor = MultimodalExtractor(space, text_encoder="gru", fusion="concat", features_dim=None)
    observations = {"mission": tokens(4, 5).float()}
    with torch.no_grad():
        first = extractor(observations)
        expected = first.clone()
        first.zero_()
        torch.testing.assert_close(extractor(observations), expected)


# --------------------------------------------------------------------------------------------------------- errors


def test_forward_rejects_missing_unexpected_and_misshapen_keys():
    space = contract_space()
    extractor = MultimodalExtractor(space, text_encoder="bow")
    observations = random_observations(space, 2)
    with pytest.raises(ValueError, match=r"'mission' is missing.*Box\(0, 19, \(16,\), int64\)"):
        extractor({"image": observations["image"]})
    with pytest.raises(ValueError, match="unexpected observation key 'extra'"):
        extractor({**observations, "extra": torch.zeros(2, 3)})
    with pytest.raises(
        ValueError, match=r"'image'.*\(B, 56, 56, 3\).*Box\(0, 255, \(56, 56, 3\), uint8\).*\(2, 3, 56, 56\)"
    ):
        extractor({**observations, "image": observations["image"].permute(0, 3, 1, 2)})
    with pytest.raises(ValueError, match=r"'mission'.*\(B, 16\).*got shape \(2, 8\)"):
        extractor({**observations, "mission": observations["mission"][:, :8]})
    with pytest.raises(ValueError, match=r"'mission'.*real-valued.*torch\.bool"):
        extractor({**observations, "mission": observations["mission"] > 0})


def test_bad_spaces_name_the_key_and_the_wrapper():
    with pytest.raises(ValueError, match=r"'mission' is a raw text space.*mmrl\.wrappers\.TokenizeText"):
        MultimodalExtractor(spaces.Dict({"image": spaces.Box(0, 255, (8, 8, 3), np.uint8), "mission": spaces.Text(20)}))
    with pytest.raises(ValueError, match=r"Dict observation space.*mmrl\.wrappers\.TokenizeText"):
        MultimodalExtractor(spaces.Box(0, 255, (8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"text key 'mission'.*1-D integer Box.*float32"):
        MultimodalExtractor(
            spaces.Dict({"mission": spaces.Box(0.0, 9.0, (6,), np.float32)}), text_keys=["mission"], fusion="concat"
        )
    with pytest.raises(ValueError, match=r"image key 'mission'.*3-D Box.*\(16,\)"):
        MultimodalExtractor(contract_space(), image_keys=["mission"])
    with pytest.raises(ValueError, match="'goal' is not in the observation space"):
        MultimodalExtractor(contract_space(), text_keys=["goal"])
    with pytest.raises(ValueError, match="'mission' has unsupported space"):
        MultimodalExtractor(spaces.Dict({"mission": spaces.Tuple([spaces.Discrete(2)])}))


@pytest.mark.parametrize("fusion", SPATIAL_FUSIONS)
def test_conditioning_fusions_need_image_and_text(fusion: str):
    with pytest.raises(ValueError, match=f"fusion='{fusion}'.*one image key and one text key"):
        MultimodalExtractor(contract_space(), fusion=fusion, text_keys=[])


@pytest.mark.parametrize(
    ("option", "choices"),
    [
        ("fusion", "auto, concat, sum, weighted, product, gated, film, cross_attention"),
        ("text_encoder", "bow, gru, lstm, conv, transformer"),
        ("image_encoder", "auto, patch, small, nature, impala, pointwise, factored"),
        ("image_pool", "none, max, mean, sum, max_sum"),
    ],
)
def test_bad_option_names_list_the_choices(option: str, choices: str):
    with pytest.raises(ValueError, match=f"unknown {option} 'foo'; valid choices: {choices}"):
        MultimodalExtractor(contract_space(), **{option: "foo"})
    with pytest.raises(ValueError, match=f"unknown {option} 'foo'; valid choices: {choices}"):
        policy_kwargs(**{option: "foo"})


# ------------------------------------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("pool", ["none", "max", "mean", "sum", "max_sum"])
def test_read_out_flattens_or_pools_each_channel_over_positions(pool: str):
    feature_map_BCHW = torch.randn(2, 3, 4, 5)
    cells_BCP = feature_map_BCHW.reshape(2, 3, 20)
    scaled_sum = cells_BCP.sum(dim=2) / 20**0.5  # the scale of one cell's features times sqrt(positions)
    expected = {
        "none": feature_map_BCHW.reshape(2, 60),
        "max": cells_BCP.max(dim=2).values,
        "mean": cells_BCP.mean(dim=2),
        "sum": scaled_sum,
        "max_sum": torch.cat([cells_BCP.max(dim=2).values, scaled_sum], dim=1),
    }[pool]
    assert torch.allclose(read_out(feature_map_BCHW, pool), expected)


def symbolic_scene_space() -> spaces.Dict:
    """A 7x7 integer-coded scene (kind, colour, state codes) and token ids, as VisualQuery's symbolic view."""
    return spaces.Dict(
        {
            "image": spaces.Box(0, np.array([10, 5, 3], dtype=np.uint8)[:, None, None] * np.ones((3, 7, 7), np.uint8)),
            "mission": spaces.Box(0, VOCAB_SIZE - 1, (MAX_LENGTH,), np.int64),
        }
    )


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("pool", ["max", "mean", "sum", "max_sum"])
def test_pooled_maps_do_not_depend_on_where_the_objects_are(fusion: str, pool: str):
    """With the per-cell encoder and a pooled read-out, moving objects to other cells changes nothing."""
    torch.manual_seed(0)
    extractor = MultimodalExtractor(
        symbolic_scene_space(), fusion=fusion, image_encoder="pointwise", image_pool=pool, text_encoder="bow"
    )
    extractor.eval()
    image = torch.zeros(1, 3, 7, 7)
    image[0, 0] = 1  # empty floor
    image[0, :, 2, 3] = torch.tensor([6.0, 2.0, 0.0])  # a blue ball
    image[0, :, 5, 1] = torch.tensor([5.0, 0.0, 0.0])  # a red key
    moved = image.clone()
    moved[0, :, 2, 3], moved[0, :, 5, 1] = image[0, :, 1, 1], image[0, :, 1, 1]
    moved[0, :, 4, 4], moved[0, :, 1, 5] = image[0, :, 2, 3], image[0, :, 5, 1]
    mission = tokens(3, 4, 5).float()
    with torch.no_grad():
        features = extractor({"image": image, "mission": mission})
        features_moved = extractor({"image": moved, "mission": mission})
    if fusion == "cross_attention":  # learned position embeddings: positions matter by design
        assert not torch.allclose(features, features_moved)
    else:
        assert torch.allclose(features, features_moved, atol=1e-5)


def test_sum_pool_counts_objects_with_the_pointwise_encoder():
    """Each added object adds the same vector to the summed map: the read-out is linear in the count."""
    torch.manual_seed(0)
    extractor = MultimodalExtractor(
        symbolic_scene_space(), fusion="concat", image_encoder="pointwise", image_pool="sum", features_dim=None
    )
    image_maps = []
    for count in range(4):
        image = torch.zeros(1, 3, 7, 7)
        image[0, 0] = 1
        for column in range(count):
            image[0, :, 3, 1 + column] = torch.tensor([6.0, 2.0, 0.0])
        encoder = extractor.image_encoders[0]
        with torch.no_grad():
            image_maps.append(read_out(encoder.trunk(image), "sum"))
    steps = [image_maps[i + 1] - image_maps[i] for i in range(3)]
    assert torch.allclose(steps[0], steps[1], atol=1e-4) and torch.allclose(steps[1], steps[2], atol=1e-4)
    assert steps[0].abs().sum() > 0


def test_pointwise_encoder_never_mixes_neighbouring_cells():
    torch.manual_seed(0)
    encoder = IMAGE_ENCODERS["pointwise"]((3, 7, 7))
    image = torch.rand(1, 3, 7, 7)
    changed = image.clone()
    changed[0, :, 3, 3] += 1.0
    with torch.no_grad():
        difference = (encoder(image) - encoder(changed)).abs().sum(dim=1)[0]
    assert difference[3, 3] > 0
    difference[3, 3] = 0
    assert torch.all(difference == 0)


# -------------------------------------------------------------------------------------------------- SB3 integration


def test_policy_kwargs_are_json_friendly_and_exported():
    kwargs = mmrl.policy_kwargs(fusion="gated", text_encoder="bow", text_dim=32, ignore_keys=["extra"])
    assert kwargs["features_extractor_class"] is mmrl.MultimodalExtractor
    assert json.loads(json.dumps(kwargs["features_extractor_kwargs"])) == kwargs["features_extractor_kwargs"]
    assert kwargs["features_extractor_kwargs"]["fusion"] == "gated"
    assert set(IMAGE_ENCODERS) <= set(IMAGE_ENCODER_CHOICES)


class ContractEnv(gym.Env):
    """Tiny env with the mmrl Dict contract; the instruction picks which image half to report."""

    def __init__(self, image_size: int = 56) -> None:
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                "mission": spaces.Box(0, VOCAB_SIZE - 1, (MAX_LENGTH,), np.int64),
            }
        )
        self.action_space = spaces.Discrete(3)

    def _observation(self) -> dict[str, np.ndarray]:
        return self.observation_space.sample()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.observation_space.seed(int(self.np_random.integers(2**31)))
        return self._observation(), {}

    def step(self, action: int):
        return self._observation(), float(action == 1), True, False, {}


def action_scores(model, observations: dict[str, np.ndarray]) -> np.ndarray:
    """Action probabilities (PPO, A2C) or Q-values (DQN) of a batch of raw observations."""
    import torch as th

    tensors, _ = model.policy.obs_to_tensor(observations)
    with th.no_grad():
        if hasattr(model, "q_net"):
            return model.q_net(tensors).numpy()
        return model.policy.get_distribution(tensors).distribution.probs.numpy()


def test_film_starts_near_identity_after_sb3_orthogonal_init():
    """SB3's ``ortho_init`` zeroes every Linear bias; FiLM's gamma must still start around 1, not 0."""
    from stable_baselines3 import PPO

    model = PPO(
        "MultiInputPolicy", ContractEnv(), n_steps=8, batch_size=8, policy_kwargs=policy_kwargs(fusion="film"), seed=0
    )
    extractor = model.policy.features_extractor
    assert all(not generator.bias.any() for generator in extractor.fusion.generators.values())  # SB3 re-init
    observations = random_observations(extractor._observation_space, 16)
    with torch.no_grad():
        texts = [extractor.encode_text("mission", observations["mission"])]
        modulations = [m for m in extractor.fusion.modulations(texts)[0] if m is not None]
    assert len(modulations) == len(extractor.image_encoders[0].stages) - 1  # every stage after the stem
    gamma = torch.cat([gamma_BC11.flatten() for gamma_BC11, _ in modulations])
    beta = torch.cat([beta_BC11.flatten() for _, beta_BC11 in modulations])
    assert abs(gamma.mean().item() - 1.0) < 0.1
    assert abs(beta.mean().item()) < 0.1


ROUND_TRIP_SCRIPT = (
    "import numpy as np\n"
    + inspect.getsource(action_scores)
    + textwrap.dedent(
        """
    import sys
    import numpy as np
    from stable_baselines3 import A2C, DQN, PPO

    directory = sys.argv[1]
    observations = dict(np.load(directory + "/observations.npz"))
    for name, algorithm in (("PPO", PPO), ("A2C", A2C), ("DQN", DQN)):
        model = algorithm.load(directory + "/" + name + ".zip", device="cpu")
        actions, _ = model.predict(observations, deterministic=True)
        np.save(directory + "/" + name + "_loaded.npy", actions)
        np.save(directory + "/" + name + "_loaded_scores.npy", action_scores(model, observations))
    """
    )
)


def test_save_load_round_trip_in_fresh_process(tmp_path: Path):
    from stable_baselines3 import A2C, DQN, PPO

    env = ContractEnv()
    observation_space = env.observation_space
    observation_space.seed(1)
    samples = [observation_space.sample() for _ in range(6)]
    observations = {key: np.stack([sample[key] for sample in samples]) for key in observation_space.spaces}
    np.savez(tmp_path / "observations.npz", **observations)
    kwargs = policy_kwargs(features_dim=32, text_dim=16)
    models = {
        "PPO": PPO("MultiInputPolicy", env, n_steps=8, batch_size=8, n_epochs=1, policy_kwargs=kwargs, seed=0),
        "A2C": A2C("MultiInputPolicy", env, n_steps=4, policy_kwargs=kwargs, seed=0),
        "DQN": DQN(
            "MultiInputPolicy",
            env,
            buffer_size=64,
            learning_starts=4,
            train_freq=4,
            batch_size=4,
            policy_kwargs=kwargs,
            seed=0,
        ),
    }
    expected = {}
    for name, model in models.items():
        model.learn(total_timesteps=8)
        model.save(tmp_path / name)
        expected[name] = model.predict(observations, deterministic=True)[0], action_scores(model, observations)
    result = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([REPO_ROOT, os.environ.get("PYTHONPATH", "")])},
    )
    assert result.returncode == 0, result.stderr
    for name, (actions, scores) in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_loaded.npy"), actions, err_msg=name)
        np.testing.assert_allclose(np.load(tmp_path / f"{name}_loaded_scores.npy"), scores, rtol=1e-5, err_msg=name)


def test_cross_attention_equals_attention_over_projected_patches():
    """The channel-space evaluation of co-attention computes plain multi-head attention over projected patches.

    Reference: project every patch to ``fusion_dim`` (residual, query, key, value), run
    ``scaled_dot_product_attention`` both ways with a padding mask, LayerNorm, pool; all with the fusion's weights.
    """
    from mmrl.extractor.fusion import CrossAttentionFusion
    from mmrl.extractor.text_encoders import TextEncoding

    torch.manual_seed(0)
    channels, height, width, text_dim, dim, n_heads = 6, 3, 4, 10, 16, 4
    fusion = CrossAttentionFusion([(channels, height, width)], [[channels]], [text_dim], [], dim, n_heads=n_heads)
    for parameter in fusion.parameters():  # non-trivial biases and norms
        torch.nn.init.normal_(parameter, std=0.5)
    batch, length = 5, 7
    feature_map = torch.randn(batch, channels, height, width)
    token_features = torch.randn(batch, length, text_dim)
    padding = torch.zeros(batch, length, dtype=torch.bool)
    padding[1, 3:] = True
    padding[2, 1:] = True
    padding[4, :] = True  # no real token: patches attend to position 0
    out = fusion([feature_map], [TextEncoding(torch.zeros(batch, text_dim), token_features, padding)], [])

    patches = feature_map.flatten(2).transpose(1, 2) + fusion.patch_positions[0]
    residual = fusion.patch_embeddings[0](patches)
    query, key, value = (maps[0](patches) for maps in (fusion.patch_queries, fusion.patch_keys, fusion.patch_values))
    token, token_query, token_key, token_value = fusion.token_projections[0](token_features).chunk(4, dim=-1)

    def heads(x):
        return x.unflatten(-1, (n_heads, -1)).transpose(1, 2)

    def merge(x):
        return x.transpose(1, 2).flatten(2)

    sdpa = torch.nn.functional.scaled_dot_product_attention
    seen = merge(sdpa(heads(token_query), heads(key), heads(value)))
    tokens_out = fusion.token_norm(token + seen)
    real = (~padding).unsqueeze(-1).float()
    pooled_tokens = (tokens_out * real).sum(1) / real.sum(1).clamp(min=1)
    keep = ~padding
    keep[4, 0] = True
    read = merge(sdpa(heads(query), heads(token_key), heads(token_value), attn_mask=keep[:, None, None, :]))
    image = fusion.image_norm((residual + read).mean(dim=1))
    expected = torch.cat([feature_map.flatten(1), image, pooled_tokens], dim=1)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_auto_fusion_gates_images_by_the_instruction_and_falls_back_to_concat():
    from mmrl.extractor.fusion import ConcatFusion, GatedAttentionFusion

    assert policy_kwargs()["features_extractor_kwargs"]["fusion"] == "auto"
    both = MultimodalExtractor(contract_space(), **policy_kwargs()["features_extractor_kwargs"])
    assert isinstance(both.fusion, GatedAttentionFusion)
    image_only = spaces.Dict({"image": contract_space()["image"]})
    assert isinstance(MultimodalExtractor(image_only, fusion="auto").fusion, ConcatFusion)
    text_only = spaces.Dict({"mission": contract_space()["mission"]})
    assert isinstance(MultimodalExtractor(text_only).fusion, ConcatFusion)  # the extractor's default is "auto" too
    with pytest.raises(ValueError, match="needs at least one image key and one text key"):
        MultimodalExtractor(image_only, fusion="gated")
    with pytest.raises(ValueError, match="auto"):  # the message lists the choices, "auto" among them
        policy_kwargs(fusion="automatic")


# ------------------------------------------------------------------------------------------------- encoder width


@pytest.mark.parametrize(
    "encoder",
    [name for name in IMAGE_ENCODERS if name != "nature"],  # nature has fixed widths
)
def test_image_channels_widens_every_convolution_and_the_fusion_follows(encoder: str):
    space = cell_grid_space()
    extractor = MultimodalExtractor(space, image_encoder=encoder, fusion="film", image_channels=48, cell_dim=24)
    image_encoder = extractor.image_encoders[0]
    assert list(image_encoder.stage_channels) == [48] * len(image_encoder.stage_channels)
    convolutions = [module for module in image_encoder.modules() if isinstance(module, torch.nn.Conv2d)]
    # the cell vectors (factored: one per attribute, kind, colour and state, side by side)
    assert convolutions[0].in_channels == (3 * 24 if encoder.startswith("factored") else 24)
    # factored_match, factored_locate, factored_sink, factored_bilinear: 4 match channels per attribute group
    assert {conv.out_channels for conv in convolutions} == (
        {48, 12} if encoder in ("factored_match", "factored_locate", "factored_sink", "factored_bilinear") else {48}
    )
    features_BF = extractor(random_observations(space, 3))
    assert features_BF.shape == (3, 128) and torch.isfinite(features_BF).all()
    narrower = MultimodalExtractor(space, image_encoder=encoder, fusion="film", image_channels=8, cell_dim=24)
    assert sum(p.numel() for p in extractor.parameters()) > sum(p.numel() for p in narrower.parameters())


def test_image_channels_is_checked_before_anything_is_built():
    with pytest.raises(ValueError, match="fixed widths 32, 64, 64"):
        MultimodalExtractor(contract_space(), image_encoder="nature", image_channels=64)
    with pytest.raises(TypeError, match="image_channels must be a positive int or None"):
        MultimodalExtractor(contract_space(), image_channels=1.5)
    with pytest.raises(ValueError, match=r"image_channels=60,000 would give 3x3 convolutions .* <= 5,461"):
        MultimodalExtractor(contract_space(), image_channels=60_000)


def test_factored_encoder_reads_each_cell_attribute_on_its_own_before_combining_them():
    """The first layer of ``image_encoder="factored"``: changing a cell's colour id moves only the colour group's
    channels at that cell; the second layer (after FiLM) then mixes the groups."""
    torch.manual_seed(0)
    space = cell_grid_space()
    extractor = MultimodalExtractor(space, image_encoder="factored", fusion="film", image_channels=48)
    encoder = extractor.image_encoders[0]
    assert encoder.stage_channels == [48, 48] and encoder.stages[0].groups == 3
    image = torch.ones(1, 3, 7, 7)
    image[0, :, 2, 3] = torch.tensor([6.0, 2.0, 0.0])  # a blue ball
    recoloured = image.clone()
    recoloured[0, 1, 2, 3] = 4.0  # the same ball, another colour
    first = [encoder.stages[0](encoder.cell_embedding(x)) for x in (image, recoloured)]
    changed_C = (first[0] - first[1]).abs().amax(dim=(0, 2, 3)) > 0
    assert changed_C.tolist() == [False] * 16 + [True] * 16 + [False] * 16  # kind, colour, state groups
    assert (first[0] - first[1]).abs()[0, 16:32].sum(dim=0).nonzero().tolist() == [[2, 3]]
    features_BF = extractor(random_observations(space, 2))
    assert features_BF.shape == (2, 128) and torch.isfinite(features_BF).all()


@pytest.mark.parametrize("encoder", ["factored_match", "factored_locate", "factored_bilinear"])
def test_factored_match_lets_the_instruction_reach_each_attribute_only_through_its_own_match_scores(encoder):
    """``image_encoder="factored_match"`` and ``"factored_locate"``: what the second layer reads is the
    unconditioned attribute groups (the instruction changes none of them) and per-group match scores (each moved by
    one cell attribute only), so no channel sees the instruction and two attributes at once."""
    torch.manual_seed(0)
    space = cell_grid_space()
    extractor = MultimodalExtractor(space, image_encoder=encoder, fusion="film", image_channels=48)
    encoder_module = extractor.image_encoders[0]
    assert encoder_module.stages[1].in_channels == 48 + 3 * 4
    second_inputs: list[torch.Tensor] = []
    encoder_module.stages[1].register_forward_hook(lambda module, inputs, output: second_inputs.append(inputs[0]))
    image = torch.ones(1, 3, 7, 7)
    image[0, :, 2, 3] = torch.tensor([6.0, 2.0, 0.0])  # a blue ball
    recoloured = image.clone()
    recoloured[0, 1, 2, 3] = 4.0  # the same ball, another colour
    missions = torch.zeros(2, MAX_LENGTH, dtype=torch.int64)
    missions[0, :2] = torch.tensor([5, 6])
    missions[1, :2] = torch.tensor([5, 7])
    with torch.no_grad():
        for x in (image, recoloured):
            extractor({"image": x.expand(2, -1, -1, -1), "mission": missions.float()})
    plain, other_colour = second_inputs
    assert plain.shape == (2, 60, 7, 7)
    # another instruction: the unconditioned groups stay, the match scores move
    assert torch.equal(plain[0, :48], plain[1, :48]) and not torch.allclose(plain[0, 48:], plain[1, 48:])
    # another colour in one cell: the colour group and its match scores move, nothing else
    changed_C = ((plain - other_colour).abs().amax(dim=0) > 0).any(dim=(1, 2))
    colour_channels = [*range(16, 32), *range(52, 56)]  # the colour group, then its match scores
    assert changed_C.nonzero().flatten().tolist() == [c for c in colour_channels if changed_C[c]]
    assert changed_C[16:32].any() and changed_C[52:56].any()
    # ... at that cell only; "factored_locate" normalises its scores over the map, so they move everywhere
    moved = plain[:, :48] - other_colour[:, :48] if encoder == "factored_locate" else plain - other_colour
    assert ((moved.abs().amax(dim=(0, 1)) > 0).nonzero().tolist()) == [[2, 3]]
    if encoder == "factored_locate":  # each score is a distribution over the map's cells
        torch.testing.assert_close(plain[:, 48:].sum(dim=(2, 3)), torch.ones(2, 12))
    assert torch.isfinite(extractor(random_observations(space, 2))).all()


@pytest.mark.parametrize(("encoder", "traced"), [("factored_locate", False), ("factored_match", True)])
def test_factored_locate_scores_carry_no_trace_of_the_instruction_where_no_cell_stands_out(encoder, traced):
    """``"factored_locate"``: a score part shared by every cell (which word was named, not where its object is)
    cancels out, so on a map of identical cells two instructions give the second layer the same input. The
    unnormalised scores of ``"factored_match"`` keep that part."""
    torch.manual_seed(0)
    extractor = MultimodalExtractor(cell_grid_space(), image_encoder=encoder, fusion="film", image_channels=48)
    second_inputs: list[torch.Tensor] = []
    extractor.image_encoders[0].stages[1].register_forward_hook(
        lambda module, inputs, output: second_inputs.append(inputs[0])
    )
    missions = torch.zeros(2, MAX_LENGTH)
    missions[0, :2] = torch.tensor([5.0, 6.0])
    missions[1, :2] = torch.tensor([8.0, 7.0])
    with torch.no_grad():
        extractor({"image": torch.full((2, 3, 7, 7), 2.0), "mission": missions})
    (inputs,) = second_inputs
    assert torch.allclose(inputs[0], inputs[1]) is not traced
    if not traced:
        torch.testing.assert_close(inputs[:, 48:], torch.full((2, 12, 7, 7), 1 / 49))


def test_factored_sink_scores_the_floor_with_a_learned_constant_not_its_colour():
    """``"factored_sink"``: empty and unseen cells and the agent's own cell (all coded red by MiniGrid) enter the
    softmax of each match score with one learned logit per channel, so recolouring the floor changes nothing where
    ``"factored_locate"`` reads its colour; the logit sets how much mass the floor takes from the things in view, and
    a view of floor alone keeps uniform scores."""
    torch.manual_seed(0)
    image = torch.ones(1, 3, 7, 7)  # empty floor: kind 1, colour 0 (red), state 0
    image[0, 0, :2] = 0.0  # two unseen rows
    image[0, :, 6, 3] = torch.tensor([10.0, 0.0, 1.0])  # the agent, heading 1
    floor_only = image.clone()
    image[0, :, 2, 3] = torch.tensor([5.0, 0.0, 0.0])  # a red key
    image[0, :, 3, 5] = torch.tensor([6.0, 2.0, 0.0])  # a blue ball
    image[0, :, 4, 0] = torch.tensor([2.0, 5.0, 0.0])  # a grey wall
    things_HW = torch.zeros(7, 7, dtype=torch.bool)
    things_HW[2, 3] = things_HW[3, 5] = things_HW[4, 0] = True
    recoloured = image.clone()
    recoloured[0, 1, ~things_HW] = 3.0  # the floor, the unseen cells and the agent: purple
    missions = torch.zeros(2, MAX_LENGTH)
    missions[0, :2] = torch.tensor([5.0, 6.0])
    missions[1, :2] = torch.tensor([8.0, 7.0])

    def match_scores(extractor: MultimodalExtractor, grid: torch.Tensor) -> torch.Tensor:
        second_inputs: list[torch.Tensor] = []
        hook = (
            extractor.image_encoders[0]
            .stages[1]
            .register_forward_hook(lambda module, inputs, output: second_inputs.append(inputs[0]))
        )
        with torch.no_grad():
            extractor({"image": grid.expand(2, -1, -1, -1), "mission": missions})
        hook.remove()
        return second_inputs[0][:, 48:]

    for encoder, reads_floor_colour in (("factored_sink", False), ("factored_locate", True)):
        extractor = MultimodalExtractor(cell_grid_space(), image_encoder=encoder, fusion="film", image_channels=48)
        scores = match_scores(extractor, image)
        torch.testing.assert_close(scores.sum(dim=(2, 3)), torch.ones(2, 12))
        assert (not torch.allclose(scores, match_scores(extractor, recoloured))) is reads_floor_colour, encoder
        floor_BCN = scores[:, :, ~things_HW]
        assert torch.allclose(floor_BCN, floor_BCN[..., :1].expand_as(floor_BCN)) is not reads_floor_colour, encoder
    extractor = MultimodalExtractor(cell_grid_space(), image_encoder="factored_sink", fusion="film", image_channels=48)
    floor_logit_C = extractor.image_encoders[0].floor_logit_C
    assert floor_logit_C.shape == (12,) and any(floor_logit_C is p for p in extractor.parameters())
    torch.testing.assert_close(match_scores(extractor, floor_only), torch.full((2, 12, 7, 7), 1 / 49))
    for floor_logit, floor_mass in ((30.0, 1.0), (-30.0, 0.0)):
        with torch.no_grad():
            extractor.image_encoders[0].floor_logit_C.fill_(floor_logit)
        floor_share = match_scores(extractor, image)[:, :, ~things_HW].sum(dim=-1)
        torch.testing.assert_close(floor_share, torch.full((2, 12), floor_mass), atol=1e-4, rtol=0)


@pytest.mark.parametrize(("encoder", "word_offset"), [("factored_match", True), ("factored_bilinear", False)])
def test_factored_bilinear_scores_have_no_part_from_the_words_alone(encoder: str, word_offset: bool):
    """The match layer of ``"factored_match"`` reads ``gamma(words) * x + beta(words)``; that of
    ``"factored_bilinear"`` reads ``gamma(words) * x``, so a cell whose group features are zero scores the same
    whatever was named."""
    torch.manual_seed(0)
    space = cell_grid_space()
    extractor = MultimodalExtractor(space, image_encoder=encoder, fusion="film", image_channels=48)
    module = extractor.image_encoders[0]
    match_inputs: list[torch.Tensor] = []
    module.match.register_forward_hook(lambda layer, inputs, output: match_inputs.append(inputs[0]))
    observations = random_observations(space, 2)
    with torch.no_grad():
        extractor(observations)
        gamma_BC11, beta_BC11 = extractor.fusion.modulations(
            [extractor.encode_text("mission", observations["mission"])]
        )[0][0]
        cells_BCHW = module.stages[0](module.cell_embedding(observations["image"]))
    expected = cells_BCHW * gamma_BC11 + (beta_BC11 if word_offset else 0)
    torch.testing.assert_close(match_inputs[0], expected)
    assert beta_BC11.abs().amax() > 0  # the offset exists; only factored_match passes it on


def test_film_conditions_each_factored_attribute_group_on_the_words_it_attends_to():
    """With ``image_encoder="factored"`` on cells, FiLM modulates the first stage only (from the sentence vector);
    with ``"factored_words"``, each of its attribute groups from the words it attends to (a group attending to one
    word ignores the others); other encoders keep the BabyAI layout (every stage but the stem)."""
    torch.manual_seed(0)
    space = cell_grid_space()
    observations = random_observations(space, 2)
    layouts = {
        "factored_words": [FiLMStage(48, 3), None],
        "factored_match": [FiLMStage(48, 3), None],
        "factored_locate": [FiLMStage(48, 3), None],
        "factored_bilinear": [FiLMStage(48, 3), None],
        "factored": [FiLMStage(48, 1), None],
        "pointwise": [None, FiLMStage(48)],
        "patch": [None, FiLMStage(48)],
    }
    for encoder_name, expected in layouts.items():
        extractor = MultimodalExtractor(space, image_encoder=encoder_name, fusion="film", image_channels=48)
        assert extractor.image_encoders[0].film_stages() == expected, encoder_name
        with torch.no_grad():
            texts = [extractor.encode_text("mission", observations["mission"])]
            modulations = extractor.fusion.modulations(texts)[0]
        shapes = [None if m is None else (m[0].shape, m[1].shape) for m in modulations]
        assert shapes == [None if e is None else ((2, 48, 1, 1), (2, 48, 1, 1)) for e in expected], encoder_name

    extractor = MultimodalExtractor(space, image_encoder="factored_words", fusion="film", image_channels=48)
    attribute_film = extractor.fusion.attribute_films["0_0"]
    # Two instructions sharing word 5 and differing in their second word (6 vs 7), and a blanked one.
    tokens_BL = torch.zeros(3, MAX_LENGTH, dtype=torch.int64)
    tokens_BL[0, :2] = torch.tensor([5, 6])
    tokens_BL[1, :2] = torch.tensor([5, 7])
    with torch.no_grad():
        for parameter in attribute_film.generators.parameters():
            parameter.normal_()
        texts = [extractor.encode_text("mission", tokens_BL)]
        word_D = texts[0].tokens_BLD[0, 0]
        attribute_film.queries[0][1] = 100.0 * word_D / word_D.norm()  # group 1 (colour) attends to word 5 only
        gamma_BC11, beta_BC11 = extractor.fusion.modulations(texts)[0][0]
    colour = slice(16, 32)
    assert torch.allclose(gamma_BC11[0, colour], gamma_BC11[1, colour], atol=1e-5)
    assert torch.allclose(beta_BC11[0, colour], beta_BC11[1, colour], atol=1e-5)
    assert not torch.allclose(gamma_BC11[0, :16], gamma_BC11[1, :16])  # the kind group still reads word 6 vs 7
    # A blanked instruction attends to nothing: gamma = 1 + bias, beta = bias, finite.
    assert torch.isfinite(gamma_BC11[2]).all() and torch.isfinite(beta_BC11[2]).all()
    bias_C = torch.cat([generator.bias.chunk(2)[0] for generator in attribute_film.generators])
    assert torch.allclose(gamma_BC11[2].flatten(), 1.0 + bias_C)
