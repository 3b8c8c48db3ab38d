"""``text_encoder="hf"``: a tiny local BERT (built from a config, nothing downloaded) as the instruction encoder."""

from __future__ import annotations

import os
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

import mmrl
from mmrl.envs.grammar import VOCABULARY
from mmrl.extractor import MultimodalExtractor

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("transformers")
torch.set_num_threads(1)

from mmrl.pretrain.tiny_lm import save_tiny_bert  # noqa: E402

ENV_ID = "mmrl/GoTo-5x5-v0"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(save_tiny_bert(tmp_path_factory.mktemp("lm") / "tiny-bert", VOCABULARY))


def _batch(env: gym.Env, count: int, seed: int = 0) -> tuple[dict[str, torch.Tensor], list[str]]:
    observations, missions = [], []
    for index in range(count):
        observation, info = env.reset(seed=seed + index)
        observations.append(observation)
        missions.append(info["mission"])
    batch = {key: torch.as_tensor(np.stack([o[key] for o in observations])).float() for key in observations[0]}
    return batch, missions


def test_hf_encoder_decodes_caches_and_trains_only_the_projection(tiny_bert: str) -> None:
    env = gym.make(ENV_ID)
    extractor = MultimodalExtractor(env.observation_space, text_encoder="hf", text_model=tiny_bert)
    encoder = extractor.text_encoders[0]
    batch, missions = _batch(env, 12)
    # ids decode back to the env's words
    assert [" ".join(encoder.decode(row.long().tolist())) for row in batch["mission"]] == missions
    # the language model is no parameter of the policy: only the projection is trainable and saved
    text_names = [name for name in extractor.state_dict() if name.startswith("text_encoders.")]
    assert text_names == ["text_encoders.0.projection.weight", "text_encoders.0.projection.bias"]
    assert all(not p.requires_grad for p in encoder.backend[0].parameters())
    cached_at_start = encoder.cached_instructions  # the constructor's dummy pass encoded one row
    features = extractor(batch)
    assert features.shape == (12, extractor.features_dim)
    assert encoder.cached_instructions == cached_at_start + len(set(missions))
    features.sum().backward()
    assert encoder.projection.weight.grad is not None and encoder.projection.weight.grad.abs().sum() > 0
    # a second pass over the same instructions runs no language model: the cache does not grow
    before = encoder.cached_instructions
    with torch.no_grad():
        again = extractor(batch)
    assert encoder.cached_instructions == before
    torch.testing.assert_close(again, features.detach())
    # different instructions give different sentence vectors; padding does not change an encoding
    tokens = batch["mission"].long()
    sentences = encoder(tokens).sentence_BD
    assert not torch.allclose(sentences[0], sentences[1])
    padded = torch.nn.functional.pad(tokens, (0, 4))
    torch.testing.assert_close(encoder(padded).sentence_BD, sentences)
    assert torch.all(encoder(torch.zeros_like(tokens)).sentence_BD == 0)


def test_hf_encoder_with_cross_attention_reads_per_word_vectors(tiny_bert: str) -> None:
    env = gym.make(ENV_ID)
    extractor = MultimodalExtractor(
        env.observation_space, text_encoder="hf", text_model=tiny_bert, fusion="cross_attention"
    )
    batch, _ = _batch(env, 4)
    encoding = extractor.text_encoders[0](batch["mission"].long())
    real = batch["mission"] != 0
    assert torch.all(encoding.tokens_BLD[~real] == 0) and torch.all(encoding.tokens_BLD[real].abs().sum(-1) > 0)
    assert torch.isfinite(extractor(batch)).all()


def test_ppo_with_hf_encoder_saves_small_and_loads(tiny_bert: str, tmp_path) -> None:
    from stable_baselines3 import PPO

    venv = mmrl.make_vec_env(ENV_ID, 2, seed=0)
    kwargs = mmrl.policy_kwargs(text_encoder="hf", text_model=tiny_bert, fusion="concat")
    model = PPO("MultiInputPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs=kwargs, seed=0)
    model.learn(64)
    model.save(tmp_path / "model")
    loaded = PPO.load(tmp_path / "model", device="cpu")
    observation = venv.reset()
    np.testing.assert_array_equal(
        model.predict(observation, deterministic=True)[0], loaded.predict(observation, deterministic=True)[0]
    )
    names = loaded.policy.state_dict().keys()
    assert not any("backend" in name or "bert" in name.lower() for name in names)


def test_bad_path_missing_extra_and_wrong_vocabulary_are_one_line_errors(tiny_bert: str, tmp_path, monkeypatch):
    space = gym.make(ENV_ID).observation_space
    with pytest.raises(ValueError, match="not a local Hugging Face model directory") as error:
        MultimodalExtractor(space, text_encoder="hf", text_model=str(tmp_path / "nowhere"))
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="needs text_model=PATH"):
        MultimodalExtractor(space, text_encoder="hf")
    with pytest.raises(ValueError, match="read by text_encoder='hf' only"):
        MultimodalExtractor(space, text_encoder="gru", text_model=tiny_bert)
    with pytest.raises(ValueError, match="text_vocabulary has 2 words"):
        MultimodalExtractor(space, text_encoder="hf", text_model=tiny_bert, text_vocabulary=["go", "to"])
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text("{}")
    (tmp_path / "pickled" / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="pickled weights"):
        MultimodalExtractor(space, text_encoder="hf", text_model=str(tmp_path / "pickled"))
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ValueError, match=r"pip install -c constraints-cpu.txt -e \"\.\[hf\]\""):
        MultimodalExtractor(space, text_encoder="hf", text_model=tiny_bert)


def test_cli_train_with_hf_encoder(tiny_bert: str, tmp_path) -> None:
    from mmrl.cli import main

    run = tmp_path / "run"
    status = main(
        [
            "train", "--algo", "ppo", "--env", ENV_ID, "--timesteps", "128", "--n-envs", "2", "--run-dir", str(run),
            "--set", "text_encoder=hf", "--set", f"text_model={tiny_bert}", "--set", "n_steps=64",
            "--set", "batch_size=64", "--set", "eval_episodes=2", "--set", "torch_threads=1",
        ]
    )  # fmt: skip
    assert status == 0
    assert (run / "config.yaml").is_file() and tiny_bert in (run / "config.yaml").read_text()
