"""The pre-trained encoder bundle: a folder with ``encoder.safetensors`` and ``manifest.json``.

The manifest (plain JSON) says what the weights fit: the encoder of every part (class, input shape, vocabulary
size, widths), the env and its vocabulary, the pre-training losses, the SHA-256 of the weights file and of the
manifest itself, and every tensor's shape. Reading a bundle never unpickles anything: the manifest is JSON (size
capped), the weights are safetensors, and both hashes and every shape are checked before a tensor is used.

Layout::

    DIR/manifest.json         {"format": "mmrl-pretrained-encoder", "version": 1, "parts": {...}, ...}
    DIR/encoder.safetensors   extractor parameters by their names in MultimodalExtractor.state_dict()
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mmrl.atomic import atomic_path, temporary_dir, write_json

FORMAT = "mmrl-pretrained-encoder"
VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "encoder.safetensors"
HASH_FIELD = "manifest_sha256"
#: Largest manifest read (bytes): a manifest lists a few dozen tensors and a vocabulary.
MAX_MANIFEST_BYTES = 4 << 20
#: Largest weights file read (bytes).
MAX_WEIGHTS_BYTES = 2 << 30
#: Extractor sub-modules a bundle may hold, by part name.
PART_PREFIXES = {"image": "image_encoders.", "text": "text_encoders.", "fusion": "fusion.", "head": "head."}


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def manifest_sha256(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest without its own hash field, serialised canonically."""
    return hashlib.sha256(_canonical({k: v for k, v in manifest.items() if k != HASH_FIELD})).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_extractor(extractor: Any) -> dict[str, Any]:
    """The encoder settings of every part of a :class:`~mmrl.extractor.MultimodalExtractor` that a bundle checks.

    ``{"image": [{"key", "encoder", "input_CHW", "categories"}], "text": [{"key", "encoder", "vocab_size",
    "max_length", "text_dim"}], "fusion": {"class", "features"}}`` (class names, shapes and widths only).
    """
    images = [
        {
            "key": key,
            "encoder": type(encoder).__name__,
            "input_CHW": list(image_input.shape_CHW),
            "categories": None if image_input.categories is None else list(image_input.categories),
        }
        for key, image_input, encoder in zip(
            extractor.image_keys, extractor.image_inputs, extractor.image_encoders, strict=True
        )
    ]
    texts = [
        {
            "key": key,
            "encoder": type(encoder).__name__,
            "vocab_size": int(encoder.vocab_size),
            "max_length": int(encoder.max_length),
            "text_dim": int(encoder.output_dim),
        }
        for key, encoder in zip(extractor.text_keys, extractor.text_encoders, strict=True)
    ]
    fusion: dict[str, Any] = {"class": type(extractor.fusion).__name__}
    if extractor.fusion.image_pool != "none":  # bundles written before image_pool existed read as "none"
        fusion["image_pool"] = extractor.fusion.image_pool
    return {"image": images, "text": texts, "fusion": fusion}


def check_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Returns ``out_dir`` as a path if a bundle may be written there (it does not exist, or is a bundle).

    Raises:
        ValueError: If ``out_dir`` exists and is not a pre-trained bundle (nothing is ever deleted then).
    """
    final = Path(out_dir)
    if final.exists() and not is_bundle(final):
        raise ValueError(f"{final} exists and is not a pre-trained encoder bundle; choose another --out")
    return final


def staging_dir(final: Path) -> Path:
    """A fresh hidden folder beside ``final`` in which a bundle is built before :func:`publish` moves it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return temporary_dir(final.parent, f".{final.name}.", ".tmp")


def publish(
    staging: Path,
    final: Path,
    tensors: Mapping[str, torch.Tensor],
    settings: Mapping[str, Any],
    info: Mapping[str, Any],
) -> Path:
    """Writes weights and manifest into ``staging`` and moves it onto ``final`` (replacing an older bundle there).

    Args:
        staging: From :func:`staging_dir`; other files already in it (logs, pictures) are kept.
        final: Destination, checked by :func:`check_out_dir`.
        tensors: Extractor parameters by ``state_dict`` name (parts: :data:`PART_PREFIXES`; other names are kept
            but only read by whoever knows them, e.g. a cloned policy's heads under ``policy.``).
        settings: :func:`describe_extractor` of the extractor the tensors come from.
        info: Further manifest fields (``env_id``, ``env_kwargs``, ``vocabulary``, ``losses``, ``method``, ...).
    """
    from safetensors.torch import save_file

    check_out_dir(final)
    parts = sorted({part for name in tensors for part, prefix in PART_PREFIXES.items() if name.startswith(prefix)})
    # clones: safetensors refuses tensors sharing memory (an SB3 policy lists its extractor under three names)
    weights = {name: tensor.detach().cpu().clone().contiguous() for name, tensor in tensors.items()}
    with atomic_path(staging / WEIGHTS) as tmp:
        save_file(weights, str(tmp))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        **info,
        "settings": dict(settings),
        "parts": parts,
        "tensors": {name: list(tensor.shape) for name, tensor in weights.items()},
        "weights_sha256": file_sha256(staging / WEIGHTS),
    }
    manifest[HASH_FIELD] = manifest_sha256(manifest)
    write_json(staging / MANIFEST, manifest)
    if final.exists():
        old = temporary_dir(final.parent, f".{final.name}.", ".old")
        os.replace(final, old / "bundle")
        os.replace(staging, final)
        remove_tree(old)
    else:
        os.replace(staging, final)
    return final


