"""``word_heads``: the ``factored_match`` encoders read an instruction that names several objects with one query per
object and attribute, and score the cells once per head, each head on its own words."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

import mmrl
from mmrl.bundle import load_policy
from mmrl.export import export_run
from mmrl.extractor import MultimodalExtractor
from mmrl.training import load_model

torch.set_num_threads(1)

VOCAB = 12
LENGTH = 6


def grid_space() -> spaces.Dict:
    """A 7x7 grid of integer-coded cells (kind < 11, colour < 6, state < 4) and a mission of 6 token ids."""
    high_CHW = np.broadcast_to(np.array([10, 5, 3], np.int64)[:, None, None], (3, 7, 7))
    return spaces.Dict(
        {
            "image": spaces.Box(0, high_CHW.copy(), dtype=np.int64),
            "mission": spaces.Box(0, VOCAB - 1, (LENGTH,), np.int64),
        }
    )


def score_maps(extractor: MultimodalExtractor, image: torch.Tensor, missions: torch.Tensor) -> torch.Tensor:
    """What the second layer reads: the unconditioned attribute groups, then every head's match scores."""
    second_inputs: list[torch.Tensor] = []
    hook = (
        extractor.image_encoders[0]
        .stages[1]
        .register_forward_hook(lambda module, inputs, output: second_inputs.append(inputs[0]))
    )
    with torch.no_grad():
        extractor({"image": image.expand(len(missions), -1, -1, -1), "mission": missions.float()})
    hook.remove()
    return second_inputs[0]


@pytest.mark.parametrize("encoder", ["factored_match", "factored_locate", "factored_bilinear"])
def test_each_head_scores_the_cells_on_the_words_it_attends_to_alone(encoder):
    """Two heads pinned to two words: replacing the word head 1 reads moves head 1's scores only, and replacing
    the word head 0 reads moves head 0's only, while the cells' own features never see the instruction."""
    torch.manual_seed(0)
    extractor = MultimodalExtractor(
        grid_space(), image_encoder=encoder, text_encoder="bow", fusion="film", image_channels=48, word_heads=2
    )
    groups, match = 3, 4
    assert extractor.image_encoders[0].stages[1].in_channels == 48 + 2 * groups * match
    attribute_film = next(iter(extractor.fusion.attribute_films.values()))
    queries_QD = attribute_film.queries[0]
    assert queries_QD.shape[0] == 2 * groups  # head-major: 3 queries of head 0, then 3 of head 1
    words = extractor.text_encoders[0].embedding.weight
    with torch.no_grad():  # head 0 attends to word 2, head 1 to word 3, whatever else the mission holds
        queries_QD[:groups] = 50 * words[2] / words[2].norm() ** 2
        queries_QD[groups:] = 50 * words[3] / words[3].norm() ** 2
    image = torch.ones(1, 3, 7, 7)
    image[0, :, 2, 3] = torch.tensor([6.0, 2.0, 0.0])
    image[0, :, 4, 1] = torch.tensor([5.0, 4.0, 0.0])
    missions = torch.tensor([[2, 3, 0, 0, 0, 0], [2, 7, 3, 0, 0, 0], [2, 7, 0, 0, 0, 0], [8, 3, 0, 0, 0, 0]])
    maps = score_maps(extractor, image, missions)
    cells, head0, head1 = maps[:, :48], maps[:, 48:60], maps[:, 60:72]
    assert all(torch.equal(cells[0], cells[row]) for row in range(1, 4))
    # another word beside both: neither head moves
    torch.testing.assert_close(head0[1], head0[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(head1[1], head1[0], atol=1e-4, rtol=0)
    # head 1's word replaced: head 1 moves, head 0 does not
    torch.testing.assert_close(head0[2], head0[0], atol=1e-4, rtol=0)
    assert (head1[2] - head1[0]).abs().max() > 1e-2
    # head 0's word replaced: head 0 moves, head 1 does not
    torch.testing.assert_close(head1[3], head1[0], atol=1e-4, rtol=0)
    assert (head0[3] - head0[0]).abs().max() > 1e-2


def test_one_head_is_the_single_query_network():
    """``word_heads=1`` (the default) builds the network saved runs hold: the same parameters and outputs."""
    torch.manual_seed(0)
    default = MultimodalExtractor(grid_space(), image_encoder="factored_match", fusion="film", image_channels=48)
    torch.manual_seed(0)
    one = MultimodalExtractor(
        grid_space(), image_encoder="factored_match", fusion="film", image_channels=48, word_heads=1
    )
    shapes = {key: value.shape for key, value in default.state_dict().items()}
    assert shapes == {key: value.shape for key, value in one.state_dict().items()}
    assert shapes["image_encoders.0.match.weight"] == (12, 16, 1, 1)
    rng = np.random.default_rng(0)
    observations = {
        "image": torch.as_tensor(rng.integers(0, 4, (3, 3, 7, 7)), dtype=torch.float32),
        "mission": torch.as_tensor(rng.integers(1, VOCAB, (3, LENGTH)), dtype=torch.float32),
    }
    with torch.no_grad():
        torch.testing.assert_close(default(observations), one(observations))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"image_encoder": "factored", "fusion": "film"}, ValueError, "word_heads=2 is read by image_encoder"),
        ({"image_encoder": "factored_match", "fusion": "concat"}, ValueError, "set fusion='film'"),
        ({"image_encoder": "factored_match", "fusion": "film", "word_heads": 9}, ValueError, "at most 8"),
        ({"image_encoder": "factored_match", "fusion": "film", "word_heads": 0}, ValueError, "word_heads"),
        ({"image_encoder": "factored_match", "fusion": "film", "word_heads": True}, TypeError, "word_heads"),
    ],
)
def test_word_heads_are_refused_where_nothing_reads_them(kwargs, error, match):
    options = {"word_heads": 2, **kwargs}
    with pytest.raises(error, match=match):
        MultimodalExtractor(grid_space(), **options)


