"""``mmrl demo``, the README's main job, end to end on a tiny budget."""

from __future__ import annotations

import cv2
import torch

from mmrl.cli import main


def test_demo_trains_evaluates_films_and_plots(tmp_path, capsys):
    torch.set_num_threads(1)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--timesteps", "2048", "--episodes", "10", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "random policy: success" in printed and f"video: {out / 'agent.mp4'}" in printed
    assert "with the instruction blanked (--ablate mission): success" in printed and "paired by seed" in printed
    assert (out / "run" / "model.zip").is_file() and (out / "run" / "metrics.json").is_file()
    assert (out / "curve.png").stat().st_size > 0
    video = cv2.VideoCapture(str(out / "agent.mp4"))
    # 3 episodes at 3 fps, each: reset frame, >= 1 step, its final frame held 1 s (2 more copies)
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) >= 3 * 4 and video.get(cv2.CAP_PROP_FPS) == 3
    # a second demo into the same folder refuses to overwrite the run without --force
    assert main(["demo", "--out", str(out), "--timesteps", "2048", "--episodes", "10", "--no-progress"]) == 1
    assert "--force" in capsys.readouterr().err
