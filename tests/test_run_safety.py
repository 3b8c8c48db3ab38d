"""Run directories are safe from bad settings: nothing is created, replaced or left behind by a run that cannot start;
bad settings give one-line errors; --resume refuses flags it would ignore; envs without ``is_success`` train."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

import mmrl
from mmrl.cli import main
from mmrl.training import RunDir
from mmrl.training.run_dir import write_run_marker

torch.set_num_threads(1)

ENV = "mmrl/Level-Corridor-v0"
GOTO = "mmrl/GoTo-5x5-v0"
TINY = ["--no-progress", "--n-envs", "2", "--set", "eval_episodes=2", "--set", "eval_freq=0"]
PPO_TINY = ["--set", "n_steps=16", "--set", "features_dim=16", "--set", "batch_size=32", "--set", "n_epochs=1"]

#: Settings that only the env, the extractor or SB3 can check, or that presets must range-check.
BAD_SETTINGS = {
    "fusion typo": (["--algo", "ppo", "--env", GOTO, "--fusion", "gatd"], "gatd"),
    "text encoder": (["--algo", "ppo", "--env", GOTO, "--text-encoder", "bogus"], "bogus"),
    "env kwarg value": (["--algo", "ppo", "--env", GOTO, "--set", "env_kwargs.view=bogus"], "view"),
    "env kwarg name": (["--algo", "ppo", "--env", GOTO, "--set", "env_kwargs.bogus=1"], "bogus"),
    "env kwarg type": (["--algo", "ppo", "--env", GOTO, "--set", "env_kwargs.channels_first=notabool"], "channels"),
    "device": (["--algo", "ppo", "--env", ENV, "--set", "device=bogus"], "device"),
    "batch size 1": (["--algo", "ppo", "--env", ENV, "--set", "batch_size=1"], "batch_size"),
    "one-step rollout": (["--algo", "ppo", "--env", ENV, "--set", "n_steps=1", "--n-envs", "1"], "n_steps"),
    "dqn train_freq 0": (["--algo", "dqn", "--env", ENV, "--set", "train_freq=0"], "train_freq"),
    "negative clip range": (["--algo", "ppo", "--env", ENV, "--set", "clip_range=-1"], "clip_range"),
    "qlearning lr > 1": (["--algo", "qlearning", "--env", ENV, "--set", "learning_rate=5"], "learning_rate"),
}


def _fake_finished_run(path: Path) -> dict[str, bytes]:
    """A run directory's files (content does not matter: a bad new run must leave them untouched)."""
    files = {
        "mmrl-run.json": b'{"format": "mmrl.run_dir", "format_version": 1}',
        "config.yaml": b"algo: ppo\nenv_id: mmrl/GoTo-5x5-v0\n",
        "model.zip": b"model",
        "best_model.zip": b"best",
        "metrics.json": b"{}",
        "checkpoints/state_64_steps.json": b"{}",
        "checkpoints/model_64_steps.zip": b"model",
    }
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return files


