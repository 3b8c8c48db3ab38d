"""``monitor.csv``: the training episodes' log (a ``VecMonitor`` that survives resume and envs without
``is_success``)."""

from __future__ import annotations

import csv
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecMonitor

__all__ = ["EpisodeMonitor"]


class EpisodeMonitor(VecMonitor):
    """``VecMonitor`` for ``monitor.csv``: records ``is_success`` only where the env reports it, appends on
    resume, and saves / restores its per-env counters with the checkpoints.

    SB3's ``VecMonitor(info_keywords=("is_success",))`` raises ``KeyError`` on envs without ``is_success`` (e.g.
    ``CartPole-v1``), and a fresh one on resume starts its return / length counters at zero in the middle of
    episodes, so that the first episode of every env after a resume would be logged cut short. Here the log
    file is opened with :meth:`open_log` and created at the first finished episode (its columns: ``r, l, t``
    and ``is_success`` if that episode reports one; on resume the existing file's columns); :meth:`counters`
    / :meth:`restore_counters` carry the running returns and lengths, the episode count, the elapsed time
    (the ``t`` column continues) and the log's size at the checkpoint (rows written after it, by a session
    that crashed later, are dropped on resume: they belong to a timeline that is not continued).
    """

    def __init__(self, venv: Any) -> None:
        with warnings.catch_warnings():
            # SB3's make_vec_env wraps non-mmrl envs in a Monitor, whose statistics are not used: not worth a warning
            warnings.filterwarnings("ignore", message="The environment is already wrapped with a `Monitor`")
            super().__init__(venv)
        self.log_path: Path | None = None
        self._env_id = ""
        self._handle: Any = None
        self._writer: Any = None

    def open_log(self, path: Path, env_id: str, append: bool, keep_bytes: int | None = None) -> None:
        """Log finished episodes to ``path`` (a new file unless ``append``; with ``keep_bytes``, an existing
        file is first cut back to that size)."""
        self.log_path, self._env_id = Path(path), env_id
        if not append:
            self.log_path.unlink(missing_ok=True)
        elif keep_bytes is not None and self.log_path.is_file() and self.log_path.stat().st_size > keep_bytes:
            if keep_bytes == 0:
                self.log_path.unlink()
            else:
                with open(self.log_path, "r+b") as handle:
                    handle.truncate(keep_bytes)

    def _ensure_writer(self, has_success: bool) -> Any:
        if self._writer is not None or self.log_path is None:
            return self._writer
        columns: list[str] | None = None
        if self.log_path.is_file() and self.log_path.stat().st_size > 0:
            with open(self.log_path, encoding="utf-8", newline="") as handle:
                first = handle.readline()
                header = handle.readline() if first.startswith("#") else first
            columns = next(csv.reader([header]), None) or None
        if columns is not None:
            self._handle = open(self.log_path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115 - kept open
            self._writer = csv.DictWriter(self._handle, fieldnames=columns, extrasaction="ignore")
        else:
            self._handle = open(self.log_path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 - kept open
            columns = ["r", "l", "t", *(["is_success"] if has_success else [])]
            self._handle.write(f"#{json.dumps({'t_start': self.t_start, 'env_id': self._env_id})}\n")
            self._writer = csv.DictWriter(self._handle, fieldnames=columns, extrasaction="ignore")
            self._writer.writeheader()
            self._handle.flush()
        return self._writer

    def step_wait(self) -> Any:
        obs, rewards, dones, infos = self.venv.step_wait()
        self.episode_returns += rewards
        self.episode_lengths += 1
        new_infos = list(infos[:])
        for i in range(len(dones)):
            if not dones[i]:
                continue
            info = infos[i].copy()
            episode: dict[str, Any] = {
                "r": self.episode_returns[i],
                "l": self.episode_lengths[i],
                "t": round(time.time() - self.t_start, 6),
            }
            if "is_success" in info:
                episode["is_success"] = info["is_success"]
            info["episode"] = episode
            self.episode_count += 1
            self.episode_returns[i] = 0
            self.episode_lengths[i] = 0
            writer = self._ensure_writer("is_success" in info)
            if writer is not None:
                writer.writerow(episode)
                self._handle.flush()
            new_infos[i] = info
        return obs, rewards, dones, new_infos

    def counters(self) -> dict[str, Any]:
        """The per-env running returns / lengths, the episode count, the elapsed time and the log size."""
        if self._handle is not None:
            self._handle.flush()
        size = self.log_path.stat().st_size if self.log_path is not None and self.log_path.is_file() else 0
        return {
            "episode_returns": self.episode_returns.tolist(),
            "episode_lengths": self.episode_lengths.tolist(),
            "episode_count": int(self.episode_count),
            "elapsed_s": time.time() - self.t_start,
            "log_bytes": int(size),
        }

    def restore_counters(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`counters` (the log size is applied by :meth:`open_log`)."""
        returns = np.asarray(state["episode_returns"], dtype=np.float32)
        lengths = np.asarray(state["episode_lengths"], dtype=np.int32)
        if returns.shape != (self.num_envs,) or lengths.shape != (self.num_envs,):
            raise ValueError(
                f"checkpoint monitor counters are for {returns.shape[0]} envs, the env has {self.num_envs}"
            )
        self.episode_returns, self.episode_lengths = returns, lengths
        self.episode_count = int(state["episode_count"])
        self.t_start = time.time() - float(state.get("elapsed_s", 0.0))

    def close(self) -> None:
        log = self.log_path
        if log is not None and self._writer is None and log.parent.is_dir() and not log.exists():
            # no episode finished: still leave a valid (empty) log
            self._ensure_writer(self._env_id.startswith("mmrl/"))
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        self.venv.close()
