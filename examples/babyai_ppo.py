"""Train SB3 PPO with mmrl's multimodal extractor on a BabyAI level, through the one-line path.

Needs the MiniGrid extra, from a checkout of mmrl::

    pip install -c constraints-cpu.txt -e ".[minigrid]"

The whole integration is two calls::

    env = mmrl.wrappers.auto_wrap(gym.make("BabyAI-GoToObj-v0"))   # what it chose is logged in one line
    PPO("MultiInputPolicy", venv, policy_kwargs=mmrl.policy_kwargs())

``auto_wrap`` drops MiniGrid's ``direction`` key, declares the real bounds of the symbolic ``(7, 7, 3)`` grid (so
the extractor embeds object/colour/state codes instead of scaling them as pixels) and tokenises the mission with
BabyAI's vocabulary. Its spec (``mmrl.wrappers.wrap_spec(env)``, JSON) is saved next to the model
(``<save>.wrap_spec.json``) so that evaluation rebuilds the same env (``mmrl.wrappers.apply_wrap_spec``).

Run ``python examples/babyai_ppo.py --help``. With the defaults (``BabyAI-GoToObj-v0``, 60k steps, 16 envs, one
torch thread) it prints a line every ~10k steps, then the success rate on held-out episodes next to a uniformly
random policy's. This stack trains at roughly 900 steps/s on one free core (``benchmarks/other_envs.py``), so the
defaults take about a minute and a half.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

DEFAULT_LEVEL = "BabyAI-GoToObj-v0"
HELD_OUT_SEED_OFFSET = 1_000_000
"""Evaluation episodes use seeds from here on, far from the seeds the training environments start from."""
PPO_SETTINGS = {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "learning_rate": 1e-3, "ent_coef": 0.01}
"""PPO settings of ``benchmarks/other_envs.py`` (with 16 envs: 2,048 frames per rollout)."""
MISSING_EXTRA = (
    'this example needs the minigrid extra: run pip install -c constraints-cpu.txt -e ".[minigrid]" '
    "in your mmrl checkout"
)

Policy = Callable[[dict[str, np.ndarray]], int]


def require_minigrid() -> None:
    """Import MiniGrid (registers the BabyAI levels); exit with a one-line message when the extra is missing."""
    try:
        import minigrid  # noqa: F401
    except ImportError:
        sys.exit(MISSING_EXTRA)


def make_env(level: str = DEFAULT_LEVEL, wrap_spec: dict[str, Any] | None = None) -> gym.Env:
    """``level`` through ``auto_wrap`` (or rebuilt exactly from a saved ``wrap_spec``)."""
    from mmrl.wrappers import apply_wrap_spec, auto_wrap

    require_minigrid()
    env = gym.make(level)
    return auto_wrap(env) if wrap_spec is None else apply_wrap_spec(env, wrap_spec)


def progress_callback(every: int) -> Any:
    """An SB3 callback printing one line every ``every`` steps: steps, training success, steps/s."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        def _on_training_start(self) -> None:
            self.successes: deque[bool] = deque(maxlen=100)
            self.next_report, self.start = every, time.perf_counter()

        def _on_step(self) -> bool:
            self.successes.extend(info["episode"]["r"] > 0 for info in self.locals["infos"] if "episode" in info)
            if self.num_timesteps >= self.next_report:
                self.next_report += every
                rate = self.num_timesteps / (time.perf_counter() - self.start)
                success = f"{np.mean(self.successes):.2f}" if self.successes else "-"
                print(
                    f"  {self.num_timesteps:>8,} steps   training success {success} (last 100 episodes, sampled)"
                    f"   {rate:,.0f} steps/s",
                    flush=True,
                )
            return True

    return Progress()


