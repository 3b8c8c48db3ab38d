"""Tests of mmrl.bundle (pickle-free policy bundles), mmrl.spaces_json and the export / inspect CLI."""

from __future__ import annotations

import argparse
import base64
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from safetensors.torch import load_file, save_file
from stable_baselines3 import A2C, DQN, PPO

import mmrl
from mmrl.bundle import MANIFEST_NAME, WEIGHTS_NAME, export_bundle, file_sha256, load_policy, manifest_hash
from mmrl.spaces_json import space_from_json, space_to_json
from mmrl.training.run_dir import write_run_marker

torch.set_num_threads(1)
ENV_ID = "mmrl/GoTo-5x5-v0"
ALGOS = {
    "PPO": (PPO, {"n_steps": 64, "batch_size": 32, "n_epochs": 1}),
    "A2C": (A2C, {"n_steps": 8}),
    "DQN": (DQN, {"learning_starts": 0, "buffer_size": 200, "batch_size": 16, "train_freq": 8}),
}


def _kwargs() -> dict:
    return mmrl.policy_kwargs(features_dim=16, net_arch=[8], text_dim=8, fusion_dim=16)


@pytest.fixture(scope="module")
def env() -> gym.Env:
    return gym.make(ENV_ID)


@pytest.fixture(scope="module")
def observations(env) -> dict[str, np.ndarray]:
    """A batch of 48 real observations (channel-last images, as the env emits them)."""
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=3)
    batch = []
    for _ in range(48):
        batch.append(obs)
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(3)))
        if terminated or truncated:
            obs, _ = env.reset()
    return {key: np.stack([o[key] for o in batch]) for key in batch[0]}


@pytest.fixture(scope="module")
def models(env) -> dict:
    out = {}
    for name, (cls, kwargs) in ALGOS.items():
        model = cls("MultiInputPolicy", env, policy_kwargs=_kwargs(), seed=0, device="cpu", **kwargs)
        model.learn(128 if name != "PPO" else 192)
        out[name] = model
    return out


@pytest.fixture(scope="module")
def ppo_bundle(models, tmp_path_factory) -> Path:
    return export_bundle(models["PPO"], tmp_path_factory.mktemp("b") / "ppo.bundle", metadata={"note": "test"})


def _copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy.bundle"))


def _rewrite_manifest(bundle: Path, edit) -> None:
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    edit(manifest)
    manifest["manifest_sha256"] = manifest_hash(manifest)
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))


