"""README's Python blocks run as written (each in a fresh process, in an empty folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    """The README's ```python blocks; a block that uses names of the one before it (no imports of its own for
    them) is run after that one."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    runnable: list[str] = []
    for block in blocks:
        if runnable and "gym.make" in block and "import gymnasium as gym" not in block:
            runnable[-1] += "\n" + block
        else:
            runnable.append(block)
    return runnable


def test_readme_has_the_python_blocks_this_test_expects():
    blocks = python_blocks()
    assert len(blocks) >= 3
    assert "PPO(" in blocks[0] and "mmrl.train(" in blocks[1] and "auto_wrap" in blocks[2]


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs_as_written(index, tmp_path):
    block = python_blocks()[index]
    if "minigrid" in block:
        pytest.importorskip("minigrid")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    if index == 0:  # README: PPO's greedy success on 100 held-out episodes is 100 %
        success = re.search(r"success rate\s+([\d.]+) %", done.stdout)
        assert success is not None and float(success.group(1)) >= 95.0, done.stdout[-2000:]
