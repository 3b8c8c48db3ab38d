"""Loading pre-trained weights into a :class:`~mmrl.extractor.MultimodalExtractor`, and freezing parts of it.

``MultimodalExtractor(..., pretrained=DIR, freeze="image")`` calls :func:`load_into` at the end of its constructor;
so do ``mmrl.policy_kwargs(pretrained=DIR, freeze=...)`` and ``mmrl train ... --set pretrained=DIR --set freeze=...``.
``DIR`` is a pre-trained encoder bundle (``mmrl pretrain --method autoencoder``) or a run directory of
``mmrl pretrain --method bc`` (its ``encoder/`` bundle). Every setting is checked before any weight is copied; a
mismatch is a ``ValueError`` naming the bundle's side and the extractor's side.
"""

from __future__ import annotations

import os
import types
from pathlib import Path
from typing import Any

import torch

from mmrl.pretrain.encoder_bundle import MANIFEST, PART_PREFIXES, describe_extractor, read_manifest, read_weights

FREEZE_CHOICES = ("none", "image", "text", "all")
#: Sub-folder of a behaviour-cloning run directory that holds its encoder bundle.
RUN_ENCODER_DIR = "encoder"


def bundle_dir(pretrained: str | os.PathLike[str]) -> Path:
    """The bundle folder of ``pretrained`` (a bundle, or a run directory holding one in ``encoder/``).

    Raises:
        ValueError: If ``pretrained`` is neither.
    """
    path = Path(pretrained).expanduser()
    if (path / MANIFEST).is_file():
        return path
    if (path / RUN_ENCODER_DIR / MANIFEST).is_file():
        return path / RUN_ENCODER_DIR
    raise ValueError(
        f"pretrained={str(pretrained)!r} is neither a pre-trained encoder bundle (a folder with {MANIFEST}) nor a "
        f"run directory of 'mmrl pretrain --method bc'; make one with 'mmrl pretrain --env ID --out DIR'"
    )


def modules_of(extractor: Any, part: str) -> list[torch.nn.Module]:
    """The extractor's modules that ``freeze=part`` freezes."""
    if part == "image":
        return [extractor.image_encoders]
    if part == "text":
        return [extractor.text_encoders]
    if part == "all":
        return [extractor.image_encoders, extractor.text_encoders, extractor.vector_encoders, extractor.fusion]
    return []


def _vocabulary_of(encoder: Any) -> tuple[str, ...] | None:
    from mmrl.extractor.hf_text import default_vocabulary

    vocabulary = getattr(encoder, "vocabulary", None)
    return tuple(vocabulary) if vocabulary is not None else default_vocabulary(int(encoder.vocab_size))


def check_compatible(extractor: Any, manifest: dict[str, Any], where: str) -> None:
    """Raises ``ValueError`` naming both sides if the bundle's parts do not fit ``extractor``."""
    ours = describe_extractor(extractor)
    theirs = manifest.get("settings", {})
    parts = manifest.get("parts", [])
    for part in ("image", "text"):
        if part in parts and theirs.get(part) != ours[part]:
            raise ValueError(
                f"pretrained bundle {where} has {part} encoders {theirs.get(part)}, but this extractor has "
                f"{ours[part]}; build it with the bundle's settings (same env options, --set {part}_encoder=..., "
                f"text_dim, cell_dim) or pre-train again for this one"
            )
    if "fusion" in parts and theirs.get("fusion") != ours["fusion"]:
        raise ValueError(
            f"pretrained bundle {where} has fusion {theirs.get('fusion')}, but this extractor has {ours['fusion']}; "
            f"pass the bundle's fusion (--set fusion=...)"
        )
    if "text" in parts:
        vocabulary = manifest.get("vocabulary")
        for encoder in extractor.text_encoders:
            ours_vocabulary = _vocabulary_of(encoder)
            if vocabulary is not None and ours_vocabulary is not None and tuple(vocabulary) != ours_vocabulary:
                changed = sorted(set(vocabulary) ^ set(ours_vocabulary))[:5]
                raise ValueError(
                    f"pretrained bundle {where} was trained on a vocabulary of {len(vocabulary)} words, this "
                    f"extractor reads {len(ours_vocabulary)} (differing words: {changed}); pre-train on this env"
                )


