"""Issue 14 for the training / evaluation / bundle layer: bad inputs lose nothing, execute nothing, end within
seconds, and fail with one line. Cases that could crash or hang run in a subprocess with a timeout."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import mmrl
from mmrl.bundle import MANIFEST_NAME, check_bundle_metadata, manifest_hash
from mmrl.cli import main
from mmrl.training.claim import RunLock
from mmrl.training.run_dir import RUN_MARKER

torch.set_num_threads(1)
ENV = "mmrl/GoTo-5x5-v0"
QL = ["--algo", "qlearning", "--env", "mmrl/Level-Corridor-v0", "--timesteps", "200", "--no-progress"]
PPO_TINY = {"n_steps": 32, "batch_size": 32, "features_dim": 16}


def one_line_error(err: str) -> str:
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mmrl.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def train_ppo(run_dir: Path, **kwargs) -> mmrl.training.TrainResult:
    return mmrl.train(
        "ppo",
        ENV,
        timesteps=kwargs.pop("timesteps", 128),
        n_envs=2,
        overrides={**PPO_TINY, **kwargs.pop("overrides", {})},
        text_encoder="bow",
        run_dir=run_dir,
        progress_bar=False,
        eval_freq=0,
        eval_episodes=2,
        **kwargs,
    )


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "ppo"
    train_ppo(run_dir, stop_at=64, checkpoint_freq=64)
    return run_dir


@pytest.fixture(scope="module")
def bundle(ppo_run: Path, tmp_path_factory) -> Path:
    return mmrl.export_run(ppo_run, tmp_path_factory.mktemp("bundles") / "policy.bundle")


def tampered_bundle(bundle: Path, folder: Path, **metadata) -> Path:
    """A copy of ``bundle`` with ``metadata`` changed and the manifest hash recomputed (as an attacker would)."""
    import shutil

    copy = folder / "tampered.bundle"
    shutil.copytree(bundle, copy)
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    manifest["metadata"].update(metadata)
    manifest["manifest_sha256"] = manifest_hash(manifest)
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    return copy


# ------------------------------------------------------------------------------------------------- data loss
def test_force_never_deletes_a_folder_mmrl_did_not_write(tmp_path, capsys) -> None:
    victim = tmp_path / "p"
    (victim / "src").mkdir(parents=True)
    (victim / "thesis.tex").write_text("x")
    (victim / "config.yaml").write_text("lr: 1\n")
    before = files_of(victim)
    assert main(["train", *QL, "--run-dir", str(victim), "--force"]) == 1
    assert "not an mmrl run directory" in one_line_error(capsys.readouterr().err)
    assert files_of(victim) == before and (victim / "src").is_dir()


def test_export_force_never_deletes_a_folder_that_is_not_a_bundle(ppo_run, tmp_path, capsys) -> None:
    target = tmp_path / "out"
    target.mkdir()
    (target / MANIFEST_NAME).write_text('{"mine": true}')
    (target / "notes.txt").write_text("keep")
    before = files_of(target)
    assert main(["export", str(ppo_run), "-o", str(target), "--force"]) == 1
    assert "not a policy bundle" in capsys.readouterr().err
    assert files_of(target) == before


@pytest.mark.parametrize("setting", ["ent_coef=.nan", "learning_rate=.inf"])
def test_non_finite_settings_are_refused_up_front_and_keep_the_old_run(setting, ppo_run, tmp_path, capsys) -> None:
    before = files_of(ppo_run)
    args = ["train", "--algo", "ppo", "--env", ENV, "--timesteps", "64", "--no-progress", "--set", setting]
    assert main([*args, "--run-dir", str(ppo_run), "--force"]) == 1
    assert "finite" in one_line_error(capsys.readouterr().err)
    assert files_of(ppo_run) == before
    assert main([*args, "--run-dir", str(tmp_path / "new")]) == 1
    assert not (tmp_path / "new").exists()


@pytest.mark.slow  # a subprocess: ~15 s of imports on a loaded 2-core machine
def test_device_meta_keeps_the_old_run(ppo_run, tmp_path) -> None:
    before = files_of(ppo_run)
    args = ["train", "--algo", "ppo", "--env", ENV, "--timesteps", "64", "--n-envs", "2", "--no-progress"]
    args += ["--set", "n_steps=32", "--set", "batch_size=32", "--set", "device=meta", "--run-dir", str(ppo_run)]
    result = cli([*args, "--force"], tmp_path, timeout=180)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert files_of(ppo_run) == before
    assert sorted(p.name for p in ppo_run.parent.iterdir()) == ["ppo"], "no sibling or lock may be left"


def test_a_replacement_that_fails_after_its_first_rollout_keeps_the_old_run(tmp_path) -> None:
    from stable_baselines3.common.callbacks import BaseCallback

    run_dir = tmp_path / "run"
    train_ppo(run_dir, timesteps=64)
    before = files_of(run_dir)

    class FailAtSecondRolloutEnd(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            if self.model.num_timesteps >= 128:
                raise OSError("disk full during the second rollout")

    with pytest.raises(OSError, match="disk full"):
        train_ppo(run_dir, timesteps=256, force=True, callbacks=[FailAtSecondRolloutEnd()])
    # the first update happened (and the swap with it): what failed later is the new run, kept
    assert (run_dir / "config.yaml").read_text() != before["config.yaml"].decode()

    class FailAtFirstRolloutEnd(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            raise OSError("disk full during the first rollout")

    before = files_of(run_dir)
    with pytest.raises(OSError, match="first rollout"):
        train_ppo(run_dir, timesteps=512, force=True, callbacks=[FailAtFirstRolloutEnd()])
    assert files_of(run_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_second_writer_gets_one_line(ppo_run, capsys) -> None:
    with RunLock(ppo_run):
        assert main(["train", "--resume", str(ppo_run), "--timesteps", "128", "--no-progress"]) == 1
        assert "being written by another mmrl process" in one_line_error(capsys.readouterr().err)
        args = ["train", *QL[:4], "--timesteps", "64", "--no-progress", "--run-dir", str(ppo_run), "--force"]
        assert main(args) == 1
        assert "being written by another mmrl process" in one_line_error(capsys.readouterr().err)
    assert not (ppo_run.parent / f".{ppo_run.name}.lock").exists()


def test_stray_temporary_files_are_cleaned_on_the_next_run(tmp_path) -> None:
    run_dir = tmp_path / "run"
    train_ppo(run_dir, timesteps=128, stop_at=64, checkpoint_freq=64)
    stray = run_dir / "checkpoints" / ".model_64_steps.zip.k3j2.zip.tmp"
    stray.write_bytes(b"half a model")
    (run_dir / ".metrics.json.x1.json.tmp").write_bytes(b"{")
    mmrl.train(resume=run_dir, algo=None, timesteps=128, progress_bar=False)
    assert not stray.exists() and not list(run_dir.glob(".*.tmp"))


def test_a_half_created_run_directory_does_not_block_a_rerun(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)  # what a full disk left while creating the run
    assert main(["train", *QL, "--run-dir", str(run_dir)]) == 0
    assert (run_dir / RUN_MARKER).is_file() and (run_dir / "model.npz").is_file()


def test_a_run_moved_aside_by_a_killed_replacement_comes_back(tmp_path) -> None:
    run_dir = tmp_path / "run"
    train_ppo(run_dir, timesteps=128, stop_at=64, checkpoint_freq=64)
    aside = tmp_path / ".run.replaced-abc123"
    aside.mkdir()
    os.replace(run_dir, aside / "run")  # killed between the two renames of the swap
    result = mmrl.train(resume=run_dir, algo=None, timesteps=128, progress_bar=False)
    assert result.metrics["timesteps"] == 128 and not aside.exists()


# ------------------------------------------------------------------------------------------------ foreign code
@pytest.mark.slow  # a subprocess: ~15 s of imports on a loaded 2-core machine
def test_bundle_env_id_naming_a_module_is_never_imported(bundle, tmp_path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "evilmod.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    evil = tampered_bundle(bundle, tmp_path, env_id=f"evilmod:{ENV}")
    result = cli(["evaluate", str(evil), "--episodes", "1"], tmp_path)
    assert result.returncode == 1 and "module" in one_line_error(result.stderr)
    assert not marker.exists()
    with pytest.raises(ValueError, match="names a module"):
        check_bundle_metadata(json.loads((evil / MANIFEST_NAME).read_text()))  # what `mmrl inspect` checks
    check_bundle_metadata(json.loads((bundle / MANIFEST_NAME).read_text()))


def test_run_directory_env_id_naming_a_module_is_refused(ppo_run, tmp_path, capsys) -> None:
    import shutil

    import yaml

    copy = tmp_path / "run"
    shutil.copytree(ppo_run, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["env_id"] = f"this:{ENV}"
    (copy / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["evaluate", str(copy), "--episodes", "1"]) == 1
    assert "names a module" in one_line_error(capsys.readouterr().err)
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 1
    assert "names a module" in one_line_error(capsys.readouterr().err)
    assert main(["evaluate", str(copy), "--episodes", "1", "--env", ENV]) == 0  # the user's own id is used
    capsys.readouterr()
    assert main(["evaluate", str(ppo_run), "--episodes", "1", "--allow-env", "mmrl/PickUp-5x5-v0"]) == 1
    assert "not in the allowed env ids" in one_line_error(capsys.readouterr().err)


class Touch:
    """Unpickling this creates a file: a stand-in for arbitrary code execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def crafted_sb3_zip(path: Path, marker: Path) -> Path:
    payload = base64.b64encode(pickle.dumps(Touch(marker))).decode()
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": payload}}
    data["clip_range"] = {":serialized:": payload}
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("policy.pth", b"")
    return path


