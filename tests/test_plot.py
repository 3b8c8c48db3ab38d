"""Tests of ``mmrl.plotting`` and ``mmrl plot``: PNG of several runs, monitor parsing, CLI errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from mmrl.plotting import binned_curve, plot_runs, read_monitor
from mmrl.training.run_dir import write_run_marker


def fake_run(path: Path, seed: int, episodes: int = 40, success_column: bool = True) -> Path:
    """A run directory with config.yaml and a VecMonitor-style monitor.csv."""
    path.mkdir(parents=True)
    config = {"algo": "ppo", "env_id": "mmrl/GoTo-5x5-v0", "env_kwargs": {}, "seed": seed, "n_envs": 2}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    write_run_marker(path)
    rng = np.random.default_rng(seed)
    lines = ["#" + json.dumps({"t_start": 0.0, "env_id": "None"}), "r,l,t" + (",is_success" if success_column else "")]
    for i in range(episodes):
        success = rng.random() < i / episodes
        row = f"{float(success) * 0.9:.3f},{int(rng.integers(5, 30))},{i * 0.1:.3f}"
        lines.append(row + (f",{success}" if success_column else ""))
    (path / "monitor.csv").write_text("\n".join(lines) + "\n")
    return path


def test_read_monitor(tmp_path: Path) -> None:
    log = read_monitor(fake_run(tmp_path / "a", 0))
    assert len(log.returns) == 40 and log.successes is not None
    assert np.all(np.diff(log.timesteps) > 0) and log.timesteps[-1] == log.lengths.sum()
    assert read_monitor(fake_run(tmp_path / "b", 1, success_column=False)).successes is None


def test_binned_curve_interpolates_gaps() -> None:
    curve = binned_curve(np.array([1.0, 9.0]), np.array([0.0, 1.0]), np.linspace(0, 10, 6))
    np.testing.assert_allclose(curve, [0.0, 0.25, 0.5, 0.75, 1.0])


def test_plot_two_runs(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / f"seed{seed}", seed) for seed in (0, 1)]
    out = plot_runs(runs, tmp_path / "plots" / "curves.png", bins=10, title="GoTo")
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["curves.png"]  # no temporary left


def test_plot_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"monitor\.csv"):
        plot_runs([tmp_path / "empty"], tmp_path / "c.png")
    with pytest.raises(FileNotFoundError):
        plot_runs([tmp_path / "missing"], tmp_path / "c.png")
    with pytest.raises(ValueError, match="png"):
        plot_runs([fake_run(tmp_path / "a", 0)], tmp_path / "c.jpg")
    binary = tmp_path / "model.zip"
    binary.write_bytes(b"PK\x03\x04\xac\xff\x00 not text")
    with pytest.raises(ValueError, match=r"model\.zip is not an SB3 monitor CSV .*run directory"):
        plot_runs([binary], tmp_path / "c.png")


def cli(argv: list[str]) -> int:
    from mmrl.cli import plot as plot_cli

    parser = argparse.ArgumentParser(prog="mmrl")
    plot_cli.register(parser.add_subparsers())
    args = parser.parse_args(["plot", *argv])
    return args.run(args)


def test_cli_plot(tmp_path: Path, capsys) -> None:
    runs = [str(fake_run(tmp_path / f"seed{seed}", seed)) for seed in (0, 1)]
    out = tmp_path / "curves.png"
    assert cli([*runs, "-o", str(out)]) == 0
    assert out.is_file()
    assert cli([str(tmp_path / "missing"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
