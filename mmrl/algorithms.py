"""The algorithm registry: everything mmrl knows about each algorithm it trains, in one :class:`AlgorithmSpec`.

Trainer, run directory, presets, bundles and CLI ask this module instead of comparing algorithm names::

    spec = get_spec("ppo")
    model_cls = spec.load_class()            # stable_baselines3.PPO (imported on first use)
    spec.suffix                              # ".zip"
    sniff_model_file("runs/x/model.zip")     # -> "ppo", read from the zip's JSON; unknown files are refused

Adding an algorithm is one :class:`AlgorithmSpec` in :data:`ALGORITHMS` plus its preset ``agents/<name>.yaml``.

This module is also the one place that touches Stable-Baselines3 internals needed for exact resume and
evaluation (:func:`complete_interrupted_step`, :func:`wrap_like_sb3`), so an SB3 upgrade that renames them breaks
here and nowhere else.
"""

from __future__ import annotations

import importlib
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ALGORITHMS",
    "AlgorithmSpec",
    "algorithm_names",
    "complete_interrupted_step",
    "get_spec",
    "sniff_model_file",
    "sniff_sb3_data",
    "spec_of_model",
    "wrap_like_sb3",
]

_F, _I, _B, _S = "float", "int", "bool", "str"

_ON_POLICY: dict[str, str] = {
    "learning_rate": _F,
    "n_steps": _I,
    "gamma": _F,
    "gae_lambda": _F,
    "ent_coef": _F,
    "vf_coef": _F,
    "max_grad_norm": _F,
    "normalize_advantage": _B,
}
_PPO: dict[str, str] = {
    **_ON_POLICY,
    "batch_size": _I,
    "n_epochs": _I,
    "clip_range": _F,
    "clip_range_vf": "float|None",
    "target_kl": "float|None",
}


@dataclass(frozen=True)
class AlgorithmSpec:
    """What mmrl needs to know about one algorithm.

    Attributes:
        name: CLI / config name (``"ppo"``).
        class_path: ``"module:Class"`` of the implementation, imported by :meth:`load_class` (a constant of this
            registry, never read from a file).
        install_hint: Command that installs the implementation when it is an optional extra (None: a dependency).
        suffix: Model file suffix (``".zip"`` for SB3 zips, ``".npz"`` for Q-learning's arrays + JSON).
        sb3: Whether the class is a Stable-Baselines3 ``BaseAlgorithm`` (torch policy, SB3 zip, SB3 callbacks).
        uses_torch_threads: Whether ``torch_threads`` applies while training.
        replay_buffer: Whether checkpoints also hold a replay buffer (``replay_buffer_<N>_steps.pkl``).
        checkpoint_on_step: Checkpoint after any complete step (no rollouts) instead of at rollout starts.
        recurrent: The policy keeps a hidden state that evaluation must carry across steps.
        clones_demonstrations: The policy can be warm-started by behaviour cloning of the planner (the
            ``demonstrations`` preset key): an actor-critic policy with ``get_distribution``.
        dict_policy: SB3 policy name for Dict observations (the mmrl extractor is plugged in).
        flat_policy: SB3 policy name for flat (Box) observations.
        policy_hyperparams: Preset keys passed to the policy (``policy_kwargs``) rather than the algorithm.
        hyperparams: Preset keys the algorithm accepts, with their types (:mod:`mmrl.training.presets`).
        max_learning_rate: Largest learning rate allowed (Q-learning's step size is at most 1), or None.
        bundle_name: Name in policy bundles (:mod:`mmrl.bundle`), or None when it cannot be exported.
        sb3_policy_module: Module prefix of the SB3 ``policy_class`` in the zip's ``data`` JSON (the sniffer).
        sb3_data_keys: Keys the ``data`` JSON must hold (the sniffer).
        sb3_data_absent: Keys the ``data`` JSON must not hold (the sniffer).
    """

    name: str
    class_path: str
    suffix: str
    sb3: bool
    uses_torch_threads: bool
    hyperparams: Mapping[str, str]
    install_hint: str | None = None
    replay_buffer: bool = False
    checkpoint_on_step: bool = False
    recurrent: bool = False
    clones_demonstrations: bool = False
    dict_policy: str = "MultiInputPolicy"
    flat_policy: str = "MlpPolicy"
    policy_hyperparams: tuple[str, ...] = ()
    max_learning_rate: float | None = None
    bundle_name: str | None = None
    sb3_policy_module: str | None = None
    sb3_data_keys: tuple[str, ...] = ()
    sb3_data_absent: tuple[str, ...] = field(default=())

    @property
    def preset_file(self) -> str:
        """File name of the built-in preset, under ``agents/``."""
        return f"{self.name}.yaml"

    def load_class(self) -> Any:
        """The implementing class, imported now.

        Raises:
            ImportError: One line naming the install command when an optional extra is missing.
        """
        module_name, class_name = self.class_path.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            if self.install_hint is None:
                raise
            raise ImportError(
                f"algorithm {self.name!r} needs the {module_name.split('.')[0]} package: {self.install_hint}"
            ) from error
        return getattr(module, class_name)

    def matches_sb3_data(self, data: Mapping[str, Any]) -> bool:
        """Whether an SB3 zip's ``data`` JSON was written by this algorithm."""
        if not self.sb3 or self.sb3_policy_module is None:
            return False
        policy_class = data.get("policy_class")
        module = str(policy_class.get("__module__", "")) if isinstance(policy_class, Mapping) else ""
        return (
            module.startswith(self.sb3_policy_module)
            and all(key in data for key in self.sb3_data_keys)
            and not any(key in data for key in self.sb3_data_absent)
        )


