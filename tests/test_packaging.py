"""An installed wheel (not only the editable checkout) ships the level files and presets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_finds_built_in_levels(tmp_path):
    wheel_dir = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = wheel_dir.glob("mmrl_multimodal-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], check=True
    )
    script = (
        "import mmrl, gymnasium as gym\n"
        "from mmrl.envs import env_ids\n"
        "from mmrl.resources import data_dir\n"
        "print(mmrl.__file__)\n"
        "print(data_dir('envs'))\n"
        "print(data_dir('agents'))\n"
        "ids = [i for i in env_ids() if i.startswith('mmrl/Level-')]\n"
        "print(','.join(ids))\n"
        "env = gym.make(ids[0]); env.reset(seed=0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].startswith(str(site)), out
    assert out[1] == str(site / "mmrl" / "_data" / "envs")
    assert out[2] == str(site / "mmrl" / "_data" / "agents")
    assert {"mmrl/Level-Corridor-v0", "mmrl/Level-TwoRooms-v0", "mmrl/Level-KeyDoor-v0"} <= set(out[3].split(","))
