"""Pickle-free policy bundles: SB3 policies saved as safetensors weights plus a JSON manifest.

An SB3 ``.zip`` runs cloudpickle when it is loaded, so a crafted file can execute code. A **policy bundle** stores
the same policy without any pickle:

**Format** (a directory, by convention named ``*.bundle`` but any name works)::

    policy.bundle/
        manifest.json         # JSON only (see below)
        weights.safetensors   # policy.state_dict(), every tensor stored under its state-dict name

``manifest.json`` holds ``format`` (``"mmrl.policy_bundle"``) and ``format_version``; ``algo`` (``"PPO"``,
``"A2C"`` or ``"DQN"``); ``policy_class`` (the SB3 class name, resolved through :data:`POLICY_CLASSES`, never by
import); ``policy_kwargs`` as plain JSON (``features_extractor_class``, ``activation_fn`` and ``optimizer_class`` by
registered name: :data:`FEATURES_EXTRACTORS`, :data:`ACTIVATIONS`, :data:`OPTIMIZERS`); ``use_sde`` (actor-critic
only); ``observation_space``/``action_space`` (see :mod:`mmrl.spaces_json`); ``tokenizer`` (the
:class:`~mmrl.tokenizer.Tokenizer` config or null); ``versions`` (mmrl, torch, stable_baselines3, gymnasium,
safetensors, numpy); ``weights`` (file name, ``sha256`` of the file, and each tensor's ``shape``/``dtype``);
``metadata`` (free-form JSON from the exporter); and ``manifest_sha256``: the SHA-256 of the manifest without that
field, serialised canonically (``json.dumps(..., sort_keys=True, separators=(",", ":"))``).

:func:`load_policy` checks both hashes before reading anything else, resolves every name through the registries
above (a dotted import path or unknown name is refused), rebuilds the policy with a constant learning-rate schedule,
checks the weights' names and shapes against it, and ``load_state_dict``\\ s them from
``safetensors.torch.load_file``. Nothing is unpickled. :func:`export_bundle` writes a bundle atomically (into a
temporary sibling directory, then renamed into place).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import (
    ActorCriticCnnPolicy,
    ActorCriticPolicy,
    BasePolicy,
    MultiInputActorCriticPolicy,
)
from stable_baselines3.common.torch_layers import CombinedExtractor, FlattenExtractor, NatureCNN
from stable_baselines3.common.utils import ConstantSchedule
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.dqn.policies import CnnPolicy as DQNCnnPolicy
from stable_baselines3.dqn.policies import DQNPolicy
from stable_baselines3.dqn.policies import MultiInputPolicy as DQNMultiInputPolicy
from torch import nn

from mmrl.algorithms import get_spec, sniff_model_file, spec_of_model
from mmrl.atomic import atomic_path, temporary_dir, write_json
from mmrl.extractor import MultimodalExtractor
from mmrl.limits import check_net_arch
from mmrl.loaded_policy import LoadedPolicy
from mmrl.spaces_json import space_from_json, space_to_json
from mmrl.trust import TRUST_MESSAGE, is_sb3_zip
from mmrl.trust import check_bundle_metadata as check_bundle_metadata  # for mmrl inspect

BUNDLE_FORMAT = "mmrl.policy_bundle"
BUNDLE_FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "weights.safetensors"
HASH_FIELD = "manifest_sha256"

#: Algorithm name -> {policy class name -> class}: the only policy classes a bundle may name.
POLICY_CLASSES: dict[str, dict[str, type[BasePolicy]]] = {
    "PPO": {c.__name__: c for c in (ActorCriticPolicy, ActorCriticCnnPolicy, MultiInputActorCriticPolicy)},
    "A2C": {c.__name__: c for c in (ActorCriticPolicy, ActorCriticCnnPolicy, MultiInputActorCriticPolicy)},
    "DQN": {"DQNPolicy": DQNPolicy, "CnnPolicy": DQNCnnPolicy, "MultiInputPolicy": DQNMultiInputPolicy},
}
#: Registered features extractors (add yours here before exporting or loading bundles that use it).
FEATURES_EXTRACTORS: dict[str, type[nn.Module]] = {
    c.__name__: c for c in (MultimodalExtractor, CombinedExtractor, FlattenExtractor, NatureCNN)
}
#: Registered activation functions (``torch.nn`` modules by class name).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    c.__name__: c
    for c in (nn.ReLU, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Identity, nn.Softplus)
}
#: Registered optimizers (only needed to rebuild the policy object; bundles carry no optimizer state).
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    c.__name__: c for c in (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.SGD)
}
_REGISTRY_NAMES = {
    "features_extractor_class": "FEATURES_EXTRACTORS",
    "activation_fn": "ACTIVATIONS",
    "optimizer_class": "OPTIMIZERS",
}
_CLASS_KWARGS: dict[str, dict[str, type]] = {
    "features_extractor_class": FEATURES_EXTRACTORS,
    "activation_fn": ACTIVATIONS,
    "optimizer_class": OPTIMIZERS,
}
#: policy_kwargs keys whose values must be plain JSON.
_PLAIN_KWARGS = (
    "net_arch",
    "features_extractor_kwargs",
    "normalize_images",
    "share_features_extractor",
    "ortho_init",
    "log_std_init",
    "full_std",
    "use_expln",
    "squash_output",
    "optimizer_kwargs",
)
_SAFETENSORS_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


# ------------------------------------------------------------------------------------------------------ hashing
def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``manifest`` without its ``manifest_sha256`` field, serialised canonically."""
    return hashlib.sha256(_canonical({k: v for k, v in manifest.items() if k != HASH_FIELD})).hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -------------------------------------------------------------------------------------------------------- export
