"""The algorithm registry (mmrl.algorithms), and training features that go through it: recurrent PPO, the
non-finite guard of ``mmrl train``, and extra callbacks."""

from __future__ import annotations

import importlib
import json
import re
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

import mmrl
from mmrl.algorithms import ALGORITHMS, algorithm_names, get_spec, sniff_model_file
from mmrl.training.presets import preset_path

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent
ENV_ID = "mmrl/GoTo-5x5-v0"
TINY = {"features_dim": 16}


def test_every_algorithm_has_its_preset_and_cli_choice() -> None:
    from mmrl.cli import build_parser

    assert set(algorithm_names()) >= {"ppo", "a2c", "dqn", "qlearning", "recurrent_ppo"}
    for name in algorithm_names():
        assert preset_path(name).is_file()
    parser = build_parser()
    for name in algorithm_names():
        assert parser.parse_args(["train", "--algo", name, "--env", ENV_ID]).algo == name
    with pytest.raises(ValueError, match="unknown algorithm 'sac'; expected one of ppo, a2c"):
        get_spec("sac")


def test_no_algorithm_name_comparisons_outside_the_registry() -> None:
    pattern = re.compile(r"algo ==|algo (in|not in) \(")
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in (REPO / "mmrl").rglob("*.py")
        if path.name != "algorithms.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_sniffer_names_each_sb3_algorithm(algo: str, tmp_path: Path) -> None:
    model = get_spec(algo).load_class()("MlpPolicy", gym.make("CartPole-v1"), verbose=0)
    model.save(tmp_path / "m.zip")
    assert sniff_model_file(tmp_path / "m.zip") == algo


def test_sniffer_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    foreign = tmp_path / "qrdqn.zip"
    with zipfile.ZipFile(foreign, "w") as archive:  # sb3-contrib's QR-DQN: looks like DQN, is not
        archive.writestr(
            "data", json.dumps({"policy_class": {"__module__": "sb3_contrib.qrdqn.policies"}, "exploration_rate": 0.1})
        )
    with pytest.raises(ValueError, match="cannot tell which algorithm"):
        sniff_model_file(foreign)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"not an SB3 model zip or a QLearning \.npz"):
        sniff_model_file(tmp_path / "junk.zip")


def test_missing_extra_names_the_install_command(monkeypatch) -> None:
    real_import = importlib.import_module

    def no_contrib(name, *args, **kwargs):
        if name.startswith("sb3_contrib"):
            raise ModuleNotFoundError("No module named 'sb3_contrib'", name="sb3_contrib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_contrib)
    with pytest.raises(ImportError, match=r"pip install 'mmrl-multimodal\[recurrent\]'") as error:
        ALGORITHMS["recurrent_ppo"].load_class()
    assert "\n" not in str(error.value)


def test_recurrent_ppo_trains_evaluates_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    run_dir = tmp_path / "run"
    overrides = {"n_steps": 32, "batch_size": 64, "n_epochs": 1, "lstm_hidden_size": 16, **TINY}
    first = mmrl.train(
        "recurrent_ppo",
        ENV_ID,
        timesteps=256,
        n_envs=4,
        overrides=overrides,
        run_dir=run_dir,
        progress_bar=False,
        eval_freq=128,
        eval_episodes=4,
        checkpoint_freq=128,
        stop_at=128,
    )
    assert first.metrics["stopped"] and first.metrics["timesteps"] == 128
    assert type(first.model).__name__ == "RecurrentPPO" and first.model.policy.lstm_actor.hidden_size == 16
    assert sniff_model_file(run_dir / "model.zip") == "recurrent_ppo"
    report = mmrl.evaluate(run_dir, episodes=4, n_envs=2)
    assert report.algo == "recurrent_ppo" and len(report.returns) == 4
    resumed = mmrl.train(resume=run_dir, algo=None, timesteps=256, progress_bar=False)
    assert resumed.metrics["timesteps"] == 256 and not resumed.metrics["interrupted"]


class NaNRewardEnv(gym.Env):
    """Box observations; the reward turns NaN at step 40 (keyword arguments, e.g. the preset's, are ignored)."""

    observation_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, **kwargs) -> None:
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(3, np.float32), {}

    nan_from: int | None = 40

    def step(self, action):
        self.steps += 1
        reward = float("nan") if self.nan_from is not None and self.steps >= self.nan_from else 0.0
        return np.zeros(3, np.float32), reward, False, self.steps % 10 == 0, {}


