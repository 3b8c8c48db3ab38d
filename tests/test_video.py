"""Videos a person can follow (mmrl.evaluation.video): pace, held final frames, and the instruction drawn once."""

from __future__ import annotations

from pathlib import Path

import cv2
import gymnasium as gym
import numpy as np
import pytest

import mmrl  # noqa: F401  (registers the mmrl/ envs)
from mmrl.engine.view import wrap_caption
from mmrl.evaluation import video
from mmrl.evaluation.video import (
    DEFAULT_FPS,
    DEFAULT_HOLD_S,
    OUTCOME_COLOURS,
    _FrameRecorder,
    compose_frames,
    hold_frame_count,
    record_video,
)

ENV_ID = "mmrl/GoTo-5x5-v0"


class Forward:
    """Always moves forward (action 2)."""

    def __init__(self) -> None:
        env = gym.make(ENV_ID)
        self.observation_space, self.action_space = env.observation_space, env.action_space

    def predict(self, observation, state=None, episode_start=None, deterministic=True):
        return np.full(len(observation["mission"]), 2, dtype=np.int64), None


def test_default_pace_is_slow_enough_to_follow() -> None:
    assert DEFAULT_FPS <= 4 and DEFAULT_HOLD_S >= 0.75
    assert hold_frame_count(3, 1.0) == 2  # final frame + 2 copies = 1 s at 3 fps
    assert hold_frame_count(8, 1.0) == 7 and hold_frame_count(3, 0.0) == 0


def test_compose_frames_holds_each_final_frame_with_an_outcome_border() -> None:
    def episode(length: int, value: int) -> list[np.ndarray]:
        return [np.full((40, 50, 3), value + i, dtype=np.uint8) for i in range(length)]

    episodes = [episode(4, 10), episode(6, 50), episode(2, 100)]
    frames = compose_frames(episodes, ["success", "failure", "done"], fps=3, hold_s=1.0)
    assert len(frames) == 4 + 6 + 2 + 3 * 2  # each episode's frames + 2 hold frames each
    first_hold, second_hold = frames[4], frames[6 + 6]
    assert (
        tuple(first_hold[0, 0]) == OUTCOME_COLOURS["success"] and tuple(second_hold[0, 0]) == OUTCOME_COLOURS["failure"]
    )
    assert np.array_equal(first_hold[20, 25], episodes[0][-1][20, 25])  # the final frame, framed
    assert np.array_equal(frames[5], first_hold) and np.array_equal(frames[6], episodes[1][0])
    assert np.all(episodes[0][-1] == 13)  # the episode's own frame is not drawn on
    with pytest.raises(ValueError, match="outcomes"):
        compose_frames(episodes, ["success"])
    framed = compose_frames(episodes[:1], ["failure"], fps=2, hold_s=1.0, picture_rows=[30])[-1]
    assert tuple(framed[29, 25]) == OUTCOME_COLOURS["failure"] and np.all(framed[30:, 10:40] == 13)  # caption untouched


def test_instruction_is_drawn_once_under_the_bare_grid() -> None:
    env = gym.make(ENV_ID, render_mode="rgb_array")
    recorder = _FrameRecorder(env, None)
    try:
        recorder.reset(seed=3)
        frame = recorder._pending[0]
        grid = env.unwrapped.render_grid()
        captioned = env.render()  # the env's own render: grid + instruction band with reserved blank lines
    finally:
        recorder.close()
    assert captioned.shape[0] > grid.shape[0] and np.array_equal(captioned[: grid.shape[0]], grid)
    factor = int(np.ceil(320 / grid.shape[1]))
    upscaled = cv2.resize(grid, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(frame[: upscaled.shape[0]], upscaled)  # no band of the env's own above the video's
    lines = [f"instruction: {recorder._mission}", "episode 0  step 0  reward +0.00  return 0.00", "outcome: running"]
    strip_rows = 22 * len(wrap_caption(lines, upscaled.shape[1])) + 6
    assert frame.shape[0] == upscaled.shape[0] + strip_rows  # one band: instruction, step line, outcome
    text_rows = np.flatnonzero(frame[upscaled.shape[0] :].max(axis=(1, 2)) > 0)
    assert text_rows[-1] - text_rows[0] < strip_rows  # text throughout the band, no empty band in between


def test_video_frame_count_includes_held_frames(tmp_path: Path, monkeypatch) -> None:
    written: dict[str, object] = {}
    original = video.write_frames

    def spy(frames, path, fps=DEFAULT_FPS):
        written.update(count=len(frames), fps=fps)
        return original(frames, path, fps)

    recorders: list[_FrameRecorder] = []
    original_init = _FrameRecorder.__init__

    def spy_init(self, env, table):
        original_init(self, env, table)
        recorders.append(self)

    monkeypatch.setattr(video, "write_frames", spy)
    monkeypatch.setattr(_FrameRecorder, "__init__", spy_init)
    out = record_video(Forward(), tmp_path / "v.mp4", env_id=ENV_ID, episodes=3, seed=5, fps=4, hold_s=1.0)
    recorder = recorders[0]
    assert len(recorder.episode_lengths) == 3 and sum(recorder.episode_lengths) == len(recorder.frames)
    assert recorder.picture_rows[0] < recorder.frames[0].shape[0]  # the border stops above the caption
    assert written == {"count": len(recorder.frames) + 3 * 3, "fps": 4}  # 3 hold frames per episode at 4 fps
    capture = cv2.VideoCapture(str(out))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == written["count"] and capture.get(cv2.CAP_PROP_FPS) == 4
    capture.release()
    with pytest.raises(ValueError, match="hold_s"):
        record_video(Forward(), tmp_path / "w.mp4", env_id=ENV_ID, episodes=1, hold_s=-1)
