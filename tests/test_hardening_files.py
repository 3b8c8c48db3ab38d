"""Issue 14: hostile plot inputs, tokenizer sizes, space descriptions and bundle manifests fail in one line, fast."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO

import mmrl
from mmrl.bundle import MANIFEST_NAME, export_bundle, manifest_hash, verify_bundle
from mmrl.cli import main
from mmrl.plotting import plot_runs, read_monitor
from mmrl.spaces_json import space_from_json
from mmrl.tokenizer import Tokenizer


def _monitor(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["#" + json.dumps({"t_start": 0.0}), "r,l,t", *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    "row",
    ["1.0,inf,0.1", "1.0,-5,0.1", "1.0,0,0.1", "1.0,2.5,0.1", "nan,3,0.1", "1.0,1e300,0.1"],
)
def test_damaged_monitor_rows_are_refused(tmp_path: Path, row: str) -> None:
    path = _monitor(tmp_path / "monitor.csv", ["0.5,10,0.0", row])
    with pytest.raises(ValueError, match="damaged"):
        read_monitor(path)


def test_plot_bins_are_bounded(tmp_path: Path) -> None:
    path = _monitor(tmp_path / "monitor.csv", [f"0.5,{n},0.0" for n in range(1, 30)])
    with pytest.raises(ValueError, match="MMRL_MAX_PLOT_BINS"):
        plot_runs([path], tmp_path / "out.png", bins=10**9)
    assert not (tmp_path / "out.png").exists()


def test_plot_cli_gives_one_line_for_inf_lengths(tmp_path: Path, capsys) -> None:
    path = _monitor(tmp_path / "monitor.csv", ["0.5,10,0.0", "1.0,inf,0.1"])
    assert main(["plot", str(path), "-o", str(tmp_path / "out.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err


def test_tokenizer_max_length_is_bounded() -> None:
    with pytest.raises(ValueError, match="MMRL_MAX_TOKEN_LENGTH"):
        Tokenizer(words=["go", "to"], max_length=10**12)


@pytest.mark.parametrize(
    "description",
    [
        {"type": "Box", "shape": [100_000, 100_000, 100], "dtype": "uint8", "low": 0, "high": 255},
        {"type": "MultiBinary", "n": [100_000, 100_000]},
        {"type": "MultiDiscrete", "nvec": [2] * 70_000_000},
    ],
)
def test_space_descriptions_are_size_checked_before_allocating(description: dict) -> None:
    with pytest.raises(ValueError, match="exceeds the limit"):
        space_from_json(description)


def test_space_description_depth_is_bounded() -> None:
    description: dict = {"type": "Discrete", "n": 2}
    for _ in range(200):
        description = {"type": "Dict", "spaces": {"a": description}}
    with pytest.raises(ValueError, match="nested deeper"):
        space_from_json(description)


def test_space_description_errors_do_not_repr_huge_values() -> None:
    with pytest.raises(ValueError) as error:
        space_from_json({"type": "Box", "shape": ["x" * 1_000_000]})
    assert len(str(error.value)) < 400


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = mmrl.make_vec_env("mmrl/GoTo-5x5-v0", 2, seed=0)
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=32, policy_kwargs=mmrl.policy_kwargs(), seed=0)
    return export_bundle(
        model, tmp_path_factory.mktemp("b") / "ppo.bundle", env=env, metadata={"env_id": "mmrl/GoTo-5x5-v0"}
    )


def _rewrite(bundle: Path, tmp_path: Path, edit) -> Path:
    copy = Path(shutil.copytree(bundle, tmp_path / "copy.bundle"))
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    edit(manifest)
    manifest["manifest_sha256"] = manifest_hash(manifest)  # an attacker recomputes the hash
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    return copy


def test_inspect_refuses_a_bundle_whose_env_id_names_a_module(bundle: Path, tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(bundle)]) == 0
    assert "integrity:     ok" in capsys.readouterr().out
    evil = _rewrite(bundle, tmp_path, lambda m: m["metadata"].update(env_id="this:mmrl/GoTo-5x5-v0"))
    assert main(["inspect", str(evil)]) == 1
    out = capsys.readouterr().out
    assert "integrity:     FAILED" in out and "The Zen of Python" not in out


def test_inspect_survives_malformed_weights(bundle: Path, tmp_path: Path, capsys) -> None:
    odd = _rewrite(bundle, tmp_path, lambda m: m.update(weights=[1, 2]))
    assert main(["inspect", str(odd)]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "Traceback" not in captured.err


def test_deeply_nested_manifest_is_one_line(bundle: Path, tmp_path: Path, capsys) -> None:
    copy = Path(shutil.copytree(bundle, tmp_path / "deep.bundle"))
    (copy / MANIFEST_NAME).write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        verify_bundle(copy)
    assert main(["inspect", str(copy)]) == 1
    err = capsys.readouterr().err.strip()
    assert "nested too deeply" in err and "\n" not in err


def test_manifest_that_is_not_a_regular_file_is_refused_fast(tmp_path: Path) -> None:
    folder = tmp_path / "fifo.bundle"
    folder.mkdir()
    import os

    os.mkfifo(folder / MANIFEST_NAME)
    with pytest.raises(ValueError, match="regular file"):
        verify_bundle(folder)
    np.testing.assert_equal((folder / MANIFEST_NAME).is_fifo(), True)


def test_bundle_net_arch_is_size_checked_before_building(bundle: Path, tmp_path: Path) -> None:
    huge = _rewrite(bundle, tmp_path, lambda m: m["policy_kwargs"].update(net_arch=[12000, 12000]))
    with pytest.raises(ValueError, match="MMRL_MAX_NET_PARAMS"):
        mmrl.load_policy(huge)
