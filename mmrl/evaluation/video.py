"""Videos of a policy: each frame is the environment's ``rgb_array`` render with the instruction (once), the step,
the reward and the outcome written under it (OpenCV). ``.mp4`` is written with OpenCV's ``mp4v`` codec, ``.gif``
with imageio or, failing that, Pillow.

Paced for a person: :data:`DEFAULT_FPS` frames per second, and each episode's last frame is held for
:data:`DEFAULT_HOLD_S` seconds with a green (success) or red (failure) border, so that outcomes can be read.
mmrl environments are drawn with :meth:`~mmrl.envs.grid_env.GridEnv.render_grid` (no caption of their own), so the
instruction appears in one band only."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv

from mmrl.atomic import atomic_path
from mmrl.checks import check_int
from mmrl.engine.view import caption
from mmrl.evaluation.ablation import VecAblateObservation, normalize_ablate
from mmrl.evaluation.runner import MissionTable, run_episodes
from mmrl.evaluation.setup import EvalSetup, ModelLike, prepare

VIDEO_SUFFIXES = (".mp4", ".gif")
#: Most episodes in one video (its frames are held in memory until written).
MAX_VIDEO_EPISODES = 100
#: Frames per second: one step every third of a second.
DEFAULT_FPS = 3
#: Seconds each episode's final frame stays on screen.
DEFAULT_HOLD_S = 1.0
#: Border drawn around held final frames, by outcome (RGB).
OUTCOME_COLOURS = {"success": (40, 200, 60), "failure": (220, 40, 40)}
OUTCOME_BORDER = 6


def check_video_path(path: str | os.PathLike[str]) -> Path:
    """Validate the video destination before any work is done.

    Raises:
        ValueError: If the suffix is not ``.mp4`` or ``.gif``, or a GIF is asked and neither imageio nor Pillow
            is installed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise ValueError(f"video must end in one of {VIDEO_SUFFIXES}, got {str(path)!r}")
    if suffix == ".gif" and _gif_backend() is None:
        raise ValueError("writing a GIF needs imageio or Pillow (pip install pillow); or write an .mp4 instead")
    return path


def _gif_backend() -> str | None:
    for module in ("imageio", "PIL"):
        if importlib.util.find_spec(module) is not None:
            return module
    return None


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad to even height and width (some codecs need it)."""
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)))


def _pad_to(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad ``frame`` with black at the bottom and right to ``height`` x ``width``."""
    return np.pad(frame, ((0, height - frame.shape[0]), (0, width - frame.shape[1]), (0, 0)))


def write_frames(frames: Sequence[np.ndarray], path: str | os.PathLike[str], fps: int = DEFAULT_FPS) -> Path:
    """Write RGB ``frames`` to ``path`` (``.mp4`` or ``.gif``), atomically.

    Frames of different sizes (e.g. a caption wrapped onto more lines) are padded with black to the largest, since
    a video has one frame size (OpenCV's writer would drop the others).
    """
    path = check_video_path(path)
    if not frames:
        raise ValueError("no frames to write")
    frames = [np.ascontiguousarray(frame, dtype=np.uint8) for frame in frames]
    height = max(frame.shape[0] for frame in frames)
    width = max(frame.shape[1] for frame in frames)
    frames = [_even(_pad_to(frame, height, width)) for frame in frames]
    if path.suffix.lower() == ".mp4":
        height, width = frames[0].shape[:2]
        with tempfile.TemporaryDirectory() as folder:
            scratch = os.path.join(folder, "video.mp4")
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")  # type: ignore[attr-defined]
            writer = cv2.VideoWriter(scratch, fourcc, float(fps), (width, height))
            if not writer.isOpened():
                raise ValueError("OpenCV cannot write mp4 (mp4v) here; write a .gif instead")
            try:
                for frame in frames:
                    writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
            with atomic_path(path) as tmp:
                shutil.copyfile(scratch, tmp)
        return path
    with atomic_path(path) as tmp:
        if _gif_backend() == "imageio":
            import imageio.v2 as imageio

            imageio.mimsave(tmp, frames, format="GIF", duration=1.0 / fps, loop=0)
        else:
            from PIL import Image

            images = [Image.fromarray(frame) for frame in frames]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return path


