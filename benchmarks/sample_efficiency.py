"""Sample efficiency: environment frames until PPO's greedy policy reaches 90 % and 95 % success, per fusion.

For each env family (small variants) and each fusion of :data:`mmrl.extractor.FUSIONS`, PPO is trained as
``mmrl train --algo ppo --env ID --fusion F`` would (the ``agents/ppo.yaml`` preset of the env: envs, PPO settings,
text encoder; only the fusion varies) for up to ``--max-frames`` frames per seed. Every ``--eval-every``
frames an SB3 callback runs the greedy (deterministic) policy for one episode in each of ``--eval-episodes`` worlds
seeded from 1,000,000 on (held out: training worlds use seeds below 1,000) and records the frames and wall time at
which the success rate first reaches 90 % and 95 %; training stops at 95 %. The table gives the mean and spread
(min-max) over seeds; a seed that never reaches a threshold counts as ``> max-frames``.

``--babyai`` adds the peer comparison: ``BabyAI-GoToRedBall-v0`` through mmrl's wrappers (symbolic grid +
``TokenizeText``, ``DummyVecEnv``) with the default PPO preset, frames until the success rate of the last 100
*training* episodes reaches 95 % (the published reference: about 290k frames for PPO with a plain CNN + GRU +
concat extractor).

This is expensive: the full run (4 families x 7 fusions x 3 seeds) is for a quiet machine; ``--quick`` runs a
short smoke test. Run ``python benchmarks/sample_efficiency.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import Table, add_output_args, fmt, optional_import, report

FAMILIES = {
    "GoTo": "mmrl/GoTo-5x5-v0",
    "PickUp": "mmrl/PickUp-5x5-v0",
    "Sequence": "mmrl/Sequence-5x5-v0",
    "VisualQuery": "mmrl/VisualQuery-Colour-v0",
}
THRESHOLDS = (0.90, 0.95)
HELD_OUT_SEED = 1_000_000
PEER_ID = "BabyAI-GoToRedBall-v0"
PEER_REFERENCE_FRAMES = 290_000
#: Preset keys that are ``PPO(...)`` arguments.
PPO_ARGUMENTS = ("n_steps", "batch_size", "n_epochs", "learning_rate", "gamma", "gae_lambda", "ent_coef", "clip_range")


def preset_run(
    env_id: str, fusion: str | None, text_encoder: str | None = None
) -> tuple[int, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """What ``mmrl train --algo ppo --env ENV_ID [--fusion F] [--text-encoder T]`` would build: ``(n_envs,
    env_kwargs, policy_kwargs, ppo_kwargs)`` from ``agents/ppo.yaml``."""
    import mmrl
    from mmrl.training.presets import resolve_config

    config = resolve_config("ppo", env_id, fusion=fusion, text_encoder=text_encoder)
    extractor = {
        key: getattr(config, key)
        for key in ("fusion", "text_encoder", "image_encoder", "features_dim", "net_arch")
        if getattr(config, key) is not None
    }
    return int(config.n_envs), dict(config.env_kwargs), mmrl.policy_kwargs(**extractor), dict(config.hyperparams)


def greedy_success(model: Any, venv: Any) -> float:
    """Success rate of one greedy episode in each world of ``venv`` (episode ``i`` seeded ``HELD_OUT_SEED + i``:
    the same held-out levels every time), played by mmrl's episode runner."""
    from mmrl.evaluation.runner import run_episodes

    results = run_episodes(model, venv, venv.num_envs, HELD_OUT_SEED, deterministic=True)
    return float(np.mean([bool(success) for success in results.successes]))


def make_threshold_callback(eval_env: Any, every: int, thresholds: tuple[float, ...]):
    """An SB3 callback that evaluates every ``every`` frames and stops once the last threshold is met."""
    from stable_baselines3.common.callbacks import BaseCallback

    class GreedyThresholds(BaseCallback):
        """Records ``reached[threshold] = (frames, seconds)`` and ``history`` of ``(frames, success)``."""

        def __init__(self) -> None:
            super().__init__()
            self.reached: dict[float, tuple[int, float]] = {}
            self.history: list[tuple[int, float]] = []
            self.next_eval = every
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += every
            rate = greedy_success(self.model, eval_env)
            self.history.append((self.num_timesteps, rate))
            for threshold in thresholds:
                if rate >= threshold and threshold not in self.reached:
                    self.reached[threshold] = (self.num_timesteps, time.perf_counter() - self.start)
            return max(thresholds) not in self.reached

    return GreedyThresholds()


