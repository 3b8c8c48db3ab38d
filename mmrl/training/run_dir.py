"""The run directory: what ``mmrl train`` / :func:`mmrl.train` write, and how to read it back.

Default location: ``runs/<env id with "/" replaced by "_">/<algo>/<seed>-<YYYYmmdd-HHMMSS>/``. Layout::

    <run_dir>/
        mmrl-run.json        marker: JSON ``{"format": "mmrl.run_dir", "format_version": 1}``; only a folder
                             holding it is an mmrl run (``--force`` replaces it, its SB3 zips load without
                             ``trust``)
        config.yaml          the fully resolved TrainConfig (algo, env_id, env_kwargs, seed, timesteps, n_envs,
                             extractor settings, hyperparams, ...); ``mmrl train --resume`` reads it back
        model.zip            final model (SB3 ``PPO/A2C/DQN.save``); ``model.npz`` for qlearning (QLearning.save);
                             the best periodic evaluation's with ``final_model: best``, the mean weights of
                             the last third's checkpoints with ``final_model: average``
        best_model.zip       best model by periodic evaluation on a separate eval env with held-out seeds
                             (``best_model.npz`` for qlearning)
        last_model.zip       with ``final_model: best`` or ``average`` only: the weights training ended with
                             (metrics.json: final_model, final_model_timesteps or final_model_checkpoints,
                             last_model)
        metrics.json         final evaluation: mean_return, std_return, success_rate, episodes, timesteps,
                             wall_time_s, fps, interrupted (true when stopped with Ctrl-C; no evaluation then),
                             stopped (at ``stop_at`` or ``stop_success``), stopped_on_success (the step, or null),
                             best_mean_return, evaluations (list of periodic {timesteps, mean_return, success_rate})
        tokenizer.json       the env's ``tokenizer.to_config()`` (``mmrl.tokenizer.Tokenizer.from_config``)
        monitor.csv          episode log (r, l, t, and is_success where the env reports it;
                             :class:`mmrl.training.monitor.EpisodeMonitor`), continued on resume: the episodes
                             running at the checkpoint keep their counters, rows logged after it are dropped
        tb/                  TensorBoard logs (SB3 ``tensorboard_log``)
        checkpoints/         every ``checkpoint_freq`` steps and at the end / on Ctrl-C; checkpoint N is:
            model_<N>_steps.zip (.npz)      the model (optimizer state is inside SB3's zip)
            replay_buffer_<N>_steps.pkl     DQN only (SB3 ``save_replay_buffer``); only the newest is kept
                                            (older ones are deleted once the new checkpoint is complete)
            env_state_<N>_steps.npz         ``venv.get_state()`` where the env supports it (mmrl envs)
            state_<N>_steps.json            written LAST: marks the checkpoint complete; holds the step count,
                                            the Python / NumPy / torch RNG states, the evaluation history and
                                            best return (the final evaluation is added to the last checkpoint),
                                            and the monitor counters

Every file is written atomically (temporary file + ``os.replace``, :mod:`mmrl.atomic`), except the append-only
logs ``monitor.csv`` and ``tb/``. A checkpoint whose ``state_<N>_steps.json`` is missing is ignored.

Reading back::

    run = RunDir("runs/mmrl_GoTo-5x5-v0/ppo/0-20250101-120000")
    run.algo, run.env_id, run.env_kwargs, run.config, run.metrics, run.tokenizer_config
    model = load_model(run.path)               # or load_model(run.best_model_path), load_model("x/model.zip")
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mmrl.algorithms import algorithm_names, get_spec, sniff_model_file
from mmrl.atomic import atomic_path, write_json

__all__ = [
    "Checkpoint",
    "RunDir",
    "check_run_dir",
    "default_run_dir",
    "load_env_state",
    "load_model",
    "model_suffix",
    "prepare_run_dir",
    "save_env_state",
]

#: Algorithms mmrl trains, by CLI name (:mod:`mmrl.algorithms`).
ALGOS = algorithm_names()

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
TOKENIZER_FILE = "tokenizer.json"
MONITOR_FILE = "monitor.csv"
TB_DIR = "tb"
CHECKPOINTS_DIR = "checkpoints"
RUN_MARKER = "mmrl-run.json"
RUN_FORMAT = "mmrl.run_dir"
RUN_FORMAT_VERSION = 1
_MARKER_MAX_BYTES = 4096
_TMP_RE = re.compile(r"^\..+\.tmp$")

_STATE_RE = re.compile(r"^state_(\d+)_steps\.json$")


def model_suffix(algo: str) -> str:
    """The model file suffix of ``algo`` (``".zip"`` for SB3 algorithms, ``".npz"`` for qlearning)."""
    return get_spec(algo).suffix


def default_run_dir(env_id: str, algo: str, seed: int, root: str | os.PathLike[str] = "runs") -> Path:
    """``<root>/<env id with / -> _>/<algo>/<seed>-<YYYYmmdd-HHMMSS>`` (a ``-<k>`` suffix if that exists)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(root) / env_id.replace("/", "_").replace(":", "_") / algo / f"{seed}-{stamp}"
    candidate, k = base, 1
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{k}")
        k += 1
    return candidate


