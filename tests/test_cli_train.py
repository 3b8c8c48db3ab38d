"""``mmrl train`` / ``mmrl envs`` from the command line: in-process ``main([...])`` and as a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmrl.cli import main
from mmrl.training import RunDir, load_model

torch.set_num_threads(1)

ENV = "mmrl/Level-Corridor-v0"
TINY = ["--no-progress", "--n-envs", "2", "--set", "eval_episodes=2", "--set", "eval_freq=0"]
SB3_TINY = ["--set", "n_steps=16", "--set", "features_dim=16"]
ALGO_ARGS = {
    "ppo": [*SB3_TINY, "--set", "batch_size=32", "--set", "n_epochs=1"],
    "a2c": SB3_TINY,
    "dqn": ["--set", "features_dim=16", "--set", "buffer_size=500", "--set", "learning_starts=16"],
    "qlearning": ["--set", "env_kwargs.observation=compact"],
}


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmrl.cli", *args], capture_output=True, text=True, timeout=timeout, env=_env()
    )


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn", "qlearning"])
def test_train_each_algo(algo, tmp_path, capsys):
    run_dir = tmp_path / "run"
    spelled = algo.upper() if algo in ("ppo", "dqn") else algo  # --algo PPO works too
    argv = ["train", "--algo", spelled, "--env", ENV, "--timesteps", "64", "--run-dir", str(run_dir), *TINY]
    assert main([*argv, *ALGO_ARGS[algo], "--checkpoint-freq", "32"]) == 0
    out = capsys.readouterr().out
    assert "run directory" in out
    run = RunDir(run_dir)
    assert run.algo == algo and run.env_id == ENV
    assert run.model_path.is_file() and run.best_model_path.is_file()
    assert (run_dir / "monitor.csv").is_file() and (run_dir / "tb").is_dir()
    assert run.metrics["timesteps"] >= 64 and run.metrics["interrupted"] is False
    assert run.latest_checkpoint() is not None
    if algo != "qlearning":
        assert run.tokenizer_config is not None
    if algo == "dqn":
        assert run.latest_checkpoint().replay_buffer_path is not None
    model = load_model(run_dir)
    assert model.num_timesteps >= 64


def test_resume_continues_step_counter(tmp_path, capsys):
    run_dir = tmp_path / "run"
    base = ["train", "--algo", "ppo", "--env", ENV, "--run-dir", str(run_dir), *TINY, *ALGO_ARGS["ppo"]]
    assert main([*base, "--timesteps", "64", "--checkpoint-freq", "32"]) == 0
    first = RunDir(run_dir).latest_checkpoint().steps
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--timesteps", "128", "--no-progress"]) == 0
    run = RunDir(run_dir)
    assert run.metrics["timesteps"] >= 128 > first
    total = run.metrics["timesteps"]  # the summary counts this session's steps and names the run's total
    assert f"trained {total - first:,} more steps this session (total {total:,})" in capsys.readouterr().out
    assert load_model(run_dir).num_timesteps == run.metrics["timesteps"]
    lines = (run_dir / "monitor.csv").read_text().splitlines()
    assert sum(line.startswith("#") for line in lines) == 1  # appended, not truncated


def test_force_semantics(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = ["train", "--algo", "qlearning", "--env", ENV, "--timesteps", "32", "--run-dir", str(run_dir), *TINY]
    argv += ALGO_ARGS["qlearning"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "--force" in err and str(run_dir) in err and "Traceback" not in err
    assert main([*argv, "--force"]) == 0
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    argv[argv.index(str(run_dir))] = str(other)
    assert main([*argv, "--force"]) == 1
    assert (other / "precious.txt").read_text() == "keep"


BAD_INPUTS = {
    "unknown env": (["--algo", "ppo", "--env", "mmrl/GoTo-5x5"], "did you mean"),
    "unknown algo": (["--algo", "sac", "--env", ENV], "invalid choice"),
    "bad preset key": (["--algo", "ppo", "--env", ENV, "--set", "n_stepz=5"], "n_stepz"),
    "wrong type": (["--algo", "ppo", "--env", ENV, "--set", "n_steps=abc"], "n_steps"),
    "negative lr": (["--algo", "ppo", "--env", ENV, "--set", "learning_rate=-1"], "learning_rate"),
    "python tag": (["--algo", "ppo", "--env", ENV, "--set", "gamma=!!python/object/apply:os.system [ls]"], "!!python"),
    "missing resume": (["--resume", "/nonexistent/run"], "/nonexistent/run"),
    "zero envs": (["--algo", "ppo", "--env", ENV, "--n-envs", "0"], "--n-envs"),
    "negative timesteps": (["--algo", "ppo", "--env", ENV, "--timesteps", "-5"], "--timesteps"),
    "missing algo": (["--env", ENV], "--algo"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_inputs_in_process(name, tmp_path, capsys):
    args, expected = BAD_INPUTS[name]
    extra = [] if "--resume" in args else ["--run-dir", str(tmp_path / "r")]
    code = main(["train", *args, *extra, "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert expected.lower() in err.lower() and "Traceback" not in err
    assert not (tmp_path / "r" / "model.zip").exists()


def test_bad_preset_file(tmp_path, capsys):
    for text, expected in [
        ("default:\n  n_steps: 16\n  colour: red\n", "colour"),
        ("default:\n  n_steps: sixteen\n", "n_steps"),
        ("default:\n  learning_rate: -0.1\n", "learning_rate"),
        ("default:\n  gamma: !!python/object/apply:os.system [echo hi]\n", "!!python/object"),
    ]:
        preset = tmp_path / "p.yaml"
        preset.write_text(text)
        code = main(["train", "--algo", "ppo", "--env", ENV, "--preset", str(preset), "--run-dir", str(tmp_path / "r")])
        err = capsys.readouterr().err
        assert code == 1 and expected in err and str(preset) in err and "Traceback" not in err, err


def test_subprocess_bad_input_and_envs():
    result = run_cli("train", "--algo", "ppo", "--env", "mmrl/Nope-v0")
    assert result.returncode == 1
    assert result.stderr.startswith("error: unknown environment id") and "Traceback" not in result.stderr
    result = run_cli("train", "--algo", "ppo", "--env", ENV, "--timesteps", "-5")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    result = run_cli("envs")
    assert result.returncode == 0
    assert "mmrl/GoTo-5x5-v0" in result.stdout and "3 actions: left, right, forward" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    assert "14 actions: zero, one" in result.stdout  # VisualQuery: the answers


def test_subprocess_ctrl_c_saves_loadable_model(tmp_path):
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "mmrl.cli", "train", "--algo", "ppo", "--env", ENV, "--timesteps", "1000000"]
    args += ["--run-dir", str(run_dir), "--checkpoint-freq", "32", *TINY, *ALGO_ARGS["ppo"]]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.time() + 240
        while not list((run_dir / "checkpoints").glob("state_*_steps.json")):
            assert process.poll() is None, process.communicate()
            assert time.time() < deadline, "no checkpoint appeared"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert f"continue with: mmrl train --resume {run_dir}" in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["interrupted"] is True
    model = load_model(run_dir)
    assert model.num_timesteps == metrics["timesteps"] > 0
