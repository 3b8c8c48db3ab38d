"""``mmrl train / evaluate / export --env ID`` for other packages' envs: the wrappers are chosen by auto_wrap,
recorded in the run, and re-applied by evaluation; envs without image or text get SB3's default policy."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from mmrl.cli import main

TINY = ["--set", "n_steps=32", "--set", "batch_size=64", "--set", "n_epochs=1", "--set", "eval_episodes=4"]


@pytest.fixture(autouse=True)
def fresh_auto_wrap_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto_wrap logs each distinct choice once per process; each test starts with none logged."""
    import mmrl.wrappers.auto as auto

    monkeypatch.setattr(auto, "_LOGGED", set())


def _train(tmp_path, env_id, capsys):
    torch.set_num_threads(1)
    run = tmp_path / "run"
    argv = ["train", "--algo", "ppo", "--env", env_id, "--timesteps", "256", "--n-envs", "2", "--no-progress"]
    assert main([*argv, "--run-dir", str(run), *TINY]) == 0
    captured = capsys.readouterr()
    return run, captured


@pytest.mark.slow
def test_babyai_level_trains_evaluates_and_exports_with_its_recorded_wrappers(tmp_path, capsys):
    pytest.importorskip("minigrid")
    run, captured = _train(tmp_path, "BabyAI-GoToObj-v0", capsys)
    assert "mmrl auto_wrap:" in captured.err and "cells embedded" in captured.err
    config = yaml.safe_load((run / "config.yaml").read_text())
    names = [step["wrapper"] for step in config["env_wrappers"]["wrappers"]]
    assert names == ["MiniGridSuccess", "FilterObservation", "MiniGridSymbolicImage", "TokenizeText"]
    assert "held-out evaluation" in captured.out and "success n/a" not in captured.out  # read from the reward
    assert "channels_first" not in config["env_kwargs"]  # mmrl-only env arguments are not passed on
    from stable_baselines3 import PPO

    extractor = PPO.load(run / "model.zip", device="cpu").policy.features_extractor
    assert type(extractor.image_encoders[0]).__name__ == "FactoredCNN"  # the one-line path's network
    assert type(extractor.fusion).__name__ == "FiLMFusion"
    out = tmp_path / "report.json"
    assert main(["evaluate", str(run), "--episodes", "3", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["env_id"] == "BabyAI-GoToObj-v0"
    assert main(["export", str(run)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run / "policy.bundle"), "--episodes", "2"]) == 0
    assert "BabyAI-GoToObj-v0" in capsys.readouterr().out


def test_cartpole_falls_back_to_sb3s_default_policy(tmp_path, capsys):
    run, captured = _train(tmp_path, "CartPole-v1", capsys)
    assert "nothing to wrap" in captured.err
    from mmrl.training.run_dir import load_model

    model = load_model(run)
    assert type(model.policy).__name__ == "ActorCriticPolicy"  # MlpPolicy, not the multimodal extractor
    assert main(["evaluate", str(run), "--episodes", "3"]) == 0
    printed = capsys.readouterr().out
    assert "random policy   return" in printed and "per template" not in printed


def test_a_missing_family_package_is_one_line_naming_the_extra(monkeypatch, capsys):
    import mmrl.env_packages as packages

    monkeypatch.setitem(packages.ENV_PACKAGES, "NoSuchFamily-", ("no_such_package_xyz", "nosuch"))
    assert main(["train", "--algo", "ppo", "--env", "NoSuchFamily-Level-v0", "--timesteps", "64"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no_such_package_xyz" in err and '".[nosuch]"' in err


def test_unknown_and_module_prefixed_ids_are_refused(capsys):
    assert main(["train", "--algo", "ppo", "--env", "NotAnEnv-v0", "--timesteps", "64"]) == 1
    assert "not registered with Gymnasium" in capsys.readouterr().err
    assert main(["train", "--algo", "ppo", "--env", "evilmod:Thing-v0", "--timesteps", "64"]) == 1
    assert "names a module to import" in capsys.readouterr().err


@pytest.mark.slow
def test_a_stopped_babyai_run_resumes_with_its_recorded_wrappers(tmp_path, capsys):
    """--resume rebuilds the env from config.yaml's env_wrappers: the checkpoint's observation space must match."""
    pytest.importorskip("minigrid")
    torch.set_num_threads(1)
    run = tmp_path / "run"
    argv = ["train", "--algo", "PPO", "--env", "BabyAI-GoToObj-v0", "--timesteps", "256", "--n-envs", "2"]
    assert main([*argv, "--no-progress", "--stop-at", "128", "--run-dir", str(run), *TINY]) == 0
    assert "--resume" in capsys.readouterr().out
    # SB3 refuses a checkpoint whose observation space differs from the env's: the unwrapped BabyAI env
    # (direction key, 0..255 image, Text mission) would fail here.
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert "total 256" in capsys.readouterr().out
    assert json.loads((run / "metrics.json").read_text())["timesteps"] >= 256