def write_run_marker(path: str | os.PathLike[str]) -> None:
    """Mark ``path`` as an mmrl run directory (:data:`RUN_MARKER`)."""
    write_json(Path(path) / RUN_MARKER, {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION})


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds mmrl's run marker: a small regular file with the run format tag (a link, a device or
    any ``config.yaml`` does not count)."""
    marker = Path(path) / RUN_MARKER
    try:
        info = marker.lstat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > _MARKER_MAX_BYTES:
            return False
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == RUN_FORMAT


def is_leftover(path: Path) -> bool:
    """Whether the folder holds nothing a run needs: only empty folders (e.g. the ``checkpoints/`` of a run whose
    creation failed on a full disk), temporary files and the marker."""
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            if any(entry.iterdir()):
                return False
        elif not (_TMP_RE.match(entry.name) or entry.name == RUN_MARKER):
            return False
    return True


def clean_temporary_files(path: Path) -> None:
    """Delete the temporary files (``.NAME.XXXX.tmp``) a killed process left in a run directory and its
    ``checkpoints/``; call it only while holding the run's lock."""
    for folder in (path, path / CHECKPOINTS_DIR):
        if folder.is_dir():
            for entry in folder.iterdir():
                if _TMP_RE.match(entry.name) and entry.is_file():
                    entry.unlink(missing_ok=True)


def check_run_dir(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Check that a new run may be written to ``path``, without touching anything (see :func:`prepare_run_dir`).

    Raises:
        FileExistsError: If ``path`` exists, is not empty and ``force`` is False (the message says whether the run
            there can be continued, i.e. has a checkpoint); or ``force`` is True but the folder is not an mmrl run
            directory (mmrl never deletes a folder it did not write).
        NotADirectoryError: If ``path`` is a file.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"run directory {path} is a file; pass a folder path to --run-dir")
    if not path.is_dir() or is_leftover(path):
        return path
    is_run = is_run_dir(path)
    if not force:
        if not is_run:
            raise FileExistsError(
                f"{path} already exists, is not empty and is not an mmrl run directory (no {RUN_MARKER} marker); "
                "mmrl will not write into it, even with --force: choose another run directory"
            )
        if _has_checkpoint(path):
            what = f"holds a run: continue it with 'mmrl train --resume {path}', or replace it"
        elif any(path.glob("model.*")):
            what = "holds a finished run without checkpoints (it cannot be continued): replace it"
        else:
            what = "holds a run that stopped before its first checkpoint (it cannot be continued): replace it"
        raise FileExistsError(
            f"run directory {path} already exists and {what} with --force (force=True), or choose another directory"
        )
    if not is_run:
        raise FileExistsError(
            f"{path} is not empty and is not an mmrl run directory (no {RUN_MARKER} marker); refusing to "
            "delete it even with --force: choose another run directory"
        )
    return path


def _has_checkpoint(path: Path) -> bool:
    folder = path / CHECKPOINTS_DIR
    return folder.is_dir() and any(_STATE_RE.match(entry.name) for entry in folder.iterdir())


def prepare_run_dir(path: str | os.PathLike[str], force: bool = False) -> Path:
    """Create the run directory ``path``; never overwrite an existing non-empty one unless ``force``.

    Call it only once the new run's settings are known to be valid (:func:`mmrl.train` builds the envs and the
    model first), so that ``force`` never deletes a run for a run that cannot start.

    Args:
        path: The run directory.
        force: Replace an existing run directory (one holding ``config.yaml``): it is first renamed to a hidden
            sibling (one atomic step, so no half-deleted run is ever visible at ``path``), then deleted.

    Raises:
        FileExistsError, NotADirectoryError: As :func:`check_run_dir`.
    """
    path = check_run_dir(path, force)
    if path.is_dir() and is_leftover(path):
        shutil.rmtree(path)
    elif path.is_dir():
        trash = Path(tempfile.mkdtemp(prefix=f".{path.name}.replaced-", dir=path.parent))
        os.replace(path, trash / path.name)
        shutil.rmtree(trash)
    (path / CHECKPOINTS_DIR).mkdir(parents=True, exist_ok=True)
    write_run_marker(path)
    return path