_SB3_POLICIES = "stable_baselines3.common.policies"

#: Every algorithm mmrl trains, by name (the order of ``mmrl train --algo``'s choices).
ALGORITHMS: dict[str, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec(
            name="ppo",
            class_path="stable_baselines3:PPO",
            suffix=".zip",
            sb3=True,
            uses_torch_threads=True,
            hyperparams=_PPO,
            bundle_name="PPO",
            clones_demonstrations=True,
            sb3_policy_module=_SB3_POLICIES,
            sb3_data_keys=("clip_range", "n_epochs"),
        ),
        AlgorithmSpec(
            name="a2c",
            class_path="stable_baselines3:A2C",
            suffix=".zip",
            sb3=True,
            uses_torch_threads=True,
            hyperparams={**_ON_POLICY, "rms_prop_eps": _F, "use_rms_prop": _B},
            bundle_name="A2C",
            clones_demonstrations=True,
            sb3_policy_module=_SB3_POLICIES,
            sb3_data_keys=("n_steps", "gae_lambda"),
            sb3_data_absent=("clip_range", "n_epochs"),
        ),
        AlgorithmSpec(
            name="dqn",
            class_path="stable_baselines3:DQN",
            suffix=".zip",
            sb3=True,
            uses_torch_threads=True,
            replay_buffer=True,
            hyperparams={
                "learning_rate": _F,
                "buffer_size": _I,
                "learning_starts": _I,
                "batch_size": _I,
                "tau": _F,
                "gamma": _F,
                "train_freq": _I,
                "gradient_steps": _I,
                "n_steps": _I,
                "target_update_interval": _I,
                "exploration_fraction": _F,
                "exploration_initial_eps": _F,
                "exploration_final_eps": _F,
                "max_grad_norm": _F,
                "optimize_memory_usage": _B,
            },
            bundle_name="DQN",
            sb3_policy_module="stable_baselines3.dqn.",
        ),
        AlgorithmSpec(
            name="qlearning",
            class_path="mmrl.agents:QLearning",
            suffix=".npz",
            sb3=False,
            uses_torch_threads=False,
            checkpoint_on_step=True,
            max_learning_rate=1.0,
            hyperparams={
                "learning_rate": _F,
                "gamma": _F,
                "exploration_initial_eps": _F,
                "exploration_final_eps": _F,
                "exploration_fraction": _F,
                "exploration_schedule": _S,
                "double_q": _B,
                "initial_q_value": _F,
                "max_states": _I,
            },
        ),
        AlgorithmSpec(
            name="recurrent_ppo",
            class_path="sb3_contrib:RecurrentPPO",
            install_hint="pip install 'mmrl-multimodal[recurrent]' (or pip install sb3-contrib)",
            suffix=".zip",
            sb3=True,
            uses_torch_threads=True,
            recurrent=True,
            dict_policy="MultiInputLstmPolicy",
            flat_policy="MlpLstmPolicy",
            hyperparams={
                **_PPO,
                "lstm_hidden_size": _I,
                "n_lstm_layers": _I,
                "shared_lstm": _B,
                "enable_critic_lstm": _B,
            },
            policy_hyperparams=("lstm_hidden_size", "n_lstm_layers", "shared_lstm", "enable_critic_lstm"),
            sb3_policy_module="sb3_contrib.common.recurrent.",
            sb3_data_keys=("clip_range",),
        ),
    )
}


def algorithm_names() -> tuple[str, ...]:
    """Names of the registered algorithms (``("ppo", "a2c", "dqn", "qlearning", "recurrent_ppo")``)."""
    return tuple(ALGORITHMS)