def run_family(
    env_id: str, fusion: str, seed: int, args: argparse.Namespace
) -> tuple[dict[float, tuple[int, float]], float, float]:
    """One PPO run; returns the thresholds reached, the last greedy success rate and the wall time."""
    import torch
    from stable_baselines3 import PPO

    import mmrl

    torch.set_num_threads(args.threads)
    n_envs, env_kwargs, policy_kwargs, ppo_kwargs = preset_run(env_id, fusion, args.text_encoder)
    train_env = mmrl.make_vec_env(env_id, n_envs, seed=seed * 100, env_kwargs=env_kwargs)
    eval_env = mmrl.make_vec_env(env_id, args.eval_episodes, env_kwargs=env_kwargs)
    model = PPO("MultiInputPolicy", train_env, policy_kwargs=policy_kwargs, seed=seed, device="cpu", **ppo_kwargs)
    callback = make_threshold_callback(eval_env, args.eval_every, THRESHOLDS)
    start = time.perf_counter()
    model.learn(args.max_frames, callback=callback)
    wall = time.perf_counter() - start
    last = callback.history[-1][1] if callback.history else float("nan")
    return callback.reached, last, wall


def summarise(values: list[int | None], max_frames: int) -> str:
    """``mean (min-max) [k/n]`` over the seeds that reached the threshold."""
    hit = [v for v in values if v is not None]
    if not hit:
        return f"> {fmt(max_frames)} [0/{len(values)}]"
    spread = f"{fmt(min(hit))}-{fmt(max(hit))}" if len(hit) > 1 else fmt(hit[0])
    return f"{fmt(statistics.mean(hit))} ({spread}) [{len(hit)}/{len(values)}]"


