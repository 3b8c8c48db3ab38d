"""``mmrl export RUN_DIR [-o OUT]``: convert a run's SB3 ``model.zip`` into a pickle-free policy bundle.

The run's own ``model.zip`` is trusted (it is the user's own training output), so it is loaded with SB3's
``load``; the bundle written next to it (default ``RUN_DIR/policy.bundle``) can then be shared and loaded with
``mmrl.load_policy`` without unpickling anything. See :mod:`mmrl.bundle` for the format.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

DEFAULT_BUNDLE_NAME = "policy.bundle"


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "export",
        help="write a pickle-free policy bundle (safetensors + JSON manifest) from a run directory",
        description=(
            "Load RUN_DIR's model.zip (trusted: it is your own run) and write a policy bundle: a directory with "
            "weights.safetensors and manifest.json, loadable with mmrl.load_policy without running pickled code."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by 'mmrl train'")
    parser.add_argument(
        "-o", "--output", default=None, metavar="OUT", help=f"bundle directory (default RUN_DIR/{DEFAULT_BUNDLE_NAME})"
    )
    parser.add_argument("--best", action="store_true", help="export best_model.zip instead of model.zip")
    parser.add_argument("--force", action="store_true", help="replace an existing bundle at OUT")
    parser.set_defaults(run=run)


def _read_run(run_dir: Path, best: bool) -> tuple[str, Path, dict[str, Any], dict[str, Any] | None]:
    """(algo, model path, config, tokenizer config) of a run directory, via ``RunDir`` when available."""
    try:
        from mmrl.training.run_dir import RunDir
    except ImportError:
        RunDir = None

    if RunDir is not None:
        run = RunDir(run_dir)
        model_path = run.best_model_path if best else run.model_path
        return str(run.config["algo"]), model_path, dict(run.config), run.tokenizer_config

    import json

    import yaml

    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise FileNotFoundError(f"{run_dir} is not an mmrl run directory (no config.yaml)")
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    if not isinstance(config, dict) or "algo" not in config:
        raise ValueError(f"{config_path}: expected a mapping with an 'algo' key")
    model_path = run_dir / "model.zip"
    if best and (run_dir / "best_model.zip").is_file():
        model_path = run_dir / "best_model.zip"
    tokenizer_path = run_dir / "tokenizer.json"
    tokenizer = json.loads(tokenizer_path.read_text(encoding="utf-8")) if tokenizer_path.is_file() else None
    return str(config["algo"]), model_path, config, tokenizer


def _tokenizer_from_env(config: dict[str, Any]) -> dict[str, Any] | None:
    """The tokenizer config of the run's env (built from ``env_id``/``env_kwargs``), or None."""
    try:
        import gymnasium as gym

        import mmrl  # noqa: F401  (registers the envs)

        env = gym.make(config["env_id"], **dict(config.get("env_kwargs") or {}))
    except Exception:
        return None
    try:
        tokenizer = getattr(env.unwrapped, "tokenizer", None)
        return tokenizer.to_config() if tokenizer is not None else None
    finally:
        env.close()


def export_run(run_dir: str | Path, output: str | Path | None = None, best: bool = False, force: bool = False) -> Path:
    """Write a bundle from a run directory's SB3 model; returns the bundle path.

    Raises:
        FileNotFoundError: If the run directory or its model is missing.
        FileExistsError: If the output exists and ``force`` is False.
        ValueError: For QLearning runs (their ``.npz`` is already pickle-free) and unsupported algorithms.
    """
    from mmrl.bundle import ALGORITHMS, export_bundle

    run_dir = Path(run_dir)
    algo, model_path, config, tokenizer = _read_run(run_dir, best)
    if algo.lower() == "qlearning":
        raise ValueError(
            f"{run_dir} is a QLearning run: {model_path.name} holds only arrays and JSON (no pickle); load it "
            "directly with mmrl.load_policy, no export needed"
        )
    if algo.upper() not in ALGORITHMS:
        raise ValueError(f"cannot export algorithm {algo!r}; supported: {', '.join(a.lower() for a in ALGORITHMS)}")
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} does not exist: training in {run_dir} did not save a model")
    out = Path(output) if output is not None else run_dir / DEFAULT_BUNDLE_NAME
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists; pass --force to replace it or -o to choose another path")
    model = ALGORITHMS[algo.upper()].load(model_path, device="cpu")  # trusted: the user's own run
    if tokenizer is None and "env_id" in config:
        tokenizer = _tokenizer_from_env(config)
    metadata = {
        "source": str(model_path),
        "env_id": config.get("env_id"),
        "env_kwargs": config.get("env_kwargs") or {},
        "seed": config.get("seed"),
    }
    return export_bundle(model, out, tokenizer_config=tokenizer, metadata=metadata, overwrite=True)


def run(args: argparse.Namespace) -> int:
    """Run ``mmrl export``; returns the exit status (0 ok, 1 error)."""
    try:
        out = export_run(args.run_dir, args.output, best=args.best, force=args.force)
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as error:
        print(f"mmrl export: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote policy bundle {out}  (load with mmrl.load_policy({str(out)!r}); inspect with 'mmrl inspect')")
    return 0
