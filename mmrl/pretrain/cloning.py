"""Behaviour cloning: the PPO preset's whole policy trained on the planner's demonstrations (BabyAI's bot and
imitation recipe), saved as a run directory that ``mmrl evaluate`` reads and ``mmrl train --set pretrained=RUN_DIR``
continues with PPO.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, cast

import torch
import yaml

from mmrl.atomic import atomic_path, write_json, write_text
from mmrl.checks import check_int
from mmrl.pretrain.collect import check_frames, collect, has_planner, make_env
from mmrl.pretrain.encoder_bundle import describe_extractor, save_bundle
from mmrl.pretrain.loading import RUN_ENCODER_DIR
from mmrl.pretrain.setup import resolve_setup
from mmrl.threads import default_threads

#: Prefix of the whole policy's tensors in a behaviour-cloning run's ``encoder/`` bundle.
POLICY_PREFIX = "policy."
#: Adam steps of a cloning when none are given (``mmrl pretrain --updates``' default).
DEFAULT_UPDATES = 1_500
#: Adam's step size of the warm start inside ``mmrl train`` (``demonstrations``): at 1e-3 one seed of
#: ``mmrl/Open-Locked-v0`` stalled at the actions' marginal distribution (0.47 accuracy), clipped or not.
#: ``mmrl pretrain --method bc`` keeps its measured 1e-3, unclipped.
DEFAULT_LEARNING_RATE = 3e-4
#: Held-out evaluation seeds start here (as ``mmrl evaluate --seed 100000`` in the README's tables).
EVAL_SEED = 100_000


def default_run_dir(env_id: str, seed: int) -> Path:
    """``runs/<env id with "/" as "_">/bc/<seed>``."""
    return Path("runs") / env_id.replace("/", "_") / "bc" / str(seed)


@default_threads
def clone_planner(
    env_id: str,
    frames: int = 20_000,
    out: str | os.PathLike[str] | None = None,
    updates: int = DEFAULT_UPDATES,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    seed: int = 0,
    overrides: list[str] | dict[str, Any] | None = None,
    force: bool = False,
    eval_episodes: int = 100,
    progress: bool = True,
) -> Path:
    """Clones the planner into the policy ``mmrl train --algo ppo --env ENV_ID`` would build; returns the run dir.

    ``frames`` (observation, action) pairs come from planner-driven episodes (every episode succeeds); the policy
    (extractor, shared layers, action head) is trained to maximise the log-likelihood of the planner's actions
    with Adam. The run directory holds ``config.yaml``, ``model.zip`` (an SB3 PPO model), ``tokenizer.json``,
    ``metrics.json`` (greedy success on ``eval_episodes`` held-out episodes, seeds from 100000, and the cloning
    loss) and ``encoder/``, a pre-trained bundle of every policy tensor (read by ``--set pretrained=RUN_DIR``).

    Raises:
        ValueError: For an env without a planner (question tasks), bad arguments, or an ``out`` that holds
            something else, before anything is written.
    """
    from stable_baselines3 import PPO

    import mmrl
    from mmrl.training.run_dir import CONFIG_FILE, TOKENIZER_FILE, check_run_dir, prepare_run_dir, write_metrics

    frames = check_int("frames", frames, 1)
    updates = check_int("updates", updates, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    setup = resolve_setup(env_id, overrides, seed)
    run_path = check_run_dir(out if out is not None else default_run_dir(env_id, seed), force)
    env = make_env(env_id, setup.env_kwargs)
    if not has_planner(env):
        raise ValueError(f"{env_id} has no planner demonstrations (question tasks cannot be cloned); use PPO")
    torch.manual_seed(seed)
    config = setup.config
    venv = mmrl.make_vec_env(env_id, config.n_envs or 1, seed=seed, env_kwargs=setup.env_kwargs)
    model = PPO("MultiInputPolicy", venv, policy_kwargs=setup.policy_kwargs(), seed=seed, **config.hyperparams)
    stats = clone_into(
        model.policy,
        env,
        frames,
        updates,
        batch_size,
        learning_rate,
        seed,
        progress,
        max_grad_norm=None,
    )
    policy = model.policy

    run_path = prepare_run_dir(run_path, force)
    config.timesteps = 0
    write_text(run_path / CONFIG_FILE, yaml.safe_dump(config.to_dict(), sort_keys=False))
    with atomic_path(run_path / "model.zip") as tmp:
        model.save(tmp)
    write_json(run_path / TOKENIZER_FILE, cast(Any, env.unwrapped).tokenizer.to_config())  # an mmrl GridEnv
    extractor = policy.features_extractor
    tensors = {name: value for name, value in extractor.state_dict().items()}
    tensors.update({POLICY_PREFIX + name: value for name, value in policy.state_dict().items()})
    info: dict[str, Any] = {
        "method": "bc",
        "env_id": env_id,
        "env_kwargs": setup.env_kwargs,
        "extractor_kwargs": setup.extractor,
        "vocabulary": list(getattr(env.unwrapped, "vocabulary", ()) or ()),
        "losses": {"bc_loss": stats["bc_loss"], "bc_accuracy": stats["bc_accuracy"]},
        "frames": frames,
        "updates": updates,
        "seed": seed,
    }
    save_bundle(run_path / RUN_ENCODER_DIR, tensors, describe_extractor(extractor), info)
    report = mmrl.evaluate(run_path, episodes=eval_episodes, seed=EVAL_SEED)
    write_metrics(
        run_path,
        {
            "algo": "ppo",
            "method": "bc",
            "env_id": env_id,
            "timesteps": 0,
            "demonstration_frames": stats["demonstration_frames"],
            "demonstration_episodes": stats["demonstration_episodes"],
            "wall_time_s": stats["cloning_s"],
            "episodes": report.episodes,
            "mean_return": report.mean_return,
            "std_return": report.std_return,
            "success_rate": report.success_rate,
            "mean_length": report.mean_length,
            **info["losses"],
        },
    )
    return run_path


def clone_into(
    policy: Any,
    env: Any,
    frames: int,
    updates: int = DEFAULT_UPDATES,
    batch_size: int = 256,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    seed: int = 0,
    progress: bool = True,
    max_grad_norm: float | None = 0.5,
    value_gamma: float | None = None,
) -> dict[str, Any]:
    """Trains ``policy`` (an SB3 actor-critic policy on ``env``'s observations) to copy the planner; returns stats.

    ``frames`` (observation, action) pairs come from planner-driven episodes of ``env`` (one mmrl env; episode
    ``i`` is seeded ``seed + i``); ``updates`` Adam steps on minibatches of ``batch_size`` maximise the
    log-likelihood of the planner's actions, with the gradient norm clipped to ``max_grad_norm`` as PPO clips
    its own (None: unclipped). With ``value_gamma``, the value head also learns the demonstrations' returns
    discounted by it (squared error, half weight, as PPO's ``vf_coef``), so RL does not start from a critic that
    knows nothing; None leaves it alone. ``mmrl train`` calls this for the ``demonstrations`` preset key (a warm
    start that RL then continues); :func:`clone_planner` for ``mmrl pretrain --method bc``. The stats are
    ``demonstration_frames``, ``demonstration_episodes``, ``bc_loss`` and ``bc_accuracy`` (means over the last 50
    updates; with ``value_gamma`` also ``value_loss``) and ``cloning_s`` (wall time).

    Raises:
        ValueError: For bad sizes (frames whose observations would not fit in memory included) or an env
            without a planner (question tasks), before any update.
    """
    from tqdm import tqdm

    frames = check_int("frames", frames, 1)
    updates = check_int("updates", updates, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    check_frames(env.observation_space, frames)
    if not has_planner(env):
        raise ValueError(
            f"{env.spec.id if env.spec else 'this env'} has no planner demonstrations (question tasks cannot be "
            "cloned); drop demonstrations"
        )
    started = time.perf_counter()
    with tqdm(total=frames, desc="demonstrations", unit="frame", disable=not progress) as bar:
        demonstrations = collect(env, frames, seed, planner_fraction=1.0, progress=bar.update)
    keep = torch.as_tensor(demonstrations.expert_N)
    observations = {key: torch.as_tensor(value)[keep] for key, value in demonstrations.observations.items()}
    actions = torch.as_tensor(demonstrations.actions_N)[keep]
    returns = None if value_gamma is None else torch.as_tensor(demonstrations.returns(value_gamma))[keep]
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    policy.set_training_mode(True)
    losses: list[float] = []
    accuracies: list[float] = []
    value_losses: list[float] = []
    with tqdm(total=updates, desc="cloning", unit="update", disable=not progress) as bar:
        for update in range(updates):
            index = torch.randint(0, len(actions), (min(batch_size, len(actions)),), generator=generator)
            batch = {key: value[index] for key, value in observations.items()}
            distribution, values = _heads(policy, batch, with_values=returns is not None)
            loss = -distribution.log_prob(actions[index]).mean()
            if returns is not None:
                assert values is not None
                value_loss = torch.nn.functional.mse_loss(values.flatten(), returns[index])
                value_losses.append(float(value_loss.detach()))
                loss = loss + 0.5 * value_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
            optimizer.step()
            losses.append(float(loss.detach()))
            with torch.no_grad():
                accuracies.append(float((distribution.mode() == actions[index]).float().mean()))
            if update % 50 == 0 or update == updates - 1:
                bar.set_postfix(loss=f"{losses[-1]:.3f}", accuracy=f"{accuracies[-1]:.2f}")
            bar.update(1)
    policy.set_training_mode(False)
    recent = slice(-min(50, len(losses)), None)
    stats: dict[str, Any] = {
        "demonstration_frames": len(actions),
        "demonstration_episodes": demonstrations.episodes,
        "updates": updates,
        "bc_loss": sum(losses[recent]) / len(losses[recent]),
        "bc_accuracy": sum(accuracies[recent]) / len(accuracies[recent]),
    }
    if value_losses:
        stats["value_loss"] = sum(value_losses[recent]) / len(value_losses[recent])
    stats["cloning_s"] = round(time.perf_counter() - started, 1)
    return stats


def _heads(policy: Any, observations: dict[str, torch.Tensor], with_values: bool) -> tuple[Any, torch.Tensor | None]:
    """The action distribution of an SB3 actor-critic ``policy`` and, ``with_values``, its value estimates, from
    one pass through the features extractor(s)."""
    if not with_values:
        return policy.get_distribution(observations), None
    features = policy.extract_features(observations)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        latent_pi = policy.mlp_extractor.forward_actor(features[0])
        latent_vf = policy.mlp_extractor.forward_critic(features[1])
    return policy._get_action_dist_from_latent(latent_pi), policy.value_net(latent_vf)


def load_policy_into(policy: Any, pretrained: str | os.PathLike[str] | None) -> bool:
    """Copies a behaviour-cloning run's whole policy into ``policy`` (an SB3 policy of the same settings).

    Returns whether anything was loaded: ``False`` for ``None`` or an autoencoder bundle (those only hold encoders,
    which the extractor loads itself).

    Raises:
        ValueError: For tensors whose names or shapes differ from ``policy``'s (the message names both).
    """
    if pretrained is None:
        return False
    from mmrl.pretrain.encoder_bundle import read_manifest, read_weights
    from mmrl.pretrain.loading import bundle_dir

    folder = bundle_dir(pretrained)
    manifest = read_manifest(folder)
    names = [name for name in manifest["tensors"] if name.startswith(POLICY_PREFIX)]
    if not names:
        return False
    tensors = read_weights(folder, manifest)
    state = policy.state_dict()
    for name in names:
        key = name[len(POLICY_PREFIX) :]
        if key not in state or tuple(state[key].shape) != tuple(tensors[name].shape):
            have = "missing" if key not in state else f"shape {tuple(state[key].shape)}"
            raise ValueError(
                f"pretrained run {pretrained}: policy tensor {key!r} has shape {tuple(tensors[name].shape)} there, "
                f"this policy's is {have}; train with the cloned run's settings (net_arch, features_dim)"
            )
    with torch.no_grad():
        for name in names:
            key = name[len(POLICY_PREFIX) :]
            state[key].copy_(tensors[name].to(device=state[key].device, dtype=state[key].dtype))
    return True
