"""MultimodalExtractor: pickling after inference, checks of size arguments and of observation values."""

from __future__ import annotations

import copy
import io
import pickle

import numpy as np
import pytest
import torch
from gymnasium import spaces

from mmrl.extractor import MultimodalExtractor, policy_kwargs
from mmrl.extractor.text_cache import InferenceTextMemo

torch.set_num_threads(1)

VOCAB_SIZE = 10
ENV_ID = "mmrl/GoTo-5x5-v0"


def small_space(vector: bool = False) -> spaces.Dict:
    members: dict[str, spaces.Space] = {
        "image": spaces.Box(0, 255, (3, 16, 16), np.uint8),
        "mission": spaces.Box(0, VOCAB_SIZE - 1, (6,), np.int64),
    }
    if vector:
        members["pos"] = spaces.Box(-1.0, 1.0, (3,), np.float32)
    return spaces.Dict(members)


def small_batch(batch_size: int = 2, mission: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    if mission is None:
        mission = torch.tensor([[1.0, 2, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]] * batch_size)[:batch_size]
    return {"image": torch.rand(batch_size, 3, 16, 16, generator=generator), "mission": mission}


def memo_rows(extractor: MultimodalExtractor) -> int:
    return sum(len(memo._entries) for memo in extractor.text_memos)


# ------------------------------------------------------------------------------------------------------ pickling
@pytest.mark.parametrize("text_encoder", ["gru", "lstm", "conv", "transformer", "bow"])
@pytest.mark.parametrize("fusion", ["gated", "cross_attention"])
def test_extractor_pickles_and_deepcopies_after_inference(text_encoder: str, fusion: str) -> None:
    extractor = MultimodalExtractor(small_space(), features_dim=16, text_encoder=text_encoder, fusion=fusion)
    observations = small_batch()
    with torch.no_grad():
        expected = extractor(observations)
    if text_encoder != "bow":  # the bag of words never goes through the memo
        assert memo_rows(extractor) > 0, "the inference memo should hold encodings (the state that broke pickling)"
    buffer = io.BytesIO()
    torch.save(extractor, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    twin = copy.deepcopy(extractor)
    for other in (restored, twin, pickle.loads(pickle.dumps(extractor))):
        assert memo_rows(other) == 0
        with torch.no_grad():
            torch.testing.assert_close(other(observations), expected, rtol=0, atol=0)
    # the original's memo still works after being pickled
    with torch.no_grad():
        torch.testing.assert_close(extractor(observations), expected, rtol=0, atol=0)


def test_inference_memo_pickles_its_configuration_only() -> None:
    memo = InferenceTextMemo(max_entries=7)
    memo._entries[b"x"] = (torch.zeros(1), None, 0)  # type: ignore[assignment]
    memo._last = (torch.zeros(1), lambda: None)  # type: ignore[assignment]
    restored = pickle.loads(pickle.dumps(memo))
    assert restored.max_entries == 7
    assert restored._entries == {} and restored._last is None and restored._training is None
    assert copy.deepcopy(memo).max_entries == 7


def test_ppo_policy_pickles_after_training_with_the_gru_memo() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    import mmrl.envs  # noqa: F401  (registers the mmrl/... ids)

    env = make_vec_env(ENV_ID, n_envs=2, seed=0)
    kwargs = policy_kwargs(text_encoder="gru", features_dim=32, text_dim=16)
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=kwargs, seed=0)
    model.learn(32)
    observations = env.reset()
    expected, _ = model.predict(observations, deterministic=True)
    assert memo_rows(model.policy.features_extractor) > 0, "rollouts and predict should have filled the memo"

    restored = pickle.loads(pickle.dumps(model.policy))
    buffer = io.BytesIO()
    torch.save(model.policy, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    twin = copy.deepcopy(model.policy)
    observation_tensor, _ = model.policy.obs_to_tensor(observations)
    with torch.no_grad():
        reference = model.policy.get_distribution(observation_tensor).distribution.logits
    for policy in (restored, loaded, twin):
        actions, _ = policy.predict(observations, deterministic=True)
        np.testing.assert_array_equal(actions, expected)
        with torch.no_grad():
            logits = policy.get_distribution(observation_tensor).distribution.logits
        torch.testing.assert_close(logits, reference, rtol=0, atol=0)
    env.close()


# ------------------------------------------------------------------------------------------------ size arguments
@pytest.mark.parametrize("name", ["features_dim", "text_dim", "vector_dim", "fusion_dim", "cell_dim"])
@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-3, ValueError), (True, TypeError), (64.0, TypeError), ("64", TypeError)],
    ids=["zero", "negative", "bool", "float", "string"],
)
def test_size_arguments_are_checked(name: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        MultimodalExtractor(small_space(vector=True), fusion="sum", **{name: value})
    message = str(info.value)
    assert f"{name} must be a positive int" in message and repr(value) in message, message


@pytest.mark.parametrize("name", ["features_dim", "text_dim", "vector_dim", "fusion_dim", "cell_dim"])
def test_numpy_integer_sizes_are_accepted(name: str) -> None:
    extractor = MultimodalExtractor(small_space(vector=True), fusion="sum", **{name: np.int64(8)})
    features = extractor(small_batch() | {"pos": torch.zeros(2, 3)})
    assert features.shape[0] == 2
    if name == "features_dim":
        assert extractor.features_dim == 8 and type(extractor.features_dim) is int


def test_zero_widths_no_longer_build_networks_that_ignore_their_input() -> None:
    with pytest.raises(ValueError, match="fusion_dim"):
        MultimodalExtractor(small_space(), fusion="sum", fusion_dim=0)
    with pytest.raises(ValueError, match="vector_dim"):
        MultimodalExtractor(small_space(vector=True), vector_dim=0)


def test_transformer_text_dim_must_split_into_heads() -> None:
    with pytest.raises(ValueError) as info:
        MultimodalExtractor(small_space(), text_encoder="transformer", text_dim=30)
    message = str(info.value)
    assert "text_dim=30" in message and "4 attention heads" in message and "text_dim=32" in message, message
    assert MultimodalExtractor(small_space(), text_encoder="transformer", text_dim=32).text_encoders[0].output_dim == 32


# ------------------------------------------------------------------------------------------- observation values
@pytest.mark.parametrize("text_encoder", ["gru", "lstm", "conv", "transformer", "bow"])
@pytest.mark.parametrize("bad", [10.0, -1.0, 57.0, float("nan")], ids=["vocab", "negative", "large", "nan"])
@pytest.mark.parametrize("grad", [True, False], ids=["train", "inference"])
def test_token_ids_outside_the_vocabulary_raise_a_clear_error(text_encoder: str, bad: float, grad: bool) -> None:
    extractor = MultimodalExtractor(small_space(), features_dim=16, text_encoder=text_encoder)
    mission = torch.tensor([[bad, 1, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0]])
    with torch.set_grad_enabled(grad), pytest.raises(ValueError) as info:
        extractor(small_batch(mission=mission))
    message = str(info.value)
    for hint in ("observation key 'mission'", "[0, 9]", f"{bad:g}", "mmrl.wrappers.TokenizeText"):
        assert hint in message, message
    assert isinstance(info.value.__cause__, IndexError | RuntimeError)
    # the extractor still works on good ids afterwards
    assert extractor(small_batch()).shape == (2, 16)


def test_encode_text_method_diagnoses_bad_ids() -> None:
    extractor = MultimodalExtractor(small_space(), text_encoder="gru")
    with pytest.raises(ValueError, match=r"'mission'.*\[0, 9\]"):
        extractor.encode_text("mission", torch.tensor([[12, 1, 0, 0, 0, 0]]))


def test_errors_with_another_cause_are_reraised_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    extractor = MultimodalExtractor(small_space(), text_encoder="gru", cache_text=False)

    def broken(tokens_BL: torch.Tensor) -> None:
        raise RuntimeError("something else broke")

    monkeypatch.setattr(extractor.text_encoders[0], "forward", broken)
    with pytest.raises(RuntimeError, match="something else broke"):
        extractor(small_batch())


@pytest.mark.parametrize(("image_rows", "mission_rows"), [(2, 3), (1, 3), (3, 1)])
def test_keys_with_different_batch_sizes_raise_a_clear_error(image_rows: int, mission_rows: int) -> None:
    extractor = MultimodalExtractor(small_space())
    observations = {"image": torch.zeros(image_rows, 3, 16, 16), "mission": torch.zeros(mission_rows, 6)}
    with pytest.raises(ValueError) as info:
        extractor(observations)
    message = str(info.value)
    assert "batch size" in message and "'image'" in message and "'mission'" in message, message
    assert str(image_rows) in message and str(mission_rows) in message, message


# ---------------------------------------------------------------------------------------- float token ids
@pytest.mark.parametrize("grad", [True, False], ids=["train", "inference"])
def test_fractional_token_ids_are_refused_not_truncated(grad: bool) -> None:
    extractor = MultimodalExtractor(small_space(), features_dim=16)
    mission = torch.tensor([[2.7, 1, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0]])
    with torch.set_grad_enabled(grad), pytest.raises(ValueError) as info:
        extractor(small_batch(mission=mission))
    message = str(info.value)
    assert "'mission'" in message and "whole numbers" in message and "2.7" in message and "\n" not in message
    with pytest.raises(ValueError, match="whole numbers"):
        extractor.encode_text("mission", torch.tensor([[0.5, 0, 0, 0, 0, 0]], dtype=torch.float64))


def test_whole_float_and_integer_token_ids_give_the_same_features() -> None:
    extractor = MultimodalExtractor(small_space(), features_dim=16).eval()
    as_float = small_batch()
    as_int = {**as_float, "mission": as_float["mission"].long()}
    with torch.no_grad():
        torch.testing.assert_close(extractor(as_float), extractor(as_int), rtol=0, atol=0)


# ----------------------------------------------------------------------------- sizes checked before allocating
@pytest.mark.parametrize("name", ["features_dim", "text_dim", "vector_dim", "fusion_dim", "cell_dim"])
def test_widths_above_the_documented_limit_are_refused(name: str) -> None:
    from mmrl.extractor.limits import MAX_WIDTH

    with pytest.raises(ValueError) as info:
        MultimodalExtractor(small_space(vector=True), fusion="sum", **{name: 10**12})
    message = str(info.value)
    assert f"{name} must be at most {MAX_WIDTH:,}" in message and "\n" not in message, message
    with pytest.raises(TypeError, match=f"{name} must be a positive int"):
        MultimodalExtractor(small_space(vector=True), fusion="sum", **{name: 1e12})
    extractor_kwargs = policy_kwargs(features_dim=10**12)["features_extractor_kwargs"]
    with pytest.raises(ValueError, match="at most"):
        MultimodalExtractor(small_space(), **extractor_kwargs)


def huge_box(shape: tuple[int, ...]) -> spaces.Box:
    """A Box declaring ``shape`` without allocating its bounds (Gymnasium itself cannot build one this size)."""
    box = spaces.Box(0, 255, (1, 1, 1), np.uint8)
    box._shape = shape
    box.low = np.broadcast_to(np.uint8(0), shape)
    box.high = np.broadcast_to(np.uint8(255), shape)
    return box


def test_a_huge_declared_image_shape_is_refused_before_building_layers() -> None:
    space = spaces.Dict({"image": huge_box((100_000, 100_000, 100)), "mission": small_space()["mission"]})
    with pytest.raises(ValueError) as info:
        MultimodalExtractor(space)
    message = str(info.value)
    assert "'image'" in message and "1,000,000,000,000 values" in message and "MAX_KEY_ELEMENTS" in message, message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("member", "hint"),
    [
        (spaces.Discrete(10**12), "MAX_KEY_ELEMENTS"),
        (spaces.MultiDiscrete([10**9] * 100), "MAX_KEY_ELEMENTS"),
        (spaces.Box(0, 2**40, (6,), np.int64), "MAX_VOCABULARY"),
        (spaces.Box(-1.0, 1.0, (2**20,), np.float32), "MAX_LAYER_PARAMETERS"),
    ],
    ids=["discrete", "multidiscrete", "vocabulary", "vector-layer"],
)
def test_oversized_keys_are_refused_before_building_layers(member: spaces.Space, hint: str) -> None:
    space = spaces.Dict({"image": small_space()["image"], "extra": member})
    with pytest.raises(ValueError) as info:
        MultimodalExtractor(space, vector_dim=1024, text_keys=["extra"] if hint == "MAX_VOCABULARY" else None)
    message = str(info.value)
    assert "'extra'" in message and hint in message and "\n" not in message, message


def test_the_final_projection_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import mmrl.extractor.limits as limits

    monkeypatch.setattr(limits, "MAX_LAYER_PARAMETERS", 1000)
    with pytest.raises(ValueError, match=r"final projection.*MAX_LAYER_PARAMETERS"):
        MultimodalExtractor(small_space(), fusion="concat", features_dim=64)