def babyai_peer(args: argparse.Namespace, table: Table) -> None:
    """Frames until 95 % success over the last 100 training episodes of BabyAI-GoToRedBall-v0."""
    import gymnasium as gym
    import torch
    from gymnasium.wrappers import FilterObservation
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import DummyVecEnv

    import mmrl
    from mmrl.wrappers import TokenizeText
    from mmrl.wrappers.minigrid import MiniGridSymbolicImage

    def make() -> gym.Env:
        return TokenizeText(MiniGridSymbolicImage(FilterObservation(gym.make(PEER_ID), ["image", "mission"])))

    class TrainingSuccess(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.window: deque[bool] = deque(maxlen=100)
            self.reached: int | None = None

        def _on_step(self) -> bool:
            for done, reward in zip(self.locals["dones"], self.locals["rewards"], strict=True):
                if done:
                    self.window.append(bool(reward > 0))
            if len(self.window) == self.window.maxlen and np.mean(self.window) >= 0.95:
                self.reached = self.num_timesteps
                return False
            return True

    from mmrl.training.presets import load_preset, preset_path

    torch.set_num_threads(args.threads)
    preset = load_preset(preset_path("ppo"), "ppo", PEER_ID)  # the default entry: PEER_ID matches no pattern
    extractor_keys = ("fusion", "text_encoder", "image_encoder", "features_dim", "net_arch")
    ppo_kwargs = {key: value for key, value in preset.items() if key in PPO_ARGUMENTS}
    for fusion in args.babyai_fusions:
        frames: list[int | None] = []
        walls: list[float] = []
        extractor = {key: preset[key] for key in extractor_keys if key in preset} | {"fusion": fusion}
        for seed in range(args.seeds):
            with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
                venv = DummyVecEnv([make for _ in range(preset["n_envs"])])
                venv.seed(seed * 100)
                model = PPO(
                    "MultiInputPolicy",
                    venv,
                    policy_kwargs=mmrl.policy_kwargs(**extractor),
                    seed=seed,
                    device="cpu",
                    **ppo_kwargs,
                )
                callback = TrainingSuccess()
                start = time.perf_counter()
                model.learn(args.babyai_max_frames, callback=callback)
                walls.append(time.perf_counter() - start)
            frames.append(callback.reached)
            print(f"  {PEER_ID} {fusion} seed={seed}: 95% training success at {callback.reached}", flush=True)
        table.add(
            family=f"{PEER_ID} (training success)",
            fusion=fusion,
            **{"frames to 90%": "", "frames to 95%": summarise(frames, args.babyai_max_frames)},
            **{"wall s (mean)": statistics.mean(walls), "last greedy success": None},
        )
    table.notes.append(
        f"{PEER_ID}: mmrl's default PPO preset (agents/ppo.yaml) through TokenizeText + MiniGridSymbolicImage; "
        f"peer reference ~{PEER_REFERENCE_FRAMES:,} frames (PPO, CNN + GRU + concat), target half of it."
    )


def main(argv: list[str] | None = None) -> Table:
    import mmrl.extractor

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", choices=list(FAMILIES), help="default all (quick: GoTo)")
    parser.add_argument("--fusions", nargs="+", choices=list(mmrl.extractor.FUSIONS), help="default all (quick: film)")
    parser.add_argument(
        "--text-encoder", choices=list(mmrl.extractor.TEXT_ENCODERS), help="instead of the preset's (default: preset)"
    )
    parser.add_argument("--seeds", type=int, help="seeds per configuration (default 3, quick 1)")
    parser.add_argument("--max-frames", type=int, help="frame budget per run (default 500k, quick 8192)")
    parser.add_argument("--eval-every", type=int, help="frames between evaluations (default 10240, quick 4096)")
    parser.add_argument("--eval-episodes", type=int, help="held-out episodes per evaluation (default 200, quick 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--babyai", action="store_true", help=f"add the peer comparison on {PEER_ID}")
    parser.add_argument("--babyai-only", action="store_true", help="run only the peer comparison (no families)")
    parser.add_argument("--babyai-fusions", nargs="+", default=["concat"], choices=list(mmrl.extractor.FUSIONS))
    parser.add_argument("--babyai-max-frames", type=int, default=1_000_000)
    add_output_args(parser, default_repeats=1)
    args = parser.parse_args(argv)
    args.families = [] if args.babyai_only else args.families or (["GoTo"] if args.quick else list(FAMILIES))
    args.babyai = args.babyai or args.babyai_only
    args.fusions = args.fusions or (["film"] if args.quick else list(mmrl.extractor.FUSIONS))
    args.seeds = args.seeds or (1 if args.quick else 3)
    args.max_frames = args.max_frames or (8192 if args.quick else 500_000)
    args.eval_every = args.eval_every or (4096 if args.quick else 10_240)
    args.eval_episodes = args.eval_episodes or (32 if args.quick else 200)
    warnings.filterwarnings("ignore")

    table = Table(
        f"PPO frames to greedy success on held-out seeds ({args.seeds} seeds, <= {args.max_frames:,} frames, "
        f"eval every {args.eval_every:,} frames on {args.eval_episodes} episodes, torch threads {args.threads})",
        ["family", "fusion", "frames to 90%", "frames to 95%", "wall s (mean)", "last greedy success"],
    )
    for family in args.families:
        for fusion in args.fusions:
            reached_at: dict[float, list[int | None]] = {t: [] for t in THRESHOLDS}
            walls, lasts = [], []
            for seed in range(args.seeds):
                reached, last, wall = run_family(FAMILIES[family], fusion, seed, args)
                for t in THRESHOLDS:
                    reached_at[t].append(reached[t][0] if t in reached else None)
                walls.append(wall)
                lasts.append(last)
                print(f"  {family} {fusion} seed={seed}: {reached} last={last:.2f} wall={wall:.1f}s", flush=True)
            table.add(
                family=f"{family} ({FAMILIES[family]})",
                fusion=fusion,
                **{"frames to 90%": summarise(reached_at[0.90], args.max_frames)},
                **{"frames to 95%": summarise(reached_at[0.95], args.max_frames)},
                **{"wall s (mean)": statistics.mean(walls), "last greedy success": statistics.mean(lasts)},
            )
    table.notes.append("Cells: mean (min-max) over the seeds that reached the threshold [reached/seeds].")
    if args.babyai and optional_import("minigrid") is not None:
        babyai_peer(args, table)
    report(args, [table], "Sample efficiency")
    return table


if __name__ == "__main__":
    main()