def save_bundle(
    out_dir: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    settings: Mapping[str, Any],
    info: Mapping[str, Any],
) -> Path:
    """Writes a bundle folder atomically (built beside ``out_dir``, then moved into place); see :func:`publish`.

    Raises:
        ValueError: If ``out_dir`` exists and is not a pre-trained bundle (nothing is deleted).
    """
    final = check_out_dir(out_dir)
    staging = staging_dir(final)
    try:
        return publish(staging, final, tensors, settings, info)
    finally:
        if staging.exists():
            remove_tree(staging)


def remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def is_bundle(path: Path) -> bool:
    """Whether ``path`` is a folder holding a manifest of this format (only such a folder is ever replaced)."""
    try:
        manifest = json.loads((path / MANIFEST).read_bytes()[:MAX_MANIFEST_BYTES])
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked manifest of bundle folder ``path``.

    Raises:
        ValueError: For a missing or oversized manifest, bad JSON, another format or version, or a manifest whose
            hash does not match its content.
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise ValueError(
            f"pretrained={str(path)!r} is not a pre-trained encoder bundle (no {MANIFEST}); make one with "
            f"'mmrl pretrain --env ID --method autoencoder --out DIR'"
        )
    size = manifest_path.stat().st_size
    if size > MAX_MANIFEST_BYTES:
        raise ValueError(f"{manifest_path}: {size} bytes is larger than a manifest can be ({MAX_MANIFEST_BYTES})")
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (ValueError, RecursionError):
        raise ValueError(f"{manifest_path} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{manifest_path}: unsupported version {str(manifest.get('version'))[:20]} (expected 1)")
    if manifest.get(HASH_FIELD) != manifest_sha256(manifest):
        raise ValueError(f"{manifest_path}: the manifest hash does not match its content (the file was changed)")
    tensors = manifest.get("tensors")
    if not isinstance(tensors, dict) or not all(
        isinstance(shape, list) and all(isinstance(n, int) and 0 <= n < 1 << 31 for n in shape)
        for shape in tensors.values()
    ):
        raise ValueError(f"{manifest_path}: 'tensors' must map names to shapes (lists of ints)")
    return manifest


def read_weights(path: str | os.PathLike[str], manifest: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The bundle's tensors, after checking the file's size, SHA-256 and every shape against ``manifest``.

    Raises:
        ValueError: For a missing, oversized or changed weights file, or tensors whose names or shapes differ from
            the manifest's.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights_path = Path(path) / WEIGHTS
    if not weights_path.is_file():
        raise ValueError(f"{weights_path} is missing: the bundle is incomplete")
    expected_bytes = sum(4 * math.prod(shape) for shape in manifest["tensors"].values())
    size = weights_path.stat().st_size
    if size > MAX_WEIGHTS_BYTES or size > 2 * expected_bytes + (1 << 20):
        raise ValueError(f"{weights_path}: {size} bytes, far more than the manifest's tensors need ({expected_bytes})")
    if file_sha256(weights_path) != manifest.get("weights_sha256"):
        raise ValueError(f"{weights_path}: SHA-256 does not match the manifest (the weights were changed)")
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{weights_path}: cannot read the weights: {str(error)[:200]}") from None
    declared = {name: tuple(shape) for name, shape in manifest["tensors"].items()}
    actual = {name: tuple(tensor.shape) for name, tensor in tensors.items()}
    if declared != actual:
        differing = sorted(set(declared.items()) ^ set(actual.items()))[:3]
        raise ValueError(f"{weights_path}: tensors differ from the manifest's list (e.g. {differing})")
    return tensors


def write_png(path: Path, image_HWC: Any) -> None:
    """Writes an RGB uint8 array as a PNG, atomically."""
    import cv2

    with atomic_path(path) as tmp:
        ok, data = cv2.imencode(".png", image_HWC[..., ::-1])
        if not ok:
            raise OSError(f"cannot encode {path} as PNG")
        tmp.write_bytes(data.tobytes())