@dataclass(frozen=True)
class Checkpoint:
    """One complete checkpoint in ``<run_dir>/checkpoints``."""

    steps: int
    """Environment steps (``model.num_timesteps``) at the checkpoint."""
    model_path: Path
    """The saved model."""
    state_path: Path
    """``state_<N>_steps.json`` (RNG states; its presence marks the checkpoint complete)."""
    env_state_path: Path | None
    """``env_state_<N>_steps.npz`` if the env supports ``get_state``."""
    replay_buffer_path: Path | None
    """``replay_buffer_<N>_steps.pkl`` (DQN) if kept."""

    @property
    def state(self) -> dict[str, Any]:
        """The JSON content of :attr:`state_path`."""
        return json.loads(self.state_path.read_text(encoding="utf-8"))


def checkpoint_paths(run_path: Path, steps: int, algo: str) -> dict[str, Path]:
    """File names of checkpoint ``steps`` (keys ``model``, ``replay_buffer``, ``env_state``, ``state``)."""
    folder = run_path / CHECKPOINTS_DIR
    return {
        "model": folder / f"model_{steps}_steps{model_suffix(algo)}",
        "replay_buffer": folder / f"replay_buffer_{steps}_steps.pkl",
        "env_state": folder / f"env_state_{steps}_steps.npz",
        "state": folder / f"state_{steps}_steps.json",
    }