def get_spec(algo: Any) -> AlgorithmSpec:
    """The spec of ``algo``.

    Raises:
        ValueError: For an unknown name (the message lists the known ones).
    """
    spec = ALGORITHMS.get(algo) if isinstance(algo, str) else None
    if spec is None:
        shown = algo if isinstance(algo, str) and len(algo) <= 40 else type(algo).__name__
        raise ValueError(f"unknown algorithm {shown!r}; expected one of {', '.join(ALGORITHMS)}")
    return spec


def spec_of_model(model: Any) -> AlgorithmSpec | None:
    """The spec whose class ``model`` is an instance of exactly (None for a foreign object).

    Only algorithms whose package is already imported are checked, so this never imports an optional extra.
    """
    import sys

    for spec in ALGORITHMS.values():
        module_name, class_name = spec.class_path.split(":")
        module = sys.modules.get(module_name)
        if module is not None and type(model) is getattr(module, class_name, None):
            return spec
    return None


# ------------------------------------------------------------------------------------------------- the sniffer
def sniff_sb3_data(data: Mapping[str, Any]) -> str | None:
    """The algorithm that wrote an SB3 zip's ``data`` JSON, or None if no registered one matches."""
    found = [spec.name for spec in ALGORITHMS.values() if spec.matches_sb3_data(data)]
    return found[0] if len(found) == 1 else None


def sniff_model_file(path: str | os.PathLike[str]) -> str:
    """The algorithm of a saved model file, read without unpickling: a Q-learning ``.npz`` (arrays + JSON) or an
    SB3 zip (its ``data`` JSON member).

    Raises:
        ValueError: If the file is neither, or no registered algorithm matches (an unknown file is never guessed).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "data" not in names:
                if path.suffix == ".npz" and any(name.endswith(".npy") for name in names):
                    return _npz_algo()
                raise ValueError(f"{path} is not an SB3 model zip or a QLearning .npz file (no SB3 'data' member)")
            info = archive.getinfo("data")
            if info.file_size > 64 << 20:
                raise ValueError(f"{path}: the SB3 'data' member is over 64 MiB; not a model written by mmrl")
            data = json.loads(archive.read("data").decode("utf-8"))
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, OSError) as error:
        raise ValueError(f"{path} is not an SB3 model zip or a QLearning .npz file ({type(error).__name__})") from None
    algo = sniff_sb3_data(data) if isinstance(data, dict) else None
    if algo is None:
        raise ValueError(
            f"{path}: cannot tell which algorithm wrote this SB3 zip; supported: "
            f"{', '.join(spec.name for spec in ALGORITHMS.values() if spec.sb3)} (pass algo=... if you know it)"
        )
    return algo


def _npz_algo() -> str:
    found = [spec.name for spec in ALGORITHMS.values() if spec.suffix == ".npz"]
    assert len(found) == 1, found
    return found[0]


# -------------------------------------------------------------------------------------- the SB3 internals adapter
def wrap_like_sb3(venv: Any) -> Any:
    """Wrap a VecEnv as an SB3 algorithm wraps its env before acting (channel-last images are transposed)."""
    from stable_baselines3.common.base_class import BaseAlgorithm

    return BaseAlgorithm._wrap_env(venv, verbose=0, monitor_wrapper=False)


def complete_interrupted_step(model: Any, step_locals: dict[str, Any]) -> None:
    """Before a callback's ``on_step`` returns False: do what SB3 does after ``on_step`` for the env step that just
    happened, so that the model, its replay buffer and the env agree when it is saved.

    SB3 steps the env, calls ``callback.on_step()``, and only then stores the transition and moves ``_last_obs``.
    For on-policy algorithms this sets ``_last_obs`` / ``_last_episode_starts`` (the unfinished rollout is dropped:
    resuming starts a new one); for off-policy ones it stores the transition and counts the step as SB3 does
    (target network, exploration schedule, episode count). No-op for other models (Q-learning's ``on_step`` runs
    after its step is complete).
    """
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    new_obs, dones, infos = step_locals.get("new_obs"), step_locals.get("dones"), step_locals.get("infos")
    if new_obs is None or dones is None or infos is None:
        return
    if isinstance(model, OnPolicyAlgorithm):
        model._update_info_buffer(infos, dones)
        model._last_obs = new_obs
        model._last_episode_starts = dones
    elif isinstance(model, OffPolicyAlgorithm) and "replay_buffer" in step_locals and "buffer_actions" in step_locals:
        model._update_info_buffer(infos, dones)
        model._store_transition(
            step_locals["replay_buffer"], step_locals["buffer_actions"], new_obs, step_locals["rewards"], dones, infos
        )
        model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
        model._on_step()
        model._episode_num += int(np.sum(dones))