def _class_name(key: str, value: Any) -> str:
    registry = _CLASS_KWARGS[key]
    for name, cls in registry.items():
        if value is cls:
            return name
    shown = getattr(value, "__qualname__", repr(value))
    raise TypeError(
        f"policy_kwargs[{key!r}] is {shown}, which has no registered name; bundles can only name "
        f"{', '.join(registry)}. Add it to mmrl.bundle.{_REGISTRY_NAMES[key]} before exporting (and loading), "
        "or keep using the SB3 .zip"
    )


def _plain_json(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | np.integer | np.floating):
        value = value.item() if isinstance(value, np.generic) else value
        if isinstance(value, float) and not np.isfinite(value):
            raise ValueError(f"{where} is {value}, which JSON cannot store; use a finite number")
        return value
    if isinstance(value, list | tuple):
        return [_plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _plain_json(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r}); a bundle manifest only stores plain JSON "
        "(str, number, bool, None, list, dict)"
    )


def _policy_kwargs_to_json(model: BaseAlgorithm) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dict(model.policy_kwargs).items():
        if key in _CLASS_KWARGS:
            out[key] = _class_name(key, value)
        elif key in _PLAIN_KWARGS:
            out[key] = _plain_json(value, f"policy_kwargs[{key!r}]")
        else:
            raise TypeError(
                f"policy_kwargs[{key!r}] cannot be stored in a bundle; supported keys: "
                f"{', '.join([*_CLASS_KWARGS, *_PLAIN_KWARGS])}"
            )
    policy = model.policy
    # Record what the policy actually used, so a later SB3 with other defaults rebuilds the same network.
    if "activation_fn" not in out and isinstance(getattr(policy, "activation_fn", None), type):
        out["activation_fn"] = _class_name("activation_fn", policy.activation_fn)
    if "features_extractor_class" not in out and hasattr(policy, "features_extractor_class"):
        out["features_extractor_class"] = _class_name("features_extractor_class", policy.features_extractor_class)
    return out


