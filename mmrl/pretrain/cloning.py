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
from mmrl.pretrain.collect import (
    ROUND_SEED_STRIDE,
    Collection,
    check_demonstrator,
    check_frames,
    check_rounds,
    collect,
    collect_relabelled,
    has_planner,
    make_env,
)
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
    demonstrator: str = "planner",
    rounds: int = 0,
) -> Path:
    """Clones the planner into the policy ``mmrl train --algo ppo --env ENV_ID`` would build; returns the run dir.

    ``frames`` (observation, action) pairs come from planner-driven episodes (every episode succeeds); the policy
    (extractor, shared layers, action head) is trained to maximise the log-likelihood of the planner's actions
    with Adam. The run directory holds ``config.yaml``, ``model.zip`` (an SB3 PPO model), ``tokenizer.json``,
    ``metrics.json`` (greedy success on ``eval_episodes`` held-out episodes, seeds from 100000, and the cloning
    loss) and ``encoder/``, a pre-trained bundle of every policy tensor (read by ``--set pretrained=RUN_DIR``).
    ``demonstrator="searcher"`` clones the view-limited searcher instead of the planner, and ``rounds`` adds DAgger
    rounds, in which the clone plays and the expert labels its states (both as :func:`clone_into`).

    Raises:
        ValueError: For an env without a planner (question tasks), bad arguments, or an ``out`` that holds
            something else, before anything is written.
    """
    from stable_baselines3 import PPO

    import mmrl
    from mmrl.training.run_dir import CONFIG_FILE, TOKENIZER_FILE, check_run_dir, prepare_run_dir, write_metrics

    check_demonstrator(demonstrator)
    rounds = check_rounds(rounds)
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
        demonstrator=demonstrator,
        rounds=rounds,
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
        "demonstrator": demonstrator,
        "rounds": rounds,
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
            **{key: stats[key] for key in ("rounds", "relabelled_frames", "round_success") if key in stats},
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
    demonstrator: str = "planner",
    rounds: int = 0,
) -> dict[str, Any]:
    """Trains ``policy`` (an SB3 actor-critic policy on ``env``'s observations) to copy the planner; returns stats.

    ``frames`` (observation, action) pairs come from planner-driven episodes of ``env`` (one mmrl env; episode
    ``i`` is seeded ``seed + i``); ``updates`` Adam steps on minibatches of ``batch_size`` maximise the
    log-likelihood of the planner's actions, with the gradient norm clipped to ``max_grad_norm`` as PPO clips
    its own (None: unclipped). With ``value_gamma``, the value head also learns the demonstrations' returns
    discounted by it (squared error, half weight, as PPO's ``vf_coef``), so RL does not start from a critic that
    knows nothing; None leaves it alone. ``demonstrator="searcher"`` drives the episodes with the view-limited
    searcher instead (:func:`mmrl.pretrain.collect.expert_plan`: it walks only to objects in view and searches for
    the others, so a policy that sees only its view can copy it).

    ``rounds`` (DAgger, Ross et al. 2011) then lets the clone play: each round the policy plays ``frames // 4``
    frames (greedy and sampled episodes in turn, :func:`mmrl.pretrain.collect.collect_relabelled`), the expert
    labels every state it reached with its own next action, and ``updates // 4`` more Adam steps fit everything
    gathered so far. The clone so learns to leave the states its own mistakes lead to (its loops among them), which
    the expert's episodes never show.

    ``mmrl train`` calls this for the ``demonstrations`` preset key (a warm start that RL then continues);
    :func:`clone_planner` for ``mmrl pretrain --method bc``. The stats are ``demonstration_frames``,
    ``demonstration_episodes``, ``demonstrator``, ``bc_loss`` and ``bc_accuracy`` (means over the last 50 updates;
    with ``value_gamma`` also ``value_loss``), ``cloning_s`` (wall time) and, with ``rounds``, ``round_success``
    (the share of each round's episodes the clone completed while it played them).

    Raises:
        ValueError: For bad sizes (frames whose observations would not fit in memory included), an unknown
            ``demonstrator``, ``rounds`` outside [0, :data:`MAX_ROUNDS`] or an env without a planner (question
            tasks), before any update.
    """
    from tqdm import tqdm

    check_demonstrator(demonstrator)
    frames = check_int("frames", frames, 1)
    updates = check_int("updates", updates, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    rounds = check_rounds(rounds)
    check_frames(env.observation_space, frames + rounds * (frames // 4))
    if not has_planner(env):
        raise ValueError(
            f"{env.spec.id if env.spec else 'this env'} has no planner demonstrations (question tasks cannot be "
            "cloned); drop demonstrations"
        )
    started = time.perf_counter()
    with tqdm(total=frames, desc="demonstrations", unit="frame", disable=not progress) as bar:
        demonstrations = collect(
            env, frames, seed, planner_fraction=1.0, progress=bar.update, demonstrator=demonstrator
        )
    data = _Examples(demonstrations, value_gamma)
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    fit = _Fit(policy, optimizer, generator, batch_size, max_grad_norm)
    with tqdm(total=updates, desc="cloning", unit="update", disable=not progress) as bar:
        fit.steps(data, updates, bar)
    round_success: list[float] = []

    def act(observation: dict[str, Any], deterministic: bool) -> int:
        action, _ = policy.predict(observation, deterministic=deterministic)
        return int(action)

    for round_index in range(rounds):
        with tqdm(total=frames // 4, desc=f"round {round_index + 1}", unit="frame", disable=not progress) as bar:
            played = collect_relabelled(
                env, frames // 4, act, seed + (round_index + 1) * ROUND_SEED_STRIDE, demonstrator, bar.update
            )
        round_success.append(played.successes / max(played.episodes, 1))
        data.extend(played, value_gamma)
        with tqdm(total=updates // 4, desc=f"cloning {round_index + 1}", unit="update", disable=not progress) as bar:
            fit.steps(data, updates // 4, bar)
    policy.set_training_mode(False)
    stats: dict[str, Any] = {
        "demonstration_frames": len(demonstrations.actions_N[demonstrations.expert_N]),
        "demonstration_episodes": demonstrations.episodes,
        "demonstrator": demonstrator,
        "updates": updates,
        **fit.recent(),
    }
    if rounds:
        stats.update(rounds=rounds, relabelled_frames=len(data) - stats["demonstration_frames"])
        stats["round_success"] = [round(value, 4) for value in round_success]
    stats["cloning_s"] = round(time.perf_counter() - started, 1)
    return stats


class _Examples:
    """Labelled observations to clone (the rows a collection marks ``expert_N``), with their returns."""

    def __init__(self, collection: Collection, value_gamma: float | None) -> None:
        keep = torch.as_tensor(collection.expert_N)
        self.observations = {key: torch.as_tensor(value)[keep] for key, value in collection.observations.items()}
        self.actions = torch.as_tensor(collection.actions_N)[keep]
        self.returns = None if value_gamma is None else torch.as_tensor(collection.returns(value_gamma))[keep]

    def __len__(self) -> int:
        return len(self.actions)

    def extend(self, collection: Collection, value_gamma: float | None) -> None:
        more = _Examples(collection, value_gamma)
        self.observations = {
            key: torch.cat([value, more.observations[key]]) for key, value in self.observations.items()
        }
        self.actions = torch.cat([self.actions, more.actions])
        if self.returns is not None and more.returns is not None:
            self.returns = torch.cat([self.returns, more.returns])


class _Fit:
    """Adam steps of behaviour cloning (and value fitting) on minibatches of :class:`_Examples`."""

    def __init__(
        self, policy: Any, optimizer: Any, generator: torch.Generator, batch_size: int, max_grad_norm: float | None
    ) -> None:
        self.policy, self.optimizer, self.generator = policy, optimizer, generator
        self.batch_size, self.max_grad_norm = batch_size, max_grad_norm
        self.losses: list[float] = []
        self.accuracies: list[float] = []
        self.value_losses: list[float] = []

    def steps(self, data: _Examples, updates: int, bar: Any) -> None:
        policy = self.policy
        policy.set_training_mode(True)
        for update in range(updates):
            index = torch.randint(0, len(data), (min(self.batch_size, len(data)),), generator=self.generator)
            batch = {key: value[index] for key, value in data.observations.items()}
            distribution, values = _heads(policy, batch, with_values=data.returns is not None)
            loss = -distribution.log_prob(data.actions[index]).mean()
            if data.returns is not None:
                assert values is not None
                value_loss = torch.nn.functional.mse_loss(values.flatten(), data.returns[index])
                self.value_losses.append(float(value_loss.detach()))
                loss = loss + 0.5 * value_loss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(policy.parameters(), self.max_grad_norm)
            self.optimizer.step()
            self.losses.append(float(loss.detach()))
            with torch.no_grad():
                self.accuracies.append(float((distribution.mode() == data.actions[index]).float().mean()))
            if update % 50 == 0 or update == updates - 1:
                bar.set_postfix(loss=f"{self.losses[-1]:.3f}", accuracy=f"{self.accuracies[-1]:.2f}")
            bar.update(1)
        policy.set_training_mode(False)

    def recent(self) -> dict[str, float]:
        """Means over the last 50 updates: ``bc_loss``, ``bc_accuracy`` and, when fitted, ``value_loss``."""
        recent = slice(-min(50, len(self.losses)), None)
        means = {
            "bc_loss": sum(self.losses[recent]) / len(self.losses[recent]),
            "bc_accuracy": sum(self.accuracies[recent]) / len(self.accuracies[recent]),
        }
        if self.value_losses:
            means["value_loss"] = sum(self.value_losses[recent]) / len(self.value_losses[recent])
        return means


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
