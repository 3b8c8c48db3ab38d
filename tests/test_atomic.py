"""Tests of ``mmrl.atomic``: files are replaced whole, and get the permissions a plain ``open()`` would give."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mmrl.atomic import atomic_path, write_json, write_text


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_files_follow_the_umask(tmp_path: Path) -> None:
    reference = tmp_path / "plain.txt"
    reference.write_text("x")  # what open() gives
    written = tmp_path / "atomic.txt"
    write_text(written, "x")
    assert mode(written) == mode(reference)
    assert mode(written) & 0o600 == 0o600


def test_replaced_files_keep_their_mode(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})
    os.chmod(path, 0o640)
    write_json(path, {"a": 2})
    assert mode(path) == 0o640 and '"a": 2' in path.read_text()


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


def test_bundle_directory_follows_the_umask(tmp_path: Path) -> None:
    from mmrl.atomic import temporary_dir

    reference = tmp_path / "plain"
    reference.mkdir()  # what mkdir gives
    assert mode(temporary_dir(tmp_path, ".x.", ".tmp")) == mode(reference)


def test_a_writer_that_replaces_the_temporary_file_still_gives_the_umask_mode(tmp_path: Path) -> None:
    """safetensors writes its own 0o600 file over the temporary name; the final file still follows the umask."""
    reference = tmp_path / "plain.txt"
    reference.write_text("x")
    path = tmp_path / "weights.safetensors"
    with atomic_path(path) as tmp:
        tmp.unlink()
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
        os.chmod(tmp, 0o600)
    assert mode(path) == mode(reference)


def test_every_file_of_an_exported_bundle_and_its_run_follows_the_umask(tmp_path: Path) -> None:
    import torch

    import mmrl

    previous = os.umask(0o022)
    try:
        torch.set_num_threads(1)
        run = tmp_path / "run"
        mmrl.train(
            "ppo",
            "mmrl/GoTo-5x5-v0",
            timesteps=32,
            n_envs=2,
            run_dir=run,
            progress_bar=False,
            eval_episodes=2,
            overrides={"n_steps": 16, "batch_size": 16, "n_epochs": 1, "features_dim": 16},
        )
        bundle = mmrl.export_run(run)
        files = [p for p in [*run.rglob("*"), *Path(bundle).rglob("*")] if p.is_file()]
        assert any(p.name == "weights.safetensors" for p in files)
        wrong = {str(p): oct(mode(p)) for p in files if mode(p) != 0o644}
        assert not wrong
    finally:
        os.umask(previous)