def load_into(extractor: Any, pretrained: str | os.PathLike[str] | None, freeze: str = "none") -> None:
    """Copies a bundle's weights into ``extractor`` and freezes the parts ``freeze`` names.

    Args:
        extractor: A freshly built :class:`~mmrl.extractor.MultimodalExtractor`.
        pretrained: A bundle folder or a behaviour-cloning run directory; ``None``: nothing is loaded.
        freeze: ``"none"``, ``"image"`` (image encoders), ``"text"`` (text encoders) or ``"all"`` (every encoder
            and the fusion; the final projection stays trainable). Frozen parameters get ``requires_grad=False``:
            no gradient, no optimizer update, and no backward pass through them.

    Raises:
        ValueError: For an unknown ``freeze``, ``freeze`` without ``pretrained``, a missing or tampered bundle, or
            settings, vocabulary or shapes that differ (the message names both sides). Nothing is changed then.
    """
    if freeze not in FREEZE_CHOICES:
        raise ValueError(f"unknown freeze {freeze!r}; valid choices: {', '.join(FREEZE_CHOICES)}")
    extractor.pretrained_from = None
    extractor.frozen = freeze
    if pretrained is None:
        if freeze != "none":
            raise ValueError(f"freeze={freeze!r} needs pretrained=DIR (freezing random weights teaches nothing)")
        return
    folder = bundle_dir(pretrained)
    manifest = read_manifest(folder)
    check_compatible(extractor, manifest, str(folder))
    tensors = read_weights(folder, manifest)
    prefixes = tuple(PART_PREFIXES[part] for part in manifest["parts"] if part in PART_PREFIXES)
    state = extractor.state_dict()
    chosen = {name: tensor for name, tensor in tensors.items() if name.startswith(prefixes)}
    for name, tensor in chosen.items():
        if name not in state or tuple(state[name].shape) != tuple(tensor.shape):
            have = "missing" if name not in state else f"shape {tuple(state[name].shape)}"
            raise ValueError(
                f"pretrained bundle {folder}: tensor {name!r} has shape {tuple(tensor.shape)} there, this extractor's "
                f"is {have}; build the extractor with the bundle's settings"
            )
    missing = sorted(name for name in state if name.startswith(prefixes) and name not in chosen)
    if missing:
        raise ValueError(
            f"pretrained bundle {folder} lacks {len(missing)} tensors of this extractor, e.g. {missing[0]}"
        )
    extractor.pretrained_tensors = chosen
    _restore(extractor)
    # SB3's PPO/A2C policies re-initialise every Linear/Conv2d of the extractor (ortho_init) through ``apply``
    # right after building it: the pre-trained weights are copied in again after any ``apply``.
    extractor.apply = types.MethodType(_apply_keeping_pretrained, extractor)
    for module in modules_of(extractor, freeze):
        module.requires_grad_(False)
    extractor.pretrained_from = str(folder)


def _restore(extractor: Any) -> None:
    """Copies ``extractor.pretrained_tensors`` into its parameters (in place: optimizers keep their references)."""
    state = extractor.state_dict()
    with torch.no_grad():
        for name, tensor in extractor.pretrained_tensors.items():
            state[name].copy_(tensor.to(device=state[name].device, dtype=state[name].dtype))


def _apply_keeping_pretrained(extractor: Any, fn: Any) -> Any:
    """``nn.Module.apply`` followed by :func:`_restore` (bound to a loaded extractor as its ``apply``)."""
    type(extractor).apply(extractor, fn)
    _restore(extractor)
    return extractor