def _tokenizer_config_of(env: Any) -> dict[str, Any] | None:
    if env is None:
        return None
    with contextlib.suppress(Exception):
        if isinstance(env, VecEnv):
            tokenizer = env.get_attr("tokenizer", indices=[0])[0]
        else:
            tokenizer = getattr(getattr(env, "unwrapped", env), "tokenizer", None)
        if tokenizer is not None:
            return tokenizer.to_config()
    return None


def _versions() -> dict[str, str]:
    import gymnasium
    import safetensors
    import stable_baselines3

    from mmrl.version import __version__

    return {
        "mmrl": __version__,
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def _algo_name(model: BaseAlgorithm) -> str:
    spec = spec_of_model(model)
    if spec is None or spec.bundle_name is None or spec.bundle_name not in POLICY_CLASSES:
        raise TypeError(
            f"cannot export a {type(model).__name__} model; bundles support {', '.join(POLICY_CLASSES)} "
            "(keep using the SB3 .zip for other algorithms)"
        )
    return spec.bundle_name


def export_bundle(
    model: BaseAlgorithm,
    path: str | os.PathLike[str],
    env: Any = None,
    tokenizer_config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = True,
) -> Path:
    """Writes ``model``'s policy as a pickle-free bundle directory at ``path`` (see the module docstring).

    The bundle is assembled in a temporary sibling directory and renamed into place, so a crash leaves no
    half-written bundle; replacing an existing bundle renames the old one away first and deletes it afterwards.

    Args:
        model: A PPO, A2C or DQN model whose policy class and ``policy_kwargs`` are registered (the default
            ``"MultiInputPolicy"`` with :func:`mmrl.policy_kwargs` is).
        path: Destination directory (created; its parent too).
        env: Optional env (Gymnasium env or SB3 VecEnv) to read the tokenizer from (``env.unwrapped.tokenizer``);
            the model's own env is tried when both ``env`` and ``tokenizer_config`` are None.
        tokenizer_config: Tokenizer config to store (wins over ``env``).
        metadata: Free-form JSON (e.g. ``{"env_id": ..., "seed": ...}``) stored under ``"metadata"``.
        overwrite: Replace an existing bundle at ``path``; when False an existing path raises.

    Returns:
        The bundle directory.

    Raises:
        TypeError: For unsupported algorithms, unregistered classes or non-JSON ``policy_kwargs``/metadata.
        FileExistsError: If ``path`` exists and is not a bundle, or ``overwrite`` is False.
    """
    from safetensors.torch import save_file

    algo = _algo_name(model)
    policy = model.policy
    policy_class = type(policy).__name__
    if POLICY_CLASSES[algo].get(policy_class) is not type(policy):
        raise TypeError(
            f"cannot export policy class {type(policy).__qualname__}; {algo} bundles support "
            f"{', '.join(POLICY_CLASSES[algo])}"
        )
    if tokenizer_config is None:
        tokenizer_config = _tokenizer_config_of(env if env is not None else model.get_env())
    state = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in policy.state_dict().items()}
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "algo": algo,
        "policy_class": policy_class,
        "policy_kwargs": _policy_kwargs_to_json(model),
        "observation_space": space_to_json(model.observation_space),
        "action_space": space_to_json(model.action_space),
        "tokenizer": _plain_json(tokenizer_config, "tokenizer_config"),
        "versions": _versions(),
        "metadata": _plain_json(metadata or {}, "metadata"),
    }
    if isinstance(policy, ActorCriticPolicy):
        manifest["use_sde"] = bool(model.use_sde)

    final = Path(path)
    if final.exists() and (not overwrite or not _is_replaceable(final)):
        raise FileExistsError(
            f"{final} exists and {'overwrite=False' if not overwrite else 'is not a policy bundle'}; "
            "choose another path or remove it first"
        )
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_dir(final.parent, f".{final.name}.", ".tmp")  # umask's mode, unlike mkdtemp's 0700
    try:
        with atomic_path(staging / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": BUNDLE_FORMAT})
        manifest["weights"] = {
            "file": WEIGHTS_NAME,
            "sha256": file_sha256(staging / WEIGHTS_NAME),
            "tensors": {
                name: {"shape": list(t.shape), "dtype": _SAFETENSORS_DTYPES.get(t.dtype, str(t.dtype))}
                for name, t in state.items()
            },
        }
        manifest[HASH_FIELD] = manifest_hash(manifest)
        write_json(staging / MANIFEST_NAME, manifest)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(staging, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, final)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return final


def _is_replaceable(path: Path) -> bool:
    """An empty folder, or a bundle: its manifest (a small regular file) carries the bundle format tag."""
    if not path.is_dir() or path.is_symlink():
        return False
    manifest = path / MANIFEST_NAME
    if not manifest.exists():
        return not any(path.iterdir())
    try:
        if not manifest.is_file() or manifest.stat().st_size > 1 << 20:
            return False
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == BUNDLE_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


# ---------------------------------------------------------------------------------------------------------- load
def load_policy(path: str | os.PathLike[str], trust: bool = False, device: str = "cpu") -> LoadedPolicy:
    """Loads a policy for inference, never unpickling anything unless ``trust=True``.

    * A bundle directory (or its ``manifest.json``): hashes verified, classes resolved by registered name,
      weights read with ``safetensors``.
    * A QLearning ``.npz`` (arrays + JSON metadata): :meth:`mmrl.agents.QLearning.load` (``allow_pickle=False``).
    * An SB3 ``.zip``: only with ``trust=True`` (``PPO.load``/``A2C.load``/``DQN.load`` unpickle); the algorithm is
      read from the zip's ``data`` JSON (which is safe to parse).

    Args:
        path: Bundle directory, ``manifest.json``, ``.npz`` or ``.zip``.
        trust: Allow loading SB3 zips (runs pickled code: only for files you created or trust).
        device: Torch device for the policy.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: For an SB3 zip without ``trust=True`` (the message says why), for bundles whose hashes,
            names, spaces or weights are wrong, and for unrecognised files.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no policy at {path}")
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise ValueError(f"{path} is a directory without {MANIFEST_NAME}, so not a policy bundle")
        return _load_bundle(path, device)
    if path.suffix == ".json":
        return _load_bundle(path.parent, device, manifest_path=path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a policy bundle directory, a manifest.json, a QLearning .npz or an SB3 .zip")
    if is_sb3_zip(path):
        return _load_sb3_zip(path, trust, device)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    if path.suffix == ".npz" or any(name.endswith(".npy") for name in names):
        return _load_qlearning(path)
    raise ValueError(f"{path} is a zip archive but neither an SB3 model (data + policy.pth) nor a QLearning .npz")


def _load_qlearning(path: Path) -> LoadedPolicy:
    from mmrl.agents import QLearning

    agent = QLearning.load(path)
    summary = {"format": "mmrl.qlearning", "algo": "QLearning", "path": str(path)}
    return LoadedPolicy(agent.observation_space, agent.action_space, summary, None, agent)


def sb3_zip_algo(path: str | os.PathLike[str]) -> str:
    """The bundle name of the algorithm (``"PPO"``, ``"A2C"``, ``"DQN"``) of an SB3 zip, read from its ``data`` JSON
    without unpickling (:func:`mmrl.algorithms.sniff_model_file`).

    Raises:
        ValueError: If the zip has no readable ``data`` member or no registered algorithm matches it.
    """
    spec = get_spec(sniff_model_file(path))
    if spec.bundle_name is None or not spec.sb3:
        raise ValueError(f"{path}: a {spec.name} model; supported here: {', '.join(POLICY_CLASSES)}")
    return spec.bundle_name


def _load_sb3_zip(path: Path, trust: bool, device: str) -> LoadedPolicy:
    if not trust:
        raise ValueError(f"refusing to load {path}: {TRUST_MESSAGE}")
    algo = sb3_zip_algo(path)
    model = get_spec(sniff_model_file(path)).load_class().load(path, device=device)
    model.policy.set_training_mode(False)
    summary = {"format": "sb3.zip", "algo": algo, "path": str(path)}
    return LoadedPolicy(model.observation_space, model.action_space, summary, None, model.policy)


#: Largest manifest read (a real one is a few KB; raise with MMRL_MAX_MANIFEST_BYTES).
MAX_MANIFEST_BYTES = 16 << 20


def read_manifest_json(manifest_path: Path) -> Any:
    """The JSON in ``manifest_path``: a regular file of at most ``MAX_MANIFEST_BYTES``, nested a bounded depth.

    Raises:
        ValueError: Not a regular file, too large, not UTF-8, not JSON or nested too deeply (one line, no content).
    """
    from mmrl.files import read_text_capped

    text = read_text_capped(manifest_path, MAX_MANIFEST_BYTES, "bundle manifest", "MMRL_MAX_MANIFEST_BYTES")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path}: not valid JSON (line {error.lineno}, column {error.colno})") from None
    except RecursionError:
        raise ValueError(f"{manifest_path}: JSON nested too deeply to be a bundle manifest") from None


def _read_manifest(bundle: Path, manifest_path: Path | None) -> dict[str, Any]:
    manifest_path = manifest_path or bundle / MANIFEST_NAME
    manifest = read_manifest_json(manifest_path)
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise ValueError(
            f"{manifest_path}: not a policy bundle manifest (expected format {BUNDLE_FORMAT!r}, got "
            f"{manifest.get('format') if isinstance(manifest, dict) else type(manifest).__name__!r})"
        )
    if manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
        raise ValueError(
            f"{manifest_path}: bundle format version {manifest.get('format_version')!r} is not supported "
            f"(this mmrl reads version {BUNDLE_FORMAT_VERSION}); upgrade mmrl or re-export the bundle"
        )
    return manifest


def verify_bundle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Checks a bundle's manifest hash and weights hash; returns the manifest.

    Raises:
        ValueError: If either hash is missing or does not match (the bundle was modified or corrupted).
    """
    bundle = Path(path)
    if bundle.is_file() and bundle.suffix == ".json":
        bundle, manifest_path = bundle.parent, bundle
    else:
        manifest_path = bundle / MANIFEST_NAME
    manifest = _read_manifest(bundle, manifest_path)
    expected = manifest.get(HASH_FIELD)
    try:
        actual = manifest_hash(manifest)
    except ValueError as error:  # NaN/inf smuggled into the JSON
        raise ValueError(f"{manifest_path}: manifest holds non-finite numbers ({error})") from error
    if expected != actual:
        raise ValueError(
            f"{manifest_path}: manifest hash mismatch (recorded {expected!r}, computed {actual}); the manifest was "
            "modified or corrupted after export: re-export the bundle"
        )
    weights = manifest.get("weights")
    if not isinstance(weights, dict) or weights.get("file") != WEIGHTS_NAME:
        raise ValueError(f"{manifest_path}: 'weights' must name the file {WEIGHTS_NAME!r}, got {weights!r}")
    weights_path = bundle / WEIGHTS_NAME
    if not weights_path.is_file():
        raise ValueError(f"{bundle}: bundle lacks its weights file {WEIGHTS_NAME}")
    digest = file_sha256(weights_path)
    if digest != weights.get("sha256"):
        raise ValueError(
            f"{weights_path}: weights sha256 mismatch (manifest says {weights.get('sha256')!r}, file is {digest}); "
            "the weights were modified or corrupted after export: re-export the bundle"
        )
    return manifest


def _resolve(registry: Mapping[str, Any], name: Any, what: str) -> Any:
    if not isinstance(name, str) or name not in registry:
        raise ValueError(
            f"bundle names {what} {name!r}, which is not registered (bundles never import by path); "
            f"expected one of {', '.join(registry)}"
        )
    return registry[name]


def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(item, f"{where}[{key!r}]")
        return
    raise ValueError(f"{where} is not plain JSON")


def _check_bundle_net_arch(net_arch: Any) -> None:
    """SB3's ``net_arch`` (a list of widths, or ``{"pi": [...], "vf": [...]}``) within the size limits."""
    arches = list(net_arch.values()) if isinstance(net_arch, dict) else [net_arch]
    for layers in arches:
        if not isinstance(layers, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in layers):
            raise ValueError("manifest policy_kwargs['net_arch'] must list integer layer widths")
        check_net_arch(layers, "manifest policy_kwargs['net_arch']")


def _policy_kwargs_from_json(kwargs: Any) -> dict[str, Any]:
    if not isinstance(kwargs, dict):
        raise ValueError(f"manifest 'policy_kwargs' must be an object, got {type(kwargs).__name__}")
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        if key in _CLASS_KWARGS:
            out[key] = _resolve(_CLASS_KWARGS[key], value, f"policy_kwargs[{key!r}]")
        elif key in _PLAIN_KWARGS:
            _check_plain(value, f"policy_kwargs[{key!r}]")
            out[key] = value
            if key == "net_arch":
                _check_bundle_net_arch(value)
        else:
            raise ValueError(
                f"manifest policy_kwargs has unsupported key {key!r}; supported: "
                f"{', '.join([*_CLASS_KWARGS, *_PLAIN_KWARGS])}"
            )
    return out


def _load_bundle(bundle: Path, device: str, manifest_path: Path | None = None) -> LoadedPolicy:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    manifest = verify_bundle(manifest_path or bundle)
    algo_classes = _resolve(POLICY_CLASSES, manifest.get("algo"), "algorithm")
    policy_class = _resolve(algo_classes, manifest.get("policy_class"), f"{manifest['algo']} policy class")
    kwargs = _policy_kwargs_from_json(manifest.get("policy_kwargs", {}))
    if issubclass(policy_class, ActorCriticPolicy):
        kwargs["use_sde"] = bool(manifest.get("use_sde", False))
    try:
        observation_space = space_from_json(manifest.get("observation_space"))
        action_space = space_from_json(manifest.get("action_space"))
    except ValueError as error:
        raise ValueError(f"{bundle}: bad space in manifest: {error}") from error
    tokenizer_config = manifest.get("tokenizer")
    if tokenizer_config is not None and not isinstance(tokenizer_config, dict):
        raise ValueError(f"{bundle}: manifest 'tokenizer' must be an object or null")

    try:
        state = load_file(str(bundle / WEIGHTS_NAME), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{bundle}: unreadable safetensors weights ({error})") from error
    listed = manifest["weights"].get("tensors", {})
    if not isinstance(listed, dict) or set(listed) != set(state):
        raise ValueError(
            f"{bundle}: weights file and manifest disagree on tensor names (file only: "
            f"{sorted(set(state) - set(listed or {}))}, manifest only: {sorted(set(listed or {}) - set(state))})"
        )

    try:
        policy = policy_class(observation_space, action_space, ConstantSchedule(0.0), **kwargs)
    except (TypeError, ValueError, KeyError, RuntimeError) as error:
        raise ValueError(f"{bundle}: cannot rebuild {manifest['policy_class']} from the manifest: {error}") from error
    expected = policy.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{bundle}: weights do not match the policy described by the manifest: missing tensors {missing}, "
            f"unexpected tensors {unexpected}; the bundle is inconsistent: re-export it"
        )
    mismatched = [
        f"{name}: weights {list(state[name].shape)} vs policy {list(tensor.shape)}"
        for name, tensor in expected.items()
        if tuple(state[name].shape) != tuple(tensor.shape) or state[name].dtype != tensor.dtype
    ]
    if mismatched:
        raise ValueError(
            f"{bundle}: weights do not match the policy described by the manifest (shape/dtype): "
            f"{'; '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}; re-export the bundle"
        )
    policy.load_state_dict(state, strict=True)
    policy.to(device)
    policy.set_training_mode(False)
    return LoadedPolicy(observation_space, action_space, manifest, tokenizer_config, policy)