@pytest.mark.parametrize("where", ["downloads/evil.zip", "evil.zip", "checkpoints/evil.zip"])
def test_sb3_zip_trust_needs_a_genuine_run_directory(where, tmp_path, capsys) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "config.yaml").write_text(f"algo: ppo\nenv_id: {ENV}\n")  # a plain config is not a run
    marker = tmp_path / "pwned"
    evil = crafted_sb3_zip(project / where, marker)
    assert main(["evaluate", str(evil), "--env", ENV, "--episodes", "1"]) == 1
    assert "refusing to load" in one_line_error(capsys.readouterr().err)
    assert not marker.exists()


def test_bundle_level_path_is_never_read(bundle, tmp_path, capsys) -> None:
    secret = tmp_path / "secret.level"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    evil = tampered_bundle(bundle, tmp_path, env_kwargs={"level": str(secret)})
    assert main(["evaluate", str(evil), "--episodes", "1"]) == 1
    err = one_line_error(capsys.readouterr().err)
    assert "not a built-in level" in err and "root:" not in err


# ---------------------------------------------------------------------------------------------------- bounds
def test_evaluate_episode_count_is_bounded(ppo_run, capsys) -> None:
    assert main(["evaluate", str(ppo_run), "--episodes", "1000000000"]) == 1
    assert "limit of 1,000,000" in one_line_error(capsys.readouterr().err)
    assert main(["evaluate", str(ppo_run), "--video", "v.gif", "--video-episodes", "1000000"]) == 1
    assert "at most 100" in one_line_error(capsys.readouterr().err)