def test_word_heads_on_pictures_are_refused():
    space = spaces.Dict(
        {"image": spaces.Box(0, 255, (3, 16, 16), np.uint8), "mission": spaces.Box(0, VOCAB - 1, (LENGTH,), np.int64)}
    )
    with pytest.raises(ValueError, match="integer-coded grids"):
        MultimodalExtractor(space, image_encoder="factored_match", fusion="film", word_heads=2)


def test_training_records_word_heads_and_the_bundle_rebuilds_them(tmp_path):
    """``word_heads`` set as a preset key reaches the extractor, ``config.yaml`` and the exported bundle."""
    env_id = "mmrl/Sequence-5x5-v0"
    run = mmrl.train(
        "ppo",
        env_id,
        run_dir=tmp_path / "run",
        timesteps=128,
        n_envs=2,
        seed=0,
        progress_bar=False,
        eval_freq=0,
        eval_episodes=2,
        overrides={
            "n_steps": 32, "batch_size": 32, "n_epochs": 1, "features_dim": 16, "image_channels": 8,
            "image_encoder": "factored_match", "fusion": "film", "word_heads": 2,
            "env_kwargs": {"image_mode": "symbolic", "show_progress": True},
        },
    )  # fmt: skip
    assert run.config.word_heads == 2
    model = load_model(tmp_path / "run")
    assert model.policy.features_extractor.image_encoders[0].word_heads == 2
    loaded = load_policy(export_run(tmp_path / "run"))
    venv = mmrl.make_vec_env(env_id, n_envs=4, seed=11, env_kwargs=dict(run.config.env_kwargs))
    observations = venv.reset()
    for _ in range(5):
        expected, _ = model.predict(observations, deterministic=True)
        assert np.array_equal(loaded.predict(observations)[0], expected)
        observations, *_ = venv.step(expected)