def train(
    level: str = DEFAULT_LEVEL,
    total_timesteps: int = 60_000,
    seed: int = 0,
    n_envs: int = 16,
    report_every: int = 0,
    **policy_options: Any,
) -> Any:
    """Train PPO on ``level`` through the one-line path; returns the model (its env: ``model.get_env()``).

    Args:
        level: BabyAI environment id.
        total_timesteps: Environment steps over all ``n_envs`` environments.
        seed: Seed of the training environments (seeds ``seed .. seed + n_envs - 1``) and of PPO.
        n_envs: Environments stepped in this process (SB3's ``DummyVecEnv``).
        report_every: Print a progress line every this many steps (0: silent).
        **policy_options: ``mmrl.policy_kwargs`` arguments (e.g. ``fusion="concat"``); none: its defaults.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    import mmrl

    venv = make_vec_env(make_env, n_envs=n_envs, seed=seed, env_kwargs={"level": level})
    model = PPO(
        "MultiInputPolicy",
        venv,
        policy_kwargs=mmrl.policy_kwargs(**policy_options),
        seed=seed,
        verbose=0,
        **PPO_SETTINGS,
    )
    callback = progress_callback(report_every) if report_every else None
    return model.learn(total_timesteps=total_timesteps, callback=callback)


def success_rate(
    policy: Policy,
    level: str = DEFAULT_LEVEL,
    n_episodes: int = 100,
    first_seed: int = HELD_OUT_SEED_OFFSET,
    wrap_spec: dict[str, Any] | None = None,
) -> float:
    """Fraction of episodes on seeds ``first_seed ..`` in which ``policy`` completes the mission (reward > 0)."""
    env = make_env(level, wrap_spec)
    successes = 0
    for episode in range(n_episodes):
        observation, _ = env.reset(seed=first_seed + episode)
        while True:
            observation, reward, terminated, truncated, _ = env.step(policy(observation))
            if terminated or truncated:
                successes += reward > 0
                break
    env.close()
    return successes / n_episodes


def random_policy(n_actions: int, seed: int = 0) -> Policy:
    """A uniformly random policy over ``n_actions`` actions."""
    rng = np.random.default_rng(seed)
    return lambda observation: int(rng.integers(n_actions))


def model_policy(model: Any, deterministic: bool = False) -> Policy:
    """Wrap ``model.predict`` as a :data:`Policy` (sampling by default: greedy BabyAI agents can loop forever)."""
    return lambda observation: int(model.predict(observation, deterministic=deterministic)[0])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train PPO with mmrl's extractor on a BabyAI level (auto_wrap + mmrl.policy_kwargs()).",
    )
    parser.add_argument(
        "--level", default=DEFAULT_LEVEL, help="registered BabyAI-* environment id (default: %(default)s)"
    )
    parser.add_argument(
        "--timesteps", type=int, default=60_000, help="training steps over all environments (default: %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of PPO and of the training environments (default: %(default)s)"
    )
    parser.add_argument(
        "--n-envs", type=int, default=16, help="environments stepped together in one process (default: %(default)s)"
    )
    parser.add_argument("--fusion", default=None, help="mmrl fusion (default: mmrl.policy_kwargs()'s)")
    parser.add_argument("--text-encoder", default=None, help="mmrl text encoder (default: mmrl.policy_kwargs()'s)")
    parser.add_argument(
        "--eval-episodes", type=int, default=200, help="held-out episodes per evaluated policy (default: %(default)s)"
    )
    parser.add_argument(
        "--save", type=Path, default=None, help="save the model to this path and its wrap spec to <path>.wrap_spec.json"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 avoids oversubscribing a shared machine (default: %(default)s)",
    )
    parser.add_argument(
        "--report-every",
        type=int,
        default=10_240,
        help="print a progress line every this many steps, 0 for none (default: %(default)s)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    require_minigrid()
    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # shows auto_wrap's one line
    options = {key: value for key, value in (("fusion", args.fusion), ("text_encoder", args.text_encoder)) if value}
    print(f"training PPO on {args.level} for {args.timesteps:,} steps ({args.n_envs} envs, seed {args.seed})")
    start = time.perf_counter()
    model = train(args.level, args.timesteps, args.seed, args.n_envs, args.report_every, **options)
    print(f"trained {model.num_timesteps:,} steps in {time.perf_counter() - start:.0f} s")

    from mmrl.wrappers import wrap_spec

    spec = wrap_spec(model.get_env().envs[0])
    if args.save is not None:
        from mmrl.atomic import write_json

        model.save(args.save)
        write_json(args.save.with_suffix(".wrap_spec.json"), spec)
        print(f"saved {args.save} and {args.save.with_suffix('.wrap_spec.json')}")

    print(f"evaluating on {args.eval_episodes} held-out episodes (seeds from {HELD_OUT_SEED_OFFSET:,})")
    n_actions = int(model.action_space.n)
    rates = {
        "random policy": success_rate(random_policy(n_actions), args.level, args.eval_episodes, wrap_spec=spec),
        "PPO, sampled actions": success_rate(model_policy(model), args.level, args.eval_episodes, wrap_spec=spec),
        "PPO, greedy actions": success_rate(
            model_policy(model, deterministic=True), args.level, args.eval_episodes, wrap_spec=spec
        ),
    }
    for name, rate in rates.items():
        print(f"  success {rate:.0%}  {name}")


if __name__ == "__main__":
    main()