class Payload:
    """Unpickling this creates the marker file: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ------------------------------------------------------------------------------------------------------ round trip
@pytest.mark.parametrize("algo", list(ALGOS))
def test_round_trip_same_actions(algo, models, observations, env, tmp_path) -> None:
    model = models[algo]
    bundle = export_bundle(model, tmp_path / f"{algo}.bundle", env=env)
    assert sorted(p.name for p in bundle.iterdir()) == [MANIFEST_NAME, WEIGHTS_NAME]
    loaded = load_policy(bundle)
    expected, _ = model.predict(observations, deterministic=True)
    actions, state = loaded.predict(observations)
    assert state is None
    np.testing.assert_array_equal(actions, expected)
    single, _ = loaded.predict({key: value[0] for key, value in observations.items()})
    assert int(single) == int(expected[0])
    assert loaded.observation_space == model.observation_space and loaded.action_space == model.action_space
    assert loaded.tokenizer_config == env.unwrapped.tokenizer.to_config()
    assert loaded.manifest["algo"] == algo == loaded.algo
    assert loaded.manifest["policy_kwargs"]["features_extractor_class"] == "MultimodalExtractor"
    assert set(loaded.manifest["versions"]) >= {"mmrl", "torch", "stable_baselines3", "gymnasium"}


def test_trusted_sb3_zip_and_qlearning_npz(models, observations, tmp_path) -> None:
    models["A2C"].save(tmp_path / "a2c.zip")
    with pytest.raises(ValueError, match=r"SB3 \.zip files run pickled code on load; pass trust=True"):
        load_policy(tmp_path / "a2c.zip")
    loaded = load_policy(tmp_path / "a2c.zip", trust=True)
    np.testing.assert_array_equal(
        loaded.predict(observations)[0], models["A2C"].predict(observations, deterministic=True)[0]
    )
    assert loaded.algo == "A2C"

    from mmrl.agents import QLearning

    agent = QLearning(None, observation_space=spaces.Discrete(4), action_space=spaces.Discrete(2))
    path = agent.save(tmp_path / "q.npz")
    loaded = load_policy(path)
    assert loaded.algo == "QLearning" and int(loaded.predict(2)[0]) == int(agent.predict(2)[0])


def test_export_replaces_bundle_but_not_other_paths(models, tmp_path) -> None:
    bundle = export_bundle(models["DQN"], tmp_path / "q.bundle")
    export_bundle(models["DQN"], bundle)  # replacing a bundle is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.bundle"]  # no temporary leftovers
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a policy bundle"):
        export_bundle(models["DQN"], tmp_path / "file")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        export_bundle(models["DQN"], bundle, overwrite=False)


# --------------------------------------------------------------------------------------------- crafted inputs
def test_crafted_sb3_zip_is_refused_without_running_code(tmp_path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(Payload(marker))
    pickle.loads(payload)  # control: the payload is live
    assert marker.exists()
    marker.unlink()
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": base64.b64encode(payload).decode()}}
    data["clip_range"] = {":serialized:": base64.b64encode(payload).decode()}
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("policy.pth", payload)
        archive.writestr("policy.optimizer.pth", payload)
        archive.writestr("pytorch_variables.pth", payload)
    with pytest.raises(ValueError, match=r"refusing to load .*evil\.zip: SB3 \.zip files run pickled code"):
        load_policy(path)
    assert not marker.exists()


@pytest.mark.parametrize("with_metadata", [False, True])
def test_crafted_npz_object_array_is_refused(tmp_path, with_metadata) -> None:
    from mmrl.agents.qlearning import ALGORITHM_NAME, FILE_FORMAT, FILE_FORMAT_VERSION

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    array = np.array([Payload(marker)], dtype=object)
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("q_table.npy", buffer.getvalue())
        if with_metadata:
            metadata = {
                "format": FILE_FORMAT,
                "format_version": FILE_FORMAT_VERSION,
                "algorithm": ALGORITHM_NAME,
                "arrays": {"q_table": {"shape": [1], "dtype": "|O"}},
            }
            archive.writestr("metadata.json", json.dumps(metadata))
    with pytest.raises(ValueError, match=r"evil\.npz"):
        load_policy(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("policy_class", "subprocess.Popen", r"policy class 'subprocess.Popen', which is not registered"),
        ("algo", "os.system", r"algorithm 'os.system', which is not registered"),
        ("features_extractor_class", "builtins.eval", r"features_extractor_class'\] 'builtins.eval'"),
        ("activation_fn", "NoSuchActivation", r"activation_fn'\] 'NoSuchActivation', which is not registered"),
        ("optimizer_class", "torch.optim.Evil", r"optimizer_class'\] 'torch.optim.Evil'"),
        ("lstm_class", "os.system", r"unsupported key 'lstm_class'"),
    ],
)
def test_manifest_naming_unregistered_class_is_refused(ppo_bundle, tmp_path, field, value, message) -> None:
    bundle = _copy(ppo_bundle, tmp_path)

    def edit(manifest: dict) -> None:
        target = manifest if field in ("policy_class", "algo") else manifest["policy_kwargs"]
        target[field] = value

    _rewrite_manifest(bundle, edit)
    with pytest.raises(ValueError, match=message):
        load_policy(bundle)


def test_manifest_hash_mismatch_is_refused(ppo_bundle, tmp_path) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    manifest["policy_kwargs"]["net_arch"] = [9]
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="manifest hash mismatch"):
        load_policy(bundle / MANIFEST_NAME)


def test_flipped_weight_byte_is_refused(ppo_bundle, tmp_path) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    raw = bytearray((bundle / WEIGHTS_NAME).read_bytes())
    raw[-5] ^= 0x01
    (bundle / WEIGHTS_NAME).write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="weights sha256 mismatch"):
        load_policy(bundle)


def test_shape_mismatch_is_refused(ppo_bundle, tmp_path) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    _rewrite_manifest(bundle, lambda m: m["policy_kwargs"].update(net_arch=[9]))
    with pytest.raises(ValueError, match=r"shape/dtype\): mlp_extractor.*weights \[8, 16\] vs policy \[9, 16\]"):
        load_policy(bundle)


def test_missing_tensor_is_refused(ppo_bundle, tmp_path) -> None:
    bundle = _copy(ppo_bundle, tmp_path)
    state = load_file(bundle / WEIGHTS_NAME)
    del state["action_net.bias"]
    save_file(state, bundle / WEIGHTS_NAME)

    def edit(manifest: dict) -> None:
        del manifest["weights"]["tensors"]["action_net.bias"]
        manifest["weights"]["sha256"] = file_sha256(bundle / WEIGHTS_NAME)

    _rewrite_manifest(bundle, edit)
    with pytest.raises(ValueError, match=r"missing tensors \['action_net.bias'\]"):
        load_policy(bundle)


def test_disallowed_space_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="dtype 'object' is not allowed"):
        space_from_json({"type": "Box", "shape": [2], "dtype": "object", "low": 0, "high": 1})


def test_spaces_json_round_trip() -> None:
    space = spaces.Dict(
        {
            "a": spaces.Box(
                np.array([-np.inf, 0.0], np.float32), np.array([np.inf, 2.5], np.float32), dtype=np.float32
            ),
            "b": spaces.Discrete(5, start=2),
            "c": spaces.MultiDiscrete([3, 4]),
            "d": spaces.MultiBinary(3),
            "e": spaces.Box(0, 255, (4, 4, 3), np.uint8),
        }
    )
    description = space_to_json(space)
    assert space_from_json(json.loads(json.dumps(description))) == space


# ------------------------------------------------------------------------------------------------------------- CLI
def test_cli_export_and_inspect(models, observations, tmp_path, capsys) -> None:
    from mmrl.cli import export as export_cli
    from mmrl.cli import inspect as inspect_cli

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    models["PPO"].save(run_dir / "model.zip")
    (run_dir / "config.yaml").write_text(f"algo: ppo\nenv_id: {ENV_ID}\nenv_kwargs: {{}}\nseed: 0\n")
    write_run_marker(run_dir)
    parser = argparse.ArgumentParser(prog="mmrl")
    subparsers = parser.add_subparsers()
    export_cli.register(subparsers)
    inspect_cli.register(subparsers)

    args = parser.parse_args(["export", str(run_dir)])
    assert args.run(args) == 0
    bundle = run_dir / "policy.bundle"
    loaded = load_policy(bundle)
    np.testing.assert_array_equal(
        loaded.predict(observations)[0], models["PPO"].predict(observations, deterministic=True)[0]
    )
    assert loaded.tokenizer_config is not None and loaded.manifest["metadata"]["env_id"] == ENV_ID
    assert args.run(args) == 1  # exists, no --force
    assert "--force" in capsys.readouterr().err

    args = parser.parse_args(["inspect", str(bundle)])
    assert args.run(args) == 0
    out = capsys.readouterr().out
    assert "algorithm:     PPO" in out and "MultimodalExtractor" in out and "integrity:     ok" in out
    (bundle / WEIGHTS_NAME).write_bytes(b"0" + (bundle / WEIGHTS_NAME).read_bytes()[1:])
    assert args.run(args) == 1
    assert "FAILED: " in capsys.readouterr().out