class ZeroRewardEnv(NaNRewardEnv):
    nan_from = None


def test_guard_accepts_rollouts_without_any_reward(tmp_path: Path) -> None:
    """SB3 logs a NaN explained variance when a rollout's returns are all equal: not a reason to stop."""
    if "mmrltest/ZeroReward-v0" not in gym.registry:
        gym.register("mmrltest/ZeroReward-v0", entry_point=ZeroRewardEnv)
    result = mmrl.train(
        "ppo",
        "mmrltest/ZeroReward-v0",
        timesteps=128,
        n_envs=2,
        overrides={"n_steps": 32, "batch_size": 32},
        run_dir=tmp_path / "run",
        progress_bar=False,
        eval_episodes=1,
    )
    assert result.config.check_finite and result.metrics["timesteps"] == 128


@pytest.fixture
def nan_env_id():
    env_id = "mmrltest/NaNReward-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=NaNRewardEnv)
    return env_id


def test_mmrl_train_stops_on_a_nan_reward_with_one_line(nan_env_id: str, tmp_path: Path, capsys) -> None:
    from mmrl.cli import main

    args = ["train", "--algo", "ppo", "--env", nan_env_id, "--timesteps", "256", "--n-envs", "2"]
    args += ["--set", "n_steps=32", "--set", "batch_size=32", "--run-dir", str(tmp_path / "run"), "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: NonFiniteGuard: rewards contain NaN") and err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize("check_finite", [True, False])
def test_check_finite_switches_the_guard(check_finite: bool, tmp_path: Path, monkeypatch) -> None:
    import mmrl.safety

    built = []
    real = mmrl.safety.NonFiniteGuard
    monkeypatch.setattr(mmrl.safety, "NonFiniteGuard", lambda **kwargs: built.append(kwargs) or real(**kwargs))
    result = mmrl.train(
        "a2c",
        ENV_ID,
        timesteps=32,
        n_envs=2,
        overrides={"n_steps": 8, "check_finite": check_finite, **TINY},
        run_dir=tmp_path / "run",
        progress_bar=False,
        eval_episodes=1,
    )
    assert result.config.check_finite is check_finite
    assert built == ([{"check_parameters": True, "check_losses": True}] if check_finite else [])


class Counting(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.rollouts = 0

    def _on_step(self) -> bool:
        self.steps += 1
        return True

    def _on_rollout_start(self) -> None:
        self.rollouts += 1


def test_extra_callbacks_see_every_step(tmp_path: Path) -> None:
    extra = Counting()
    mmrl.train(
        "a2c",
        ENV_ID,
        timesteps=64,
        n_envs=2,
        overrides={"n_steps": 8, **TINY},
        run_dir=tmp_path / "run",
        progress_bar=False,
        eval_episodes=1,
        callbacks=[extra],
    )
    assert extra.steps == 32 and extra.rollouts == 4
    with pytest.raises(TypeError, match="callbacks must be a list"):
        mmrl.train("a2c", ENV_ID, timesteps=64, run_dir=tmp_path / "other", callbacks=extra)  # type: ignore[arg-type]


def test_recurrent_preset_gives_the_5x5_family_symbolic_cells_and_sequence_a_word_order_encoder():
    from mmrl.training.presets import load_preset

    def preset(env_id: str) -> dict:
        return load_preset(preset_path("recurrent_ppo"), "recurrent_ppo", env_id)

    for env_id in ("mmrl/GoTo-5x5-v0", "mmrl/PickUp-5x5-v0", "mmrl/Sequence-5x5-v0"):
        assert preset(env_id)["env_kwargs"]["image_mode"] == "symbolic" and preset(env_id)["n_epochs"] == 8
    assert preset("mmrl/Sequence-5x5-v0")["text_encoder"] == "gru"
    assert preset("mmrl/Sequence-5x5-v0")["timesteps"] == 200_000 and preset("mmrl/Sequence-5x5-v0")["gamma"] == 0.9
    assert preset("mmrl/GoTo-v0")["env_kwargs"].get("image_mode") is None