@pytest.mark.slow  # a subprocess: ~15 s of imports on a loaded 2-core machine
def test_evaluate_refuses_devices_and_fifos_fast(tmp_path) -> None:
    fifo = tmp_path / "pipe.zip"
    os.mkfifo(fifo)
    for target in ("/dev/zero", str(fifo)):
        result = cli(["evaluate", target, "--env", ENV, "--episodes", "1"], tmp_path, timeout=60)
        assert result.returncode == 1 and "not a regular file" in one_line_error(result.stderr)


# ------------------------------------------------------------------------------------------ damaged checkpoints
def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_truncated_env_state_on_resume_is_one_line(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    train_ppo(run_dir, timesteps=128, stop_at=64, checkpoint_freq=64)
    _truncate(next((run_dir / "checkpoints").glob("env_state_*")))
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 1
    assert "damaged env state" in one_line_error(capsys.readouterr().err)


def test_truncated_replay_buffer_on_resume_is_one_line(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    mmrl.train(
        "dqn",
        ENV,
        timesteps=128,
        n_envs=2,
        overrides={"learning_starts": 16, "buffer_size": 256, "features_dim": 16},
        text_encoder="bow",
        run_dir=run_dir,
        progress_bar=False,
        eval_freq=0,
        eval_episodes=1,
        checkpoint_freq=64,
        stop_at=64,
    )
    _truncate(next((run_dir / "checkpoints").glob("replay_buffer_*")))
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 1
    assert "damaged checkpoint file" in one_line_error(capsys.readouterr().err)
