"""``pretrain_autoencoder``: collect observations, train the three autoencoders, write the pre-trained bundle."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmrl.checks import check_int
from mmrl.pretrain.autoencoder import MultimodalAutoencoder, reconstruction_grid
from mmrl.pretrain.collect import collect, make_env
from mmrl.pretrain.encoder_bundle import (
    PART_PREFIXES,
    check_out_dir,
    describe_extractor,
    publish,
    remove_tree,
    staging_dir,
    write_png,
)
from mmrl.pretrain.setup import resolve_setup
from mmrl.threads import default_threads

#: Bundle parts each autoencoder trains.
PARTS_OF = {"image": ("image",), "text": ("text",), "fused": ("image", "text", "fusion")}
RECONSTRUCTIONS_PNG = "reconstructions.png"


def default_out(env_id: str, method: str) -> Path:
    """``pretrained/<env name>-<method>`` in the working directory."""
    return Path("pretrained") / f"{env_id.split('/')[-1]}-{method}"


@default_threads
def pretrain_autoencoder(
    env_id: str,
    frames: int = 20_000,
    out: str | os.PathLike[str] | None = None,
    updates: int = 1_500,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    parts: tuple[str, ...] = ("image", "text", "fused"),
    seed: int = 0,
    overrides: list[str] | dict[str, Any] | None = None,
    planner_fraction: float = 0.5,
    progress: bool = True,
) -> Path:
    """Pre-trains the extractor of ``mmrl train --algo ppo --env ENV_ID`` as autoencoders and writes the bundle.

    Observations come from random and planner-driven episodes (:func:`mmrl.pretrain.collect.collect`); the image,
    text and fused autoencoders (:mod:`mmrl.pretrain.autoencoder`) train together with Adam. The folder ``out``
    receives ``manifest.json`` and ``encoder.safetensors`` (:mod:`mmrl.pretrain.encoder_bundle`),
    ``reconstructions.png`` (originals on top, reconstructions below) and TensorBoard logs in ``tb/``. It is built
    beside ``out`` and moved into place only when complete. Use it with
    ``mmrl train --algo ppo --env ENV_ID --set pretrained=OUT [--set freeze=image|text|all]``.

    Args:
        env_id: A registered mmrl env id.
        frames: Observations to collect.
        out: Bundle folder (default ``pretrained/<env name>-autoencoder``); must not exist unless it is a bundle.
        updates: Gradient steps.
        batch_size: Observations per step.
        learning_rate: Adam's step size.
        parts: Autoencoders to train: ``"image"``, ``"text"``, ``"fused"``.
        seed: Seed of the episodes, the initial weights and the batches.
        overrides: ``--set`` style overrides of the PPO preset (``fusion=film``, ``env_kwargs.image_mode=symbolic``).
        planner_fraction: Share of episodes the planner drives.
        progress: Show progress bars.

    Returns:
        The bundle folder.

    Raises:
        ValueError: For bad arguments or an ``out`` that is not a bundle, before anything is written.
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    frames = check_int("frames", frames, 1)
    updates = check_int("updates", updates, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    if not (isinstance(learning_rate, float | int) and 0 < learning_rate < 1):
        raise ValueError(f"learning_rate must be in (0, 1), got {learning_rate!r}")
    setup = resolve_setup(env_id, overrides, seed)
    final = check_out_dir(out if out is not None else default_out(env_id, "autoencoder"))
    torch.manual_seed(seed)
    env = make_env(env_id, setup.env_kwargs)
    extractor = setup.build_extractor(env.observation_space)
    model = MultimodalAutoencoder(extractor, tuple(parts))
    started = time.perf_counter()
    with tqdm(total=frames, desc="collecting", unit="frame", disable=not progress) as bar:
        collection = collect(env, frames, seed, planner_fraction, bar.update)
    data = {key: torch.as_tensor(value) for key, value in collection.observations.items()}
    staging = staging_dir(final)
    try:
        writer = SummaryWriter(str(staging / "tb"))
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=learning_rate)
        generator = torch.Generator().manual_seed(seed)
        recent: dict[str, list[float]] = {}
        with tqdm(total=updates, desc="autoencoders", unit="update", disable=not progress) as bar:
            for update in range(updates):
                index = torch.randint(0, len(collection), (min(batch_size, len(collection)),), generator=generator)
                results = model({key: value[index] for key, value in data.items()})
                loss = torch.stack([result["loss"] for result in results.values()]).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                for name, result in results.items():
                    for field in ("loss", "metric"):
                        value = float(result[field].detach())
                        writer.add_scalar(f"pretrain/{name}_{field}", value, update)
                        recent.setdefault(f"{name}_{field}", []).append(value)
                if update % 50 == 0 or update == updates - 1:
                    bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
                bar.update(1)
        writer.close()
        sample = {key: value[: min(8, len(collection))] for key, value in data.items()}
        write_png(staging / RECONSTRUCTIONS_PNG, reconstruction_grid(model, sample))
        losses = {name: float(np.mean(values[-50:])) for name, values in recent.items()}
        chosen = {part for name in parts for part in PARTS_OF[name]}
        prefixes = tuple(PART_PREFIXES[part] for part in sorted(chosen))
        tensors = {name: tensor for name, tensor in extractor.state_dict().items() if name.startswith(prefixes)}
        info = {
            "method": "autoencoder",
            "env_id": env_id,
            "env_kwargs": setup.env_kwargs,
            "extractor_kwargs": setup.extractor,
            "vocabulary": list(getattr(env.unwrapped, "vocabulary", ()) or ()),
            "losses": losses,
            "metrics_meaning": {
                "image/fused_image metric": "mean absolute error per pixel (RGB) or cell accuracy (symbolic)",
                "text/fused_text metric": "share of instructions reconstructed exactly",
            },
            "autoencoders": list(parts),
            "frames": frames,
            "episodes": collection.episodes,
            "updates": updates,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "seed": seed,
            "seconds": round(time.perf_counter() - started, 1),
        }
        return publish(staging, final, tensors, describe_extractor(extractor), info)
    finally:
        if staging.exists():
            remove_tree(staging)
