"""Tests of ``mmrl.evaluation`` and ``mmrl evaluate``: report fields, reproducibility, no writes unless asked,
ablation, shuffled missions, space checks, videos, Q-learning models and CLI errors."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import mmrl
from mmrl.evaluation import (
    AblateObservation,
    EvaluationReport,
    VecAblateObservation,
    evaluate,
    mission_template,
    record_video,
    wilson_interval,
)
from mmrl.evaluation.evaluate import MissionTable
from mmrl.training.run_dir import write_run_marker

torch.set_num_threads(1)
ENV_ID = "mmrl/GoTo-5x5-v0"


def write_run_dir(path: Path, algo: str, model, env_kwargs: dict | None = None) -> Path:
    """A minimal run directory as ``mmrl train`` writes it: config.yaml and the model."""
    path.mkdir(parents=True, exist_ok=True)
    config = {"algo": algo, "env_id": ENV_ID, "env_kwargs": env_kwargs or {}, "seed": 0, "n_envs": 2}
    (path / "config.yaml").write_text(yaml.safe_dump(config))
    write_run_marker(path)
    model.save(path / ("model.npz" if algo == "qlearning" else "model.zip"))
    return path


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory) -> Path:
    from stable_baselines3 import PPO

    venv = mmrl.make_vec_env(ENV_ID, 2, seed=0)
    model = PPO(
        "MultiInputPolicy",
        venv,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        policy_kwargs=mmrl.policy_kwargs(features_dim=16),
    )
    model.learn(128)
    return write_run_dir(tmp_path_factory.mktemp("runs") / "ppo", "ppo", model)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


class SpyModel:
    """A model object that always moves forward and records the mission tokens it is shown."""

    def __init__(self, env_id: str = ENV_ID) -> None:
        env = gym.make(env_id)
        self.observation_space, self.action_space = env.observation_space, env.action_space
        self.seen: list[np.ndarray] = []

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        tokens = np.asarray(observation["mission"])
        self.seen.append(tokens.copy())
        return np.full(tokens.shape[0], 2, dtype=np.int64), None


# ---------------------------------------------------------------------------------------------------- API
def test_report_fields_and_reproducibility(ppo_run: Path) -> None:
    report = evaluate(ppo_run, episodes=6, seed=3)
    assert isinstance(report, EvaluationReport)
    assert report.env_id == ENV_ID and report.algo == "ppo" and report.episodes == 6
    assert len(report.returns) == len(report.lengths) == len(report.successes) == len(report.missions) == 6
    assert all(isinstance(s, bool) for s in report.successes)
    low, high = report.success_ci
    assert 0.0 <= low <= report.success_rate <= high <= 1.0
    assert report.mean_return == pytest.approx(np.mean(report.returns))
    assert sum(group.episodes for group in report.per_template) == 6
    assert sum(group.episodes for group in report.per_instruction) == 6
    assert all("<object>" in group.name for group in report.per_template)
    json.dumps(report.to_dict())
    table = report.format_table(max_rows=2)
    assert "success rate" in table and "per template" in table and "top 2 of" in table
    # episode i is seeded seed + i whatever the batch size
    again = evaluate(ppo_run, episodes=6, seed=3, n_envs=4)
    assert again.returns == report.returns and again.missions == report.missions
    first_three = evaluate(ppo_run, episodes=3, seed=3, n_envs=1)
    assert first_three.missions == report.missions[:3]


def test_wilson_and_template() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for trials in (1, 6, 7, 100, 1000):
        for successes in (0, 1, trials // 3, trials - 1, trials):
            low, high = wilson_interval(successes, trials)
            assert 0.0 <= low <= successes / trials <= high <= 1.0, (successes, trials, low, high)
    assert wilson_interval(0, 6)[0] == 0.0 and wilson_interval(6, 6)[1] == 1.0
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-3) and high == pytest.approx(0.9433, abs=1e-3)
    assert mission_template("go to the red ball, then pick up the blue key") == (
        "go to the <colour> <object>, then pick up the <colour> <object>"
    )
    assert mission_template("how many green boxes are there") == "how many <colour> <objects> are there"


def test_writes_only_when_asked(ppo_run: Path, tmp_path: Path) -> None:
    before = tree_hashes(ppo_run)
    evaluate(ppo_run, episodes=2)
    assert tree_hashes(ppo_run) == before
    out = tmp_path / "report.json"
    report = evaluate(ppo_run, episodes=2, json_path=out)
    assert tree_hashes(ppo_run) == before
    data = json.loads(out.read_text())
    assert data["episodes"] == 2 and data["returns"] == report.returns and len(data["success_ci"]) == 2
    assert {"per_template", "per_instruction", "mean_length", "std_return"} <= set(data)


# ---------------------------------------------------------------------------------------------------- ablation
def test_ablation_wrappers_zero_the_right_key() -> None:
    env = AblateObservation(gym.make(ENV_ID), "mission")
    observation, _ = env.reset(seed=0)
    assert not observation["mission"].any() and observation["image"].any()
    observation, *_ = env.step(0)
    assert not observation["mission"].any() and observation["image"].any()
    env = AblateObservation(gym.make(ENV_ID), "image")
    observation, _ = env.reset(seed=0)
    assert not observation["image"].any() and observation["mission"].any()
    venv = VecAblateObservation(mmrl.make_vec_env(ENV_ID, 2, seed=0), ["image"])
    observations = venv.reset()
    assert not observations["image"].any() and observations["mission"].any()
    with pytest.raises(ValueError, match="keys"):
        AblateObservation(gym.make(ENV_ID), "text")


def test_ablate_mission_reaches_the_policy() -> None:
    spy = SpyModel()
    report = evaluate(spy, env_id=ENV_ID, episodes=2, ablate="mission")
    assert report.ablate == ["mission"]
    ablated_steps = max(report.lengths)  # one batch of 2 envs: the ablated episodes come first
    assert all(not tokens.any() for tokens in spy.seen[:ablated_steps])
    assert all(tokens.any() for tokens in spy.seen[ablated_steps:])  # then the same episodes, mission intact
    assert all(report.missions)  # the true missions are still known


def test_shuffle_shows_another_mission_and_judges_the_true_one() -> None:
    plain = evaluate(SpyModel(), env_id=ENV_ID, episodes=4, seed=5)
    spy = SpyModel()
    shuffled = evaluate(spy, env_id=ENV_ID, episodes=4, seed=5, shuffle_missions=True)
    # the episodes (and success, judged by the env on its own mission) are those of the plain run
    assert shuffled.missions == plain.missions
    assert shuffled.successes == plain.successes and shuffled.returns == plain.returns
    assert all(shown != true for shown, true in zip(shuffled.shown_missions, shuffled.missions, strict=True))
    table = MissionTable(gym.make(ENV_ID))
    expected = np.stack([table.shown(5 + i)[1] for i in range(4)])
    np.testing.assert_array_equal(spy.seen[0], expected)
    tokenizer = gym.make(ENV_ID).unwrapped.tokenizer
    assert [tokenizer.decode(tokens) for tokens in spy.seen[0]] == shuffled.shown_missions


# ---------------------------------------------------------------------------------------------------- errors
def test_space_mismatch_is_refused(ppo_run: Path) -> None:
    with pytest.raises(ValueError, match="observation space") as caught:
        evaluate(ppo_run, env_id=ENV_ID, episodes=1, env_kwargs={"view_size": 5})
    assert "model" in str(caught.value) and "environment" in str(caught.value)
    with pytest.raises(ValueError, match="action space"):
        evaluate(ppo_run, env_id="mmrl/VisualQuery-Colour-v0", episodes=1)


def test_bad_arguments(ppo_run: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        evaluate(tmp_path / "missing")
    with pytest.raises(ValueError, match="episodes"):
        evaluate(ppo_run, episodes=0)
    with pytest.raises(ValueError, match="split"):
        evaluate(ppo_run, episodes=1, split="valid")
    with pytest.raises(ValueError, match="video"):
        evaluate(ppo_run, episodes=1, video=tmp_path / "out.avi")


# ---------------------------------------------------------------------------------------------------- video
def test_video_mp4_and_gif(ppo_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    report = evaluate(ppo_run, episodes=1, video=out, video_episodes=1, split="test")
    assert report.video == str(out)
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0
    ok, frame = capture.read()
    assert ok and frame.shape[1] >= 320
    capture.release()
    gif = record_video(SpyModel(), tmp_path / "out.gif", env_id=ENV_ID, episodes=1, shuffle_missions=True)
    from PIL import Image

    with Image.open(gif) as image:
        assert image.n_frames > 1


def test_video_keeps_frames_of_different_sizes(tmp_path: Path) -> None:
    from mmrl.evaluation.video import _annotate, write_frames

    frame = np.zeros((160, 160, 3), dtype=np.uint8)
    short = _annotate(frame, 0, "go to the red ball", "", 1, 0.0, 0.0, "running", None)
    long = _annotate(frame, 0, "walk to the blue box after you go to the purple box", "", 1, 0.0, 0.0, "running", None)
    assert long.shape[0] > short.shape[0] and long.shape[1] == short.shape[1]  # wrapped, not cut at the edge
    out = write_frames([short, long, short], tmp_path / "mixed.mp4")
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3  # none dropped for its size
    ok, first = capture.read()
    assert ok and first.shape[:2] == (long.shape[0] + long.shape[0] % 2, long.shape[1] + long.shape[1] % 2)
    capture.release()


# ---------------------------------------------------------------------------------------------------- Q-learning
def test_qlearning_run_dir(tmp_path: Path) -> None:
    from mmrl.agents.qlearning import QLearning

    kwargs = {"observation": "compact"}
    model = QLearning(mmrl.make_vec_env(ENV_ID, 2, seed=0, env_kwargs=kwargs), seed=0)
    model.learn(200)
    run = write_run_dir(tmp_path / "q", "qlearning", model, kwargs)
    report = evaluate(run, episodes=3)
    assert report.algo == "qlearning" and len(report.returns) == 3


# ---------------------------------------------------------------------------------------------------- CLI
def cli(argv: list[str]) -> int:
    from mmrl.cli import evaluate as evaluate_cli

    parser = argparse.ArgumentParser(prog="mmrl")
    evaluate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", *argv])
    return args.run(args)


def test_cli_prints_table_and_json(ppo_run: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "o.json"
    assert cli([str(ppo_run), "--episodes", "2", "--ablate", "image", "--stochastic", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "success rate" in printed and "ablate=image" in printed and "sampled actions" in printed
    assert json.loads(out.read_text())["deterministic"] is False


@pytest.mark.parametrize("damage", ["missing", "corrupted"])
def test_cli_errors_are_one_line(ppo_run: Path, tmp_path: Path, capsys, damage: str) -> None:
    if damage == "missing":
        target = tmp_path / "nowhere"
    else:
        target = tmp_path / "broken"
        shutil.copytree(ppo_run, target)
        (target / "model.zip").write_bytes(b"not a zip file at all")
    assert cli([str(target), "--episodes", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_interrupt_writes_no_json(ppo_run: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    import importlib

    module = importlib.import_module("mmrl.evaluation.evaluate")  # the package attribute is the function

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run_episodes", interrupted)
    out = tmp_path / "o.json"
    assert cli([str(ppo_run), "--episodes", "2", "--json", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_mmrl_main_dispatches_evaluate(ppo_run: Path, tmp_path: Path, capsys) -> None:
    from mmrl.cli import main

    assert main(["evaluate", str(ppo_run), "--episodes", "2", "--split", "test"]) == 0
    assert "split=test" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 1
    assert main(["evaluate", str(ppo_run), "--episodes", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and "Traceback" not in err


# ------------------------------------------------------------------------------------------- sources and trust
class Payload:
    """Unpickling this creates the marker file: a stand-in for arbitrary code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_sb3_zip(path: Path, marker: Path) -> Path:
    """An SB3-looking zip whose ``data`` JSON carries a pickle that creates ``marker`` when loaded."""
    import base64
    import pickle
    import zipfile

    payload = pickle.dumps(Payload(marker))
    data = {"policy_class": {":type:": "<class 'abc.ABCMeta'>", ":serialized:": base64.b64encode(payload).decode()}}
    data["clip_range"] = {":serialized:": base64.b64encode(payload).decode()}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("policy.pth", payload)
    return path