@pytest.mark.parametrize("name", list(BAD_SETTINGS))
def test_bad_setting_fails_in_one_line_and_creates_nothing(name, tmp_path, capsys):
    args, expected = BAD_SETTINGS[name]
    run_dir = tmp_path / "run"
    code = main(["train", *args, "--timesteps", "64", "--run-dir", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert expected.lower() in err.lower(), err
    assert not run_dir.exists(), f"{name}: a run that cannot start left {sorted(p.name for p in run_dir.iterdir())}"


@pytest.mark.parametrize("name", ["fusion typo", "env kwarg name", "batch size 1"])
def test_force_with_bad_setting_keeps_the_old_run(name, tmp_path, capsys):
    args, _ = BAD_SETTINGS[name]
    run_dir = tmp_path / "victim"
    files = _fake_finished_run(run_dir)
    assert main(["train", *args, "--timesteps", "64", "--run-dir", str(run_dir), "--force", "--no-progress"]) == 1
    assert "Traceback" not in capsys.readouterr().err
    for file_name, data in files.items():
        assert (run_dir / file_name).read_bytes() == data, f"{file_name} was lost"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["victim"], "no temporary sibling may be left"


def test_force_replaces_a_run_once_the_new_one_is_valid(tmp_path, capsys):
    run_dir = tmp_path / "run"
    _fake_finished_run(run_dir)
    argv = ["train", "--algo", "qlearning", "--env", ENV, "--timesteps", "32", "--run-dir", str(run_dir), *TINY]
    assert main([*argv, "--force"]) == 0
    assert not (run_dir / "best_model.zip").exists() and (run_dir / "model.npz").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_failure_before_the_first_step_leaves_no_directory(tmp_path, monkeypatch, capsys):
    """An error after the run directory was created but before any training step removes it, so that the same
    command can simply be run again (the directory would otherwise hold an unresumable config.yaml)."""
    from stable_baselines3 import PPO

    def broken_learn(self, *args, **kwargs):
        raise OSError("disk on fire")

    run_dir = tmp_path / "run"
    argv = ["train", "--algo", "ppo", "--env", ENV, "--timesteps", "32", "--run-dir", str(run_dir), *TINY, *PPO_TINY]
    with monkeypatch.context() as patch:
        patch.setattr(PPO, "learn", broken_learn)
        assert main(argv) == 1
    assert "disk on fire" in capsys.readouterr().err
    assert not run_dir.exists()
    assert main(argv) == 0
    assert RunDir(run_dir).latest_checkpoint() is not None


def test_existing_directory_message_is_accurate(tmp_path, capsys):
    """--resume is suggested only where there is a checkpoint to resume; for `mmrl demo` it names `mmrl train`."""
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "config.yaml").write_text("algo: ppo\nenv_id: mmrl/GoTo-5x5-v0\n")
    write_run_marker(junk)
    assert main(["train", "--algo", "ppo", "--env", ENV, "--run-dir", str(junk), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--resume" not in err and "--force" in err and "first checkpoint" in err, err

    finished = tmp_path / "demo" / "run"
    finished.mkdir(parents=True)
    _fake_finished_run(finished)
    assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"mmrl train --resume {finished}" in err and "--force" in err, err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "flags",
    [
        ["--seed", "1"],
        ["--n-envs", "2"],
        ["--preset", "x.yaml"],
        ["--set", "learning_rate=0.1"],
        ["--fusion", "film"],
        ["--text-encoder", "bow"],
        ["--eval-freq", "10"],
        ["--checkpoint-freq", "10"],
    ],
)
def test_resume_refuses_flags_it_would_ignore(flags, tmp_path, capsys):
    code = main(["train", "--resume", str(tmp_path), "--timesteps", "64", *flags, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and flags[0] in err, err


def test_api_resume_refuses_arguments_it_would_ignore(tmp_path):
    with pytest.raises(ValueError, match="n_envs"):
        mmrl.train("ppo", resume=tmp_path, n_envs=4, progress_bar=False)
    with pytest.raises(ValueError, match="--set"):
        mmrl.train("ppo", resume=tmp_path, overrides=["gamma=0.5"], progress_bar=False)


def test_env_without_is_success_trains(tmp_path, capsys):
    """CartPole reports no info["is_success"]: training works, monitor.csv has no is_success column (an empty one
    would read as failures), and the success rates are None."""
    preset = tmp_path / "empty.yaml"
    preset.write_text("")
    run_dir = tmp_path / "cart"
    argv = ["train", "--algo", "ppo", "--env", "CartPole-v1", "--preset", str(preset), "--timesteps", "128"]
    argv += ["--run-dir", str(run_dir), *TINY, "--set", "n_steps=64", "--set", "batch_size=64"]
    assert main(argv) == 0, capsys.readouterr().err
    assert "success n/a" in capsys.readouterr().out
    metrics = RunDir(run_dir).metrics
    assert metrics["success_rate"] is None and metrics["train_success_rate"] is None
    lines = (run_dir / "monitor.csv").read_text().splitlines()
    assert lines[0].startswith("#") and lines[1] == "r,l,t" and len(lines) > 2


def test_monitor_logs_is_success_where_reported(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--algo", "qlearning", "--env", ENV, "--timesteps", "64", "--run-dir", str(run_dir), *TINY]
    assert main(argv) == 0
    with open(run_dir / "monitor.csv", newline="") as handle:
        handle.readline()
        rows = list(csv.DictReader(handle))
    assert rows and all(row["is_success"] in ("True", "False") for row in rows)
