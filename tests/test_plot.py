"""Tests of ``mmrl.plotting`` and ``mmrl plot``: PNG of several runs, monitor parsing, CLI errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from mmrl.plotting import binned_curve, learning_curve_figure, plot_runs, read_monitor, smooth_curve
from mmrl.training.run_dir import write_run_marker


def fake_run(
    path: Path,
    seed: int,
    episodes: int = 40,
    success_column: bool = True,
    metrics: dict | None = None,
    always: bool | None = None,
) -> Path:
    """A run directory with config.yaml, a VecMonitor-style monitor.csv and, if given, metrics.json."""
    path.mkdir(parents=True)
    config = {"algo": "ppo", "env_id": "mmrl/GoTo-5x5-v0", "env_kwargs": {}, "seed": seed, "n_envs": 2}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    write_run_marker(path)
    rng = np.random.default_rng(seed)
    lines = ["#" + json.dumps({"t_start": 0.0, "env_id": "None"}), "r,l,t" + (",is_success" if success_column else "")]
    for i in range(episodes):
        success = rng.random() < i / episodes if always is None else always
        row = f"{float(success) * 0.9:.3f},{int(rng.integers(5, 30))},{i * 0.1:.3f}"
        lines.append(row + (f",{success}" if success_column else ""))
    (path / "monitor.csv").write_text("\n".join(lines) + "\n")
    if metrics is not None:
        (path / "metrics.json").write_text(json.dumps(metrics))
    return path


def metrics_of(seed: int) -> dict:
    """metrics.json with two held-out evaluations and a random baseline that differ by seed."""
    evaluations = [
        {"timesteps": 200, "success_rate": 0.2 + 0.1 * seed, "mean_return": 0.1, "std_return": 0.0, "episodes": 10},
        {"timesteps": 400, "success_rate": 0.8, "mean_return": 0.7 + 0.1 * seed, "std_return": 0.0, "episodes": 10},
    ]
    baseline = {
        "success_rate": 0.1 + 0.2 * seed,
        "mean_return": 0.05,
        "episodes": 50,
        "seed": 7,
        "deterministic": False,
    }
    return {"success_rate": 0.8, "evaluations": evaluations, "random_baseline": baseline}


def labelled(axis, label: str) -> list:
    return [line for line in axis.get_lines() if line.get_label() == label]


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


def test_plot_shows_baseline_heldout_points_and_clipped_bands(tmp_path: Path) -> None:
    runs = [fake_run(tmp_path / f"seed{seed}", seed, metrics=metrics_of(seed)) for seed in (0, 1, 2)]
    figure = learning_curve_figure(runs, bins=10)
    returns_axis, success_axis = figure.axes
    assert figure._suptitle.get_text() == "mmrl/GoTo-5x5-v0 — ppo, 3 seeds"
    (baseline,) = labelled(success_axis, "random policy")
    assert baseline.get_ydata()[0] == pytest.approx(0.3)  # mean of 0.1, 0.3, 0.5 over the three runs
    (points,) = labelled(success_axis, "held-out (greedy)")
    np.testing.assert_allclose(points.get_xdata(), [200, 400])
    np.testing.assert_allclose(points.get_ydata(), [0.3, 0.8])  # averaged over the runs per timestep
    assert points.get_marker() == "o"
    (training,) = labelled(success_axis, "training episodes (sampled) (3 runs)")
    assert training.get_linestyle() != points.get_linestyle()
    assert labelled(returns_axis, "random policy")[0].get_ydata()[0] == pytest.approx(0.05)
    assert success_axis.get_ylim()[1] <= 1.05 and success_axis.get_ylim()[0] >= -0.05
    # two seeds always succeed and one never (or the reverse): mean +- std would reach 1.14 (or -0.14) unclipped
    for always in ([True, True, False], [True, False, False]):
        extremes = [
            fake_run(tmp_path / f"x{sum(always)}-{seed}", seed, always=value) for seed, value in enumerate(always)
        ]
        (band,) = learning_curve_figure(extremes, bins=10).axes[1].collections
        vertices = band.get_paths()[0].vertices
        assert vertices[:, 1].max() <= 1.0 and vertices[:, 1].min() >= 0.0  # std band clipped to [0, 1]
        assert vertices[:, 1].max() == 1.0 or vertices[:, 1].min() == 0.0
    (band,) = success_axis.collections
    assert band.get_paths()[0].vertices[:, 1].max() <= 1.0
    assert "held-out (greedy)" in success_axis.get_legend_handles_labels()[1]
    assert learning_curve_figure(runs, bins=10, title="mine")._suptitle.get_text() == "mine"


def test_plot_of_old_runs_without_metrics_keys(tmp_path: Path) -> None:
    old = fake_run(tmp_path / "old", 0, metrics={"success_rate": 0.5, "mean_return": 0.4})
    figure = learning_curve_figure([old, fake_run(tmp_path / "none", 1)], bins=10)
    labels = [line.get_label() for axis in figure.axes for line in axis.get_lines()]
    assert "random policy" not in labels and "held-out (greedy)" not in labels
    assert "training episodes (sampled) (2 runs)" in labels
    (tmp_path / "old" / "metrics.json").write_text("{not json")
    assert learning_curve_figure([old], bins=10)._suptitle.get_text() == "mmrl/GoTo-5x5-v0 — ppo, 1 seed"


def test_smoothing() -> None:
    curve = np.array([0.0, 1.0, 0.0, 1.0, np.nan, 1.0])
    np.testing.assert_allclose(smooth_curve(curve, 1), curve)
    smoothed = smooth_curve(curve, 3)
    np.testing.assert_allclose(smoothed[:4], [0.5, 1 / 3, 2 / 3, 0.5])
    assert np.isnan(smoothed[4]) and smoothed[5] == pytest.approx(1.0)  # NaN kept, left out of neighbours


def test_smooth_option_changes_the_curve(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "a", 0, episodes=200)

    def training_curve(smooth: int) -> np.ndarray:
        axis = learning_curve_figure([run], bins=40, smooth=smooth).axes[1]
        return labelled(axis, "training episodes (sampled)")[0].get_ydata()

    raw, smoothed = training_curve(1), training_curve(9)
    assert np.abs(np.diff(smoothed)).sum() < 0.6 * np.abs(np.diff(raw)).sum()  # less jagged
    with pytest.raises(ValueError, match="smooth"):
        learning_curve_figure([run], smooth=0)


def test_cli_plot_smooth_and_title(tmp_path: Path, monkeypatch) -> None:
    import mmrl.plotting

    seen = {}

    def spy(run_dirs, output, bins, title, smooth):
        seen.update(bins=bins, title=title, smooth=smooth)
        return Path(output)

    monkeypatch.setattr(mmrl.plotting, "plot_runs", spy)
    run = str(fake_run(tmp_path / "a", 0))
    assert cli([run, "--smooth", "1", "--title", "T"]) == 0
    assert seen == {"bins": 50, "title": "T", "smooth": 1}
    assert cli([run]) == 0 and seen["smooth"] == 5 and seen["title"] is None
