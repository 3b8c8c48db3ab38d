"""The benchmark scripts run end to end in their quick modes and write the tables they promise (JSON)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run_script(script: str, *args: str, tmp_path: Path) -> dict:
    out = tmp_path / f"{Path(script).stem}.json"
    subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args, "--json", str(out)],
        check=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads(out.read_text())


def test_training_throughput_reports_paired_ratios(tmp_path: Path):
    payload = run_script(
        "training_throughput.py",
        *("--quick", "--algos", "PPO", "--threads", "1", "--repeats", "2", "--timesteps", "512", "--no-minigrid"),
        tmp_path=tmp_path,
    )
    rows = payload["tables"][0]["rows"]
    assert {row["network"] for row in rows} == {"gated+bow (preset)", "gated+gru (default)", "gated+conv", "image-only"}
    assert all(row["frames/s (median)"] > 0 for row in rows)
    image_only = next(row for row in rows if row["network"] == "image-only")
    assert image_only["x image-only"] == pytest.approx(1.0) == image_only["x image-only (CPU)"]
    assert all(row["x image-only (CPU)"] > 0 for row in rows)
    assert any(
        "image-only" in note and "need >= 0.9x" in note and "of 2 at or above" in note
        for note in payload["tables"][0]["notes"]
    )


def test_sample_efficiency_uses_the_preset_and_reports_every_fusion_asked(tmp_path: Path):
    payload = run_script(
        "sample_efficiency.py",
        *("--quick", "--families", "GoTo", "--fusions", "gated", "concat", "--max-frames", "1024"),
        *("--eval-every", "512", "--eval-episodes", "8"),
        tmp_path=tmp_path,
    )
    rows = payload["tables"][0]["rows"]
    assert [(row["family"].split()[0], row["fusion"]) for row in rows] == [("GoTo", "gated"), ("GoTo", "concat")]
    assert all(0.0 <= row["last greedy success"] <= 1.0 for row in rows)


def test_text_encoder_costs_cover_every_encoder_and_the_references(tmp_path: Path):
    from mmrl.extractor.text_encoders import TEXT_ENCODERS

    payload = run_script("text_encoders.py", "--quick", "--repeats", "2", tmp_path=tmp_path)
    rows = {row["encoder"]: row for row in payload["tables"][0]["rows"]}
    assert len(rows) == len(TEXT_ENCODERS) + 2  # every encoder, embedding_bag and the image-only network
    assert rows["GRU"]["x GRU (train)"] == pytest.approx(1.0) == rows["GRU"]["x GRU (rollout)"]
    assert all(row["train us"] > 0 and row["rollout us"] > 0 for row in rows.values())
    assert rows["image-only network"]["train x image-only network"] == pytest.approx(1.0)


def test_scene_readout_probe_reports_every_read_out(tmp_path: Path):
    payload = run_script("scene_readout.py", "--quick", tmp_path=tmp_path)
    rows = payload["tables"][0]["rows"]
    assert [row["read-out"].split(",")[0] for row in rows] == [
        "patch CNN",
        "per-cell (pointwise)",
        "per-cell",
        "per-cell",
        "per-cell",
        "per-cell",
    ]
    assert all(0.0 <= row["epoch 2"] <= 1.0 for row in rows)


def test_memory_need_reports_every_env(tmp_path: Path):
    payload = run_script("memory_need.py", "--quick", tmp_path=tmp_path)
    rows = {row["env"]: row for row in payload["tables"][0]["rows"]}
    assert set(rows) == {"mmrl/GoTo-5x5-v0", "mmrl/PickUp-5x5-v0", "mmrl/Sequence-5x5-v0"}
    assert all(row["planner success"] >= 0.99 for row in rows.values())
    assert all(0.0 <= row["forced errors"] <= row["ambiguous frames"] <= 1.0 for row in rows.values())
    # the order task is the one a reactive policy cannot copy: its view does not show the progress made
    assert rows["mmrl/Sequence-5x5-v0"]["forced errors"] > 1.5 * rows["mmrl/GoTo-5x5-v0"]["forced errors"]
    assert rows["mmrl/Sequence-5x5-v0"]["frames whose action depends on progress"] > 0.05
    assert rows["mmrl/GoTo-5x5-v0"]["frames whose action depends on progress"] == 0.0


def test_memory_cost_times_every_memory_against_none(tmp_path: Path):
    payload = run_script("memory_cost.py", "--quick", "--train-batch", "32", tmp_path=tmp_path)
    rows = {row["memory"]: row for row in payload["tables"][0]["rows"]}
    assert set(rows) == {"no memory", "action_history=4 (the preset)", "frame_stack=2", "frame_stack=4"}
    assert rows["no memory"]["x no memory (update)"] == pytest.approx(1.0)
    assert all(row["update ms"] > 0 and row["rollout ms"] > 0 for row in rows.values())


def test_memory_need_refuses_an_env_the_planner_cannot_solve():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks.memory_need import ambiguity

    with pytest.raises(ValueError, match="planner cannot solve"):
        ambiguity("mmrl/VisualQuery-Colour-v0", 100, 0)


def test_pretraining_compare_counts_pretraining_time_and_writes_a_row_per_run(tmp_path: Path):
    """Tiny budgets: every variant trains, evaluates every split the env has, and the table prints one line per
    variant; a second call resumes (nothing retrained)."""
    args = [
        sys.executable, str(REPO / "benchmarks" / "pretraining.py"), "compare", "--env", "mmrl/GoTo-5x5-v0",
        "--variants", "scratch", "fused-autoencoder", "bc", "--timesteps", "1024", "--eval-freq", "512",
        "--pretrain-frames", "256", "--pretrain-updates", "4", "--episodes", "4", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    first = subprocess.run(args, check=True, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert [row["variant"] for row in rows] == ["scratch", "fused-autoencoder", "bc"]
    for row in rows:
        assert {"success_train", "success_test", "success_paraphrase", "success_blank"} <= set(row)
        assert 0 < row["timesteps"] <= 1024 + 16 * 64
        if row["frames_to_0.95"] is not None:  # the wall time to a mark includes the pre-training time
            assert row["wall_to_0.95"] >= row["pretrain_s"]
    assert rows[0]["pretrain_s"] < rows[1]["pretrain_s"] and rows[2]["cloned_success"] is not None
    manifest = json.loads((tmp_path / "out" / "GoTo-5x5-v0-fused-autoencoder-0-bundle" / "manifest.json").read_text())
    assert manifest["autoencoders"] == ["image", "text", "fused"]
    assert "| GoTo-5x5 | fused-autoencoder | 1 |" in first.stdout
    second = subprocess.run(args, check=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert not any(line.startswith("{") for line in second.stdout.splitlines())  # resumed: no run again
    assert "| GoTo-5x5 | bc | 1 |" in second.stdout