def check_pace(fps: float, hold_s: float) -> None:
    """Raise ValueError unless ``fps`` is in (0, 120] and ``hold_s`` in [0, 60] seconds."""
    for name, value, low, high in (("fps", fps, 0.0, 120.0), ("hold_s", hold_s, 0.0, 60.0)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or not (low < value <= high if name == "fps" else low <= value <= high):
            raise ValueError(
                f"{name} must be a number in {'(' if name == 'fps' else '['}{low:g}, {high:g}], got {value!r}"
            )


def hold_frame_count(fps: float, hold_s: float) -> int:
    """Copies of an episode's final frame added so that it stays ``hold_s`` seconds on screen at ``fps``."""
    return max(0, round(fps * hold_s) - 1)


def compose_frames(
    episodes: Sequence[Sequence[np.ndarray]],
    outcomes: Sequence[str],
    fps: float = DEFAULT_FPS,
    hold_s: float = DEFAULT_HOLD_S,
    picture_rows: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """The frames of a video of several episodes: each episode's frames, then its final frame repeated
    :func:`hold_frame_count` times with a border coloured by its outcome (green success, red failure, grey else).

    Args:
        episodes: Per episode, its captioned frames (reset frame first).
        outcomes: Per episode, ``"success"``, ``"failure"`` or anything else (no colour).
        fps: Frames per second of the video.
        hold_s: Seconds the final frame stays on screen.
        picture_rows: Per episode, the rows of its final frame to frame (the picture above the caption, so that the
            border does not cover text); default the whole frame.

    Example::

        frames = compose_frames([[f0, f1, f2]], ["success"], fps=3, hold_s=1.0)  # f0, f1, f2, f2', f2'
    """
    if len(episodes) != len(outcomes):
        raise ValueError(f"{len(episodes)} episodes but {len(outcomes)} outcomes")
    rows = list(picture_rows) if picture_rows is not None else [None] * len(episodes)
    if len(rows) != len(episodes):
        raise ValueError(f"{len(episodes)} episodes but {len(rows)} picture_rows")
    frames: list[np.ndarray] = []
    for episode_frames, outcome, height in zip(episodes, outcomes, rows, strict=True):
        if not episode_frames:
            continue
        frames.extend(episode_frames)
        held = _bordered(episode_frames[-1], OUTCOME_COLOURS.get(outcome, (128, 128, 128)), height)
        frames.extend([held] * hold_frame_count(fps, hold_s))
    return frames


def _bordered(frame: np.ndarray, colour: tuple[int, int, int], rows: int | None = None) -> np.ndarray:
    """A copy of ``frame`` with a ``OUTCOME_BORDER``-pixel border of ``colour`` around its first ``rows`` rows
    (all by default)."""
    framed = np.array(frame, dtype=np.uint8, copy=True)
    picture = framed[: rows or len(framed)]  # a view: drawing on it draws on framed
    width = OUTCOME_BORDER
    picture[:width], picture[-width:], picture[:, :width], picture[:, -width:] = colour, colour, colour, colour
    return framed


class _FrameRecorder(gym.Wrapper):
    """Renders and captions a frame at every reset and step; keeps the frames of finished episodes only (its VecEnv
    resets it again after each episode: that unfinished episode is dropped).

    ``frames`` holds the frames of the finished episodes one after the other, ``episode_lengths`` the number of
    frames of each, ``outcomes`` how each ended (``"success"``, ``"failure"`` or ``"done"``) and ``picture_rows``
    the height of its final frame's picture above the caption.
    """

    def __init__(self, env: gym.Env, table: MissionTable | None) -> None:
        super().__init__(env)
        self.table = table
        self.frames: list[np.ndarray] = []
        self.episode_lengths: list[int] = []
        self.outcomes: list[str] = []
        self.picture_rows: list[int] = []
        self._picture_rows = 0
        self.episode = 0
        self.episode_seed = 0
        self._pending: list[np.ndarray] = []
        self._mission = ""
        self._shown = ""
        self._step = 0
        self._total = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        if kwargs.get("seed") is not None:  # the runner's seeded reset of an episode (not an auto-reset)
            self.episode_seed = int(kwargs["seed"])
        self._mission = str(info.get("mission", ""))
        self._shown = self.table.shown(self.episode_seed)[0] if self.table is not None else self._mission
        self._step, self._total = 0, 0.0
        self._pending = [self._frame(0.0, "running")]
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._step += 1
        self._total += float(reward)
        outcome = ending = "running"
        if terminated or truncated:
            success = info.get("is_success")
            outcome = ending = "done" if success is None else ("success" if success else "failure")
            if truncated and not terminated:
                outcome += " (time limit)"
        self._pending.append(self._frame(float(reward), outcome))
        if terminated or truncated:
            self.frames.extend(self._pending)
            self.episode_lengths.append(len(self._pending))
            self.outcomes.append(ending)
            self.picture_rows.append(self._picture_rows)
            self._pending = []
            self.episode += 1
        return observation, reward, terminated, truncated, info

    def episodes(self) -> list[list[np.ndarray]]:
        """``frames`` split by episode."""
        ends = np.cumsum(self.episode_lengths)
        return [self.frames[end - length : end] for end, length in zip(ends, self.episode_lengths, strict=True)]

    def _frame(self, reward: float, outcome: str) -> np.ndarray:
        # mmrl envs caption their render with the instruction (and blank lines reserved for the longest one); the
        # caption below writes it, so take their bare grid: the instruction is shown once, with no empty band
        render_grid = getattr(self.env.unwrapped, "render_grid", None)
        picture = _legible(render_grid() if callable(render_grid) else self.env.render())
        self._picture_rows = picture.shape[0]
        return _annotate(
            picture,
            self.episode,
            self._mission,
            self._shown,
            self._step,
            reward,
            self._total,
            outcome,
            self.table,
        )


def record_setup_video(
    setup: EvalSetup,
    path: str | os.PathLike[str],
    episodes: int = 3,
    seed: int = 0,
    deterministic: bool = True,
    ablate: Sequence[str] = (),
    shuffle_missions: bool = False,
    fps: int = DEFAULT_FPS,
    hold_s: float = DEFAULT_HOLD_S,
) -> Path:
    """Record ``episodes`` episodes of a prepared :class:`EvalSetup`, played by
    :func:`~mmrl.evaluation.runner.run_episodes` on one env (episode ``i`` seeded ``seed + i``), each final frame
    held ``hold_s`` seconds (:func:`compose_frames`)."""
    path = check_video_path(path)
    episodes = check_int("episodes", episodes, 1)
    check_pace(fps, hold_s)
    if episodes > MAX_VIDEO_EPISODES:
        raise ValueError(f"a video holds at most {MAX_VIDEO_EPISODES} episodes, got {episodes}")
    table = MissionTable(setup.make_env()) if shuffle_missions else None
    recorder = _FrameRecorder(setup.make_env(render_mode="rgb_array"), table)
    venv: Any = setup.adapt(DummyVecEnv([lambda: recorder]))
    if ablate:
        venv = VecAblateObservation(venv, tuple(ablate))
    try:
        run_episodes(setup.model, venv, episodes, seed, deterministic, missions=table)
    finally:
        venv.close()
        if table is not None:
            table.env.close()
    return write_frames(
        compose_frames(recorder.episodes(), recorder.outcomes, fps, hold_s, recorder.picture_rows), path, fps
    )


def _annotate(
    frame: Any,
    episode: int,
    mission: str,
    shown: str,
    step: int,
    reward: float,
    total: float,
    outcome: str,
    table: MissionTable | None,
) -> np.ndarray:
    lines = [f"instruction: {mission}"]
    if table is not None:
        lines.append(f"shown: {shown}")
    lines += [f"episode {episode}  step {step}  reward {reward:+.2f}  return {total:.2f}", f"outcome: {outcome}"]
    return caption(_legible(frame), lines, wrap=True)  # long instructions wrap; write_frames pads to one size


def _legible(frame: Any) -> np.ndarray:
    """``frame`` as uint8, upscaled (nearest neighbour) to at least 320 pixels wide so that its caption fits."""
    if frame is None:
        raise ValueError("the environment rendered no frame; it must support render_mode='rgb_array'")
    frame = np.asarray(frame, dtype=np.uint8)
    if frame.shape[1] < 320:
        factor = int(np.ceil(320 / frame.shape[1]))
        frame = cv2.resize(frame, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    return frame


def record_video(
    model_or_run_dir: ModelLike | str | os.PathLike[str],
    path: str | os.PathLike[str],
    env_id: str | None = None,
    episodes: int = 3,
    seed: int = 0,
    deterministic: bool = True,
    split: str | None = None,
    ablate: str | Sequence[str] | None = None,
    shuffle_missions: bool = False,
    env_kwargs: dict[str, Any] | None = None,
    fps: int = DEFAULT_FPS,
    trust: bool = False,
    hold_s: float = DEFAULT_HOLD_S,
) -> Path:
    """Record a few episodes of a trained model to ``path`` (``.mp4`` or ``.gif``).

    Args:
        model_or_run_dir, env_id, seed, deterministic, split, ablate, shuffle_missions, env_kwargs, trust: As for
            :func:`~mmrl.evaluation.evaluate.evaluate`.
        path: Destination, written atomically.
        episodes: Number of episodes, one after the other.
        fps: Frames per second (default 3: one step every third of a second).
        hold_s: Seconds each episode's final frame stays on screen, framed green (success) or red (failure).

    Returns:
        The path written.

    Raises:
        ValueError: If the suffix is not supported, no GIF writer is installed, or the model does not fit.
    """
    check_video_path(path)
    setup = prepare(model_or_run_dir, env_id, split, env_kwargs, trust)
    keys = normalize_ablate(ablate, setup.model.observation_space) if ablate else ()
    return record_setup_video(setup, path, episodes, seed, deterministic, keys, shuffle_missions, fps, hold_s)