class RunDir:
    """A run directory written by :func:`mmrl.train` (layout in the module docstring).

    Args:
        path: The run directory.

    Raises:
        FileNotFoundError: If ``path`` is not a folder holding ``config.yaml``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise FileNotFoundError(f"run directory {self.path} does not exist")
        if not (self.path / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{self.path} is not an mmrl run directory (no {CONFIG_FILE}); pass a folder written by 'mmrl train'"
            )

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @cached_property
    def config(self) -> dict[str, Any]:
        """The resolved training configuration (``config.yaml``)."""
        from mmrl.yaml_io import load_yaml_file

        path = self.path / CONFIG_FILE
        config = load_yaml_file(path)
        if not isinstance(config, dict) or "algo" not in config or "env_id" not in config:
            raise ValueError(f"{path}: expected a mapping with 'algo' and 'env_id', got {type(config).__name__}")
        return config

    @property
    def algo(self) -> str:
        """``"ppo"``, ``"a2c"``, ``"dqn"`` or ``"qlearning"``."""
        return str(self.config["algo"])

    @property
    def env_id(self) -> str:
        """The training env id."""
        return str(self.config["env_id"])

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """Env constructor keyword arguments used in training (pass them to ``make_vec_env`` to evaluate)."""
        return dict(self.config.get("env_kwargs") or {})

    @property
    def seed(self) -> int:
        """The training seed."""
        return int(self.config.get("seed", 0))

    @property
    def model_path(self) -> Path:
        """The final model (``model.zip`` / ``model.npz``; may not exist if training crashed)."""
        return self.path / f"model{model_suffix(self.algo)}"

    @property
    def best_model_path(self) -> Path:
        """The best model by periodic evaluation (falls back to :attr:`model_path` if none was saved)."""
        best = self.path / f"best_model{model_suffix(self.algo)}"
        return best if best.exists() else self.model_path

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def metrics(self) -> dict[str, Any] | None:
        """``metrics.json`` or None if training has not finished."""
        if not self.metrics_path.is_file():
            return None
        return json.loads(self.metrics_path.read_text(encoding="utf-8"))

    @property
    def tokenizer_config(self) -> dict[str, Any] | None:
        """``tokenizer.json`` (for ``Tokenizer.from_config``), None if the env has no tokenizer."""
        path = self.path / TOKENIZER_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints, oldest first."""
        found: list[Checkpoint] = []
        if not self.checkpoints_dir.is_dir():
            return found
        for entry in self.checkpoints_dir.iterdir():
            match = _STATE_RE.match(entry.name)
            if not match:
                continue
            steps = int(match.group(1))
            paths = checkpoint_paths(self.path, steps, self.algo)
            if not paths["model"].is_file():
                continue
            found.append(
                Checkpoint(
                    steps=steps,
                    model_path=paths["model"],
                    state_path=paths["state"],
                    env_state_path=paths["env_state"] if paths["env_state"].is_file() else None,
                    replay_buffer_path=paths["replay_buffer"] if paths["replay_buffer"].is_file() else None,
                )
            )
        return sorted(found, key=lambda checkpoint: checkpoint.steps)

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest complete checkpoint, or None."""
        checkpoints = self.checkpoints()
        return checkpoints[-1] if checkpoints else None


# ------------------------------------------------------------------------------------------------ env state files
def save_env_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomically save ``GridVecEnv.get_state()`` as ``.npz``: arrays as members, the rest as a JSON member.

    No pickle: NumPy arrays (also nested one level in dicts) become ``.npy`` members, everything else must be JSON.
    """
    arrays: dict[str, np.ndarray] = {}
    rest: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            for sub, array in value.items():
                arrays[f"{key}/{sub}"] = array
        else:
            rest[key] = value
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("state.json", json.dumps(rest, default=_json_default))
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def load_env_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Inverse of :func:`save_env_state`.

    Raises:
        ValueError: One line naming the file when it is truncated or damaged (e.g. by a killed process).
    """
    try:
        return _read_env_state(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError, ValueError, OSError) as error:
        raise ValueError(
            f"{path}: damaged env state ({type(error).__name__}); resume from an earlier checkpoint by deleting "
            f"this checkpoint's state_<N>_steps.json, or start a new run"
        ) from None


def _read_env_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    state: dict[str, Any] = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name == "state.json":
                state.update(json.loads(archive.read(name)))
                continue
            with archive.open(name) as member:
                array = np.lib.format.read_array(member, allow_pickle=False)
            key = name[: -len(".npy")]
            if "/" in key:
                outer, inner = key.split("/", 1)
                state.setdefault(outer, {})[inner] = array
            else:
                state[key] = array
    return state


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in an env state file")


# -------------------------------------------------------------------------------------------------- model loading
def run_dir_of(model_path: Path) -> Path | None:
    """The mmrl run directory holding a model file, or None: the file's own folder if it holds the run marker
    (:func:`is_run_dir`), or, for a file in a folder named ``checkpoints``, the folder above it if that holds the
    marker. This is the SB3-zip trust rule: nothing else is unpickled without ``trust``."""
    folder = model_path.parent
    if is_run_dir(folder):
        return folder
    if folder.absolute().name == CHECKPOINTS_DIR and is_run_dir(folder.absolute().parent):
        return folder.absolute().parent
    return None


def load_model(
    run_dir_or_model_path: str | os.PathLike[str],
    env: Any = None,
    algo: str | None = None,
    best: bool = False,
    trust: bool = False,
    **kwargs: Any,
) -> Any:
    """Load a trained model from a run directory or a model file.

    SB3 ``.zip`` files run pickled code when loaded. Models inside a run directory (next to its ``config.yaml`` or
    in its ``checkpoints/``) are taken as the user's own; an SB3 zip from anywhere else needs ``trust=True``
    (:func:`mmrl.load_policy` reads pickle-free bundles).

    Args:
        run_dir_or_model_path: A run directory (its ``model.zip``/``model.npz``, or the best model with ``best``)
            or a model file (inside a run directory the algorithm comes from its ``config.yaml``, else from the
            file itself).
        env: Env to attach (optional; needed to continue training).
        algo: Force the algorithm (``ppo``, ``a2c``, ``dqn``, ``qlearning``).
        best: With a run directory, load ``best_model`` instead of ``model``.
        trust: Allow an SB3 zip that is not inside a run directory (only for files you created or trust).
        **kwargs: Passed to ``PPO/A2C/DQN.load`` or ``QLearning.load``.

    Raises:
        FileNotFoundError: If nothing is at the path.
        ValueError: For an unknown algorithm, an unreadable file, or an SB3 zip from outside a run directory
            without ``trust``.
    """
    path = Path(run_dir_or_model_path)
    if not path.exists():
        raise FileNotFoundError(f"no run directory or model file at {path}")
    run_path: Path | None
    if path.is_dir():
        run = RunDir(path)
        algo = algo or run.algo
        path = run.best_model_path if best else run.model_path
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: training in {run.path} did not finish saving a model")
        run_path = run.path if is_run_dir(run.path) else None
    else:
        run_path = run_dir_of(path)
    if run_path is None and not trust:
        from mmrl.trust import TRUST_MESSAGE, is_sb3_zip

        if is_sb3_zip(path):
            raise ValueError(
                f"refusing to load {path}, which is not inside an mmrl run directory (no {RUN_MARKER} marker next "
                f"to it or above its checkpoints/): {TRUST_MESSAGE}"
            )
    if algo is None:
        algo = RunDir(run_path).algo if run_path is not None else sniff_model_file(path)
    return get_spec(algo).load_class().load(path, env=env, **kwargs)


def write_metrics(run_path: Path, metrics: dict[str, Any]) -> None:
    """Atomically write ``metrics.json``."""
    write_json(run_path / METRICS_FILE, metrics)
