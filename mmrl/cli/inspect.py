"""``mmrl inspect BUNDLE``: print a policy bundle's manifest in readable form and check its hashes."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from mmrl.limits import short_repr


def register(subparsers: Any) -> None:
    """Add the ``inspect`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "inspect",
        help="show a policy bundle's manifest (algorithm, spaces, tokenizer, versions, hashes)",
        description="Print a policy bundle's manifest and verify its manifest and weights hashes. Loads no weights.",
    )
    parser.add_argument("bundle", metavar="BUNDLE", help="bundle directory (or its manifest.json)")
    parser.add_argument("--json", action="store_true", help="print the raw manifest JSON instead")
    parser.set_defaults(run=run)


def describe_space(description: Any) -> str:
    """One-line summary of a :func:`mmrl.spaces_json.space_to_json` description."""
    if not isinstance(description, dict):
        return short_repr(description)
    kind = description.get("type")
    if kind == "Box":
        shape = "x".join(str(n) for n in description.get("shape", []))
        low, high, dtype = (short_repr(description.get(key)) for key in ("low", "high", "dtype"))
        return f"Box({low}..{high}, {short_repr(shape)}, {dtype})"
    if kind == "Discrete":
        start = description.get("start", 0)
        return f"Discrete({description.get('n')})" + (f" from {start}" if start else "")
    if kind == "MultiDiscrete":
        return f"MultiDiscrete({short_repr(description.get('nvec'))})"
    if kind == "MultiBinary":
        return f"MultiBinary({description.get('n')})"
    if kind == "Dict":
        subspaces = description.get("spaces")
        subspaces = subspaces if isinstance(subspaces, dict) else {}
        inner = ", ".join(f"{short_repr(key)}: {describe_space(sub)}" for key, sub in subspaces.items())
        return f"Dict({inner})"
    return short_repr(description)


def format_manifest(manifest: dict[str, Any], verified: str) -> str:
    """Human-readable manifest summary."""
    lines = [
        f"format:        {manifest.get('format')} v{manifest.get('format_version')}",
        f"algorithm:     {manifest.get('algo')}",
        f"policy class:  {manifest.get('policy_class')}",
    ]
    kwargs = manifest.get("policy_kwargs")
    kwargs = kwargs if isinstance(kwargs, dict) else {}
    for key, value in kwargs.items():
        if isinstance(value, dict):
            lines.append(f"  {key}:")
            lines.extend(f"    {k}: {json.dumps(v)}" for k, v in value.items())
        else:
            lines.append(f"  {key}: {json.dumps(value)}")
    if "use_sde" in manifest:
        lines.append(f"  use_sde: {json.dumps(manifest['use_sde'])}")
    lines.append(f"observations:  {describe_space(manifest.get('observation_space'))}")
    lines.append(f"actions:       {describe_space(manifest.get('action_space'))}")
    tokenizer = manifest.get("tokenizer")
    if isinstance(tokenizer, dict):
        words = tokenizer.get("words")
        size = f"{len(words)} words" if isinstance(words, list) else f"{tokenizer.get('n_buckets')} hash buckets"
        lines.append(
            f"tokenizer:     {tokenizer.get('mode')}, {size}, max_length {tokenizer.get('max_length')}, "
            f"on_overflow {tokenizer.get('on_overflow')}"
        )
    else:
        lines.append("tokenizer:     none")
    versions = manifest.get("versions")
    versions = versions if isinstance(versions, dict) else {}
    lines.append("versions:      " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    weights = manifest.get("weights")
    weights = weights if isinstance(weights, dict) else {}
    tensors = weights.get("tensors")
    tensors = tensors if isinstance(tensors, dict) else {}
    n_values = 0
    for spec in tensors.values():
        shape = spec.get("shape") if isinstance(spec, dict) else None
        if isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
            n_values += math.prod(shape)
    lines.append(f"weights:       {weights.get('file')}: {len(tensors)} tensors, {n_values:,} values")
    lines.append(f"  sha256:      {weights.get('sha256')}")
    lines.append(f"manifest hash: {manifest.get('manifest_sha256')}")
    lines.append(f"integrity:     {verified}")
    metadata = manifest.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    if metadata:
        lines.append("metadata:")
        lines.extend(f"  {k}: {json.dumps(v)}" for k, v in metadata.items())
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``mmrl inspect``; returns 0 when the bundle verifies, 1 otherwise."""
    from mmrl.bundle import MANIFEST_NAME, read_manifest_json, verify_bundle
    from mmrl.trust import check_bundle_metadata

    path = Path(args.bundle)
    manifest_path = path / MANIFEST_NAME if path.is_dir() else path
    try:
        manifest = read_manifest_json(manifest_path)
    except (OSError, ValueError) as error:
        print(f"mmrl inspect: error: cannot read {manifest_path}: {error}", file=sys.stderr)
        return 1
    if not isinstance(manifest, dict):
        print(f"mmrl inspect: error: {manifest_path} is not a JSON object", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(manifest, indent=2, sort_keys=True))
    try:
        verify_bundle(path)
        check_bundle_metadata(manifest)  # an env id naming a module, or a level path, is no valid bundle
        verified, status = "ok (manifest and weights hashes match)", 0
    except ValueError as error:
        verified, status = f"FAILED: {error}", 1
    if args.json:
        print(f"integrity: {verified}", file=sys.stderr)
    else:
        print(format_manifest(manifest, verified))
    return status