def test_sb3_zip_from_elsewhere_needs_trust(ppo_run: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    evil = crafted_sb3_zip(tmp_path / "downloaded.zip", marker)
    with pytest.raises(ValueError, match=r"refusing to load .*downloaded\.zip.*not inside an mmrl run directory"):
        evaluate(evil, env_id=ENV_ID, episodes=1)
    with pytest.raises(ValueError, match="refusing to load"):
        record_video(evil, tmp_path / "v.gif", env_id=ENV_ID, episodes=1)
    assert cli([str(evil), "--env", ENV_ID, "--episodes", "1"]) == 1
    assert "--trust" in capsys.readouterr().err
    from mmrl.training.run_dir import load_model

    with pytest.raises(ValueError, match="refusing to load"):
        load_model(evil)
    assert not marker.exists()
    # a genuine copy is evaluated once trusted, exactly like the run it came from
    copy = tmp_path / "copy.zip"
    shutil.copy(ppo_run / "model.zip", copy)
    trusted = evaluate(copy, env_id=ENV_ID, episodes=4, trust=True)
    original = evaluate(ppo_run, episodes=4)
    assert trusted.returns == original.returns and trusted.lengths == original.lengths
    assert cli([str(copy), "--env", ENV_ID, "--episodes", "1", "--trust"]) == 0


def test_policy_bundle_is_evaluated_like_its_run(ppo_run: Path, tmp_path: Path, capsys) -> None:
    from mmrl.export import export_run

    bundle = export_run(ppo_run, tmp_path / "policy.bundle")
    from_bundle = evaluate(bundle, episodes=6)  # env id and kwargs from the bundle's metadata
    from_run = evaluate(ppo_run, episodes=6)
    assert from_bundle.env_id == from_run.env_id == ENV_ID
    assert from_bundle.returns == from_run.returns and from_bundle.successes == from_run.successes
    assert evaluate(bundle / "manifest.json", episodes=6).returns == from_run.returns
    assert cli([str(bundle), "--episodes", "2"]) == 0
    assert "success rate" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------- reference points
def test_random_baseline_is_reported_on_the_same_seeds_and_reproducible() -> None:
    first = evaluate(SpyModel(), env_id=ENV_ID, episodes=20, seed=3)
    second = evaluate(SpyModel(), env_id=ENV_ID, episodes=20, seed=3)
    assert first.baseline is not None and first.baseline == second.baseline
    assert first.baseline["episodes"] == 20 and first.baseline["seed"] == 3
    assert 0.0 <= first.baseline["success_rate"] <= 1.0
    other = evaluate(SpyModel(), env_id=ENV_ID, episodes=20, seed=500)
    assert other.baseline != first.baseline  # other seeds, other episodes
    assert "random policy   success" in first.format_table()
    assert evaluate(SpyModel(), env_id=ENV_ID, episodes=2, baseline=False).baseline is None


def test_random_policy_matches_a_hand_played_random_walk() -> None:
    from mmrl.evaluation.baseline import RandomPolicy, random_baseline
    from mmrl.evaluation.runner import run_episodes

    venv = mmrl.make_vec_env(ENV_ID, n_envs=4, seed=0)
    summary = random_baseline(venv, 12, 7)
    again = run_episodes(RandomPolicy(venv.action_space, 7), venv, 12, 7).summary()
    assert summary["success_rate"] == again["success_rate"] and summary["mean_return"] == again["mean_return"]


def test_ablation_reports_the_paired_difference_with_an_interval() -> None:
    report = evaluate(SpyModel(), env_id=ENV_ID, episodes=30, seed=11, ablate="mission")
    reference = report.reference
    assert reference is not None and reference["measure"] == "success"
    plain = evaluate(SpyModel(), env_id=ENV_ID, episodes=30, seed=11)
    assert reference["success_rate"] == plain.success_rate  # the same episodes without the ablation
    value, low, high = reference["difference"]
    assert value == pytest.approx(report.success_rate - plain.success_rate)
    assert -1.0 <= low <= value <= high <= 1.0
    assert "difference" in report.format_table() and "paired by seed" in report.format_table()


def test_paired_difference_interval() -> None:
    from mmrl.evaluation.stats import newcombe_paired_interval, paired_difference

    value, low, high = paired_difference([True] * 50, [False] * 40 + [True] * 10)
    assert value == pytest.approx(-0.8) and low < -0.8 < high and high < -0.6
    # Fagerland, Lydersen & Laake (2017), Cavo et al. 2012 table (59, 6 / 16, 80): -0.0621, -0.1186 to -0.0046
    first = [True] * 59 + [True] * 6 + [False] * 16 + [False] * 80
    second = [True] * 59 + [False] * 6 + [True] * 16 + [False] * 80
    assert newcombe_paired_interval(second, first) == pytest.approx((-0.1186, -0.0046), abs=1e-4)
    assert newcombe_paired_interval(first, second) == pytest.approx((0.0046, 0.1186), abs=1e-4)
    # agreement on every episode is not certainty: the interval keeps a width (the normal approximation's is 0)
    value, low, high = paired_difference([True] * 20, [True] * 20)
    assert value == 0.0 and low < -0.1 and high > 0.1
    value, low, high = paired_difference([0.5, 0.7, 0.9], [2.5, 2.7, 2.9])  # returns: not clipped to [-1, 1]
    assert value == pytest.approx(2.0) and low == pytest.approx(2.0) == high
    assert paired_difference([None], [True]) is None


def test_rows_caps_every_table() -> None:
    report = evaluate(SpyModel(), env_id=ENV_ID, episodes=40, seed=0, baseline=False)
    assert len(report.per_template) > 2 and len(report.per_instruction) > 2
    text = report.format_table(max_rows=2)
    assert f"per template (top 2 of {len(report.per_template)}" in text
    assert f"per instruction (top 2 of {len(report.per_instruction)}" in text
    full = report.format_table(max_rows=0)
    assert f"per instruction ({len(report.per_instruction)}):" in full


def test_paraphrase_split_evaluates_on_unseen_words() -> None:
    from mmrl.envs.grammar import combos

    plain = evaluate(SpyModel(), env_id=ENV_ID, episodes=6, seed=0, baseline=False)
    report = evaluate(SpyModel(), env_id=ENV_ID, episodes=6, seed=0, split="paraphrase", baseline=False)
    assert report.split == "paraphrase" and combos("paraphrase")
    assert report.missions != plain.missions  # same layouts, other words
    assert cli_parser_accepts_paraphrase()


def cli_parser_accepts_paraphrase() -> bool:
    from mmrl.cli import build_parser

    return build_parser().parse_args(["evaluate", "RUN", "--split", "paraphrase"]).split == "paraphrase"


def test_model_best_picks_the_runs_best_model(ppo_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    shutil.copytree(ppo_run, run)
    (run / "best_model.zip").unlink(missing_ok=True)
    assert cli([str(run), "--model", "best", "--episodes", "1", "--no-baseline"]) == 1
    assert "has no best_model.zip yet" in capsys.readouterr().err
    shutil.copy(run / "model.zip", run / "best_model.zip")
    assert cli([str(run), "--model", "best", "--episodes", "2", "--no-baseline"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith(f"{run / 'best_model.zip'} (")
    assert cli([str(run / "model.zip"), "--model", "best", "--episodes", "1"]) == 1
    assert "--model best needs a run directory" in capsys.readouterr().err
