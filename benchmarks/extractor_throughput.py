"""PPO training frames/s with ``mmrl.MultimodalExtractor`` against an image-only CNN of the same size.

What it measures, in one run (repeats interleaved across variants so load changes hit all of them alike; the
median is reported with the min-max spread):

* ``PPO frames/s``: wall time of ``model.learn(timesteps)`` (model construction excluded), SB3 PPO with
  ``MultiInputPolicy``, ``n_envs`` envs in a ``DummyVecEnv``;
* ``PPO frames/CPU-s``: the same timesteps per CPU second of this process (``time.process_time``), which other
  processes competing for the cores do not distort;
* ``extractor fwd+bwd samples/CPU-s``: one forward and backward pass of the extractor alone on a rollout-like batch
  (``--batch`` observations drawn from the env, so with the few distinct instructions a batch really holds); best
  of 5 rounds of 3 passes.

Variants: the image-only baseline (same ``"auto"`` (patch) CNN, ``concat`` fusion, instruction ignored), the default
``mmrl.policy_kwargs()`` (gated attention + GRU) with and without the text cache, and BOW / FiLM / cross-attention
variants. The ratio column is frames/s relative to the image-only baseline; the target is text costing at most
10 % (ratio >= 0.90).

Environment: ``mmrl/GoTo-v0`` via ``gymnasium.make`` when ``import mmrl.envs`` registers it, otherwise (or with
``--env builtin``) a self-contained env with the same Dict contract (56x56x3 uint8 image, 16 token ids) that
replays pre-generated observations, so the env itself costs almost nothing.

Run ``python benchmarks/extractor_throughput.py --help``; the default run takes about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mmrl.extractor import MultimodalExtractor, policy_kwargs

MMRL_ENV_ID = "mmrl/GoTo-v0"
BASELINE = "image-only CNN (baseline)"
VARIANTS: dict[str, dict[str, Any]] = {
    BASELINE: {"fusion": "concat", "text_keys": [], "ignore_keys": ["mission"]},
    "gated + gru, text cache (default)": {"fusion": "gated", "text_encoder": "gru"},
    "gated + gru, no cache": {"fusion": "gated", "text_encoder": "gru", "cache_text": False},
    "gated + bow (encoded directly)": {"fusion": "gated", "text_encoder": "bow"},
    "film + gru, text cache": {"fusion": "film", "text_encoder": "gru"},
    "cross_attention + bow": {"fusion": "cross_attention", "text_encoder": "bow"},
}


class ReplayDictEnv(gym.Env):
    """Cheap env with the mmrl contract: replays a pool of random images and a few distinct instructions.

    Episodes last ``episode_length`` steps; the instruction is fixed within an episode, as in mmrl's envs.
    """

    def __init__(self, n_images: int = 64, n_instructions: int = 8, vocab_size: int = 55, episode_length: int = 32):
        rng = np.random.default_rng(0)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (56, 56, 3), np.uint8),
                "mission": spaces.Box(0, vocab_size - 1, (16,), np.int64),
            }
        )
        self.action_space = spaces.Discrete(3)
        self._images = rng.integers(0, 256, (n_images, 56, 56, 3), dtype=np.uint8)
        self._instructions = np.zeros((n_instructions, 16), np.int64)
        for row in self._instructions:
            length = int(rng.integers(4, 9))
            row[:length] = rng.integers(2, vocab_size, length)
        self._episode_length = episode_length

    def _observation(self) -> dict[str, np.ndarray]:
        image = self._images[int(self.np_random.integers(len(self._images)))]
        return {"image": image, "mission": self._mission}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._mission = self._instructions[int(self.np_random.integers(len(self._instructions)))]
        self._steps = 0
        return self._observation(), {}

    def step(self, action: int):
        self._steps += 1
        return self._observation(), float(action == 0), self._steps >= self._episode_length, False, {}


def env_factory(choice: str) -> tuple[Callable[[], gym.Env], str]:
    """Returns a constructor of the env to benchmark and its description."""
    if choice in ("auto", MMRL_ENV_ID):
        try:
            import mmrl.envs  # noqa: F401  (registers the mmrl/ ids)

            gym.spec(MMRL_ENV_ID)
            return (lambda: gym.make(MMRL_ENV_ID)), f"{MMRL_ENV_ID} (gymnasium.make)"
        except Exception as error:  # the envs are optional for this benchmark
            if choice == MMRL_ENV_ID:
                raise
            print(f"note: {MMRL_ENV_ID} unavailable ({error!r}); using the builtin replay env", file=sys.stderr)
    return ReplayDictEnv, "builtin ReplayDictEnv (56x56x3 uint8 + 16 token ids, 8 distinct instructions)"


def ppo_frames_per_second(
    make_env: Callable[[], gym.Env], kwargs: dict[str, Any], args: argparse.Namespace
) -> tuple[float, float]:
    """PPO training frames per wall-clock second and per CPU second of this process."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(make_env, n_envs=args.n_envs, seed=0)
    model = PPO(
        "MultiInputPolicy",
        env,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        policy_kwargs=policy_kwargs(**kwargs),
        seed=0,
        device="cpu",
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(total_timesteps=args.timesteps)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    env.close()
    return model.num_timesteps / seconds, model.num_timesteps / cpu_seconds


def extractor_samples_per_second(
    make_env: Callable[[], gym.Env], kwargs: dict[str, Any], args: argparse.Namespace
) -> float:
    """Forward + backward of the extractor alone on a batch of preprocessed observations."""
    from stable_baselines3.common.preprocessing import preprocess_obs
    from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

    env = VecTransposeImage(DummyVecEnv([make_env]))
    observations = [env.reset()]
    for _ in range(args.batch - 1):
        observations.append(env.step(np.array([env.action_space.sample()]))[0])
    raw = {key: torch.as_tensor(np.concatenate([o[key] for o in observations])) for key in observations[0]}
    batch = preprocess_obs(raw, env.observation_space)
    built = policy_kwargs(**kwargs)
    extractor = MultimodalExtractor(env.observation_space, **built["features_extractor_kwargs"])
    for _ in range(2):  # warm-up
        extractor(batch).sum().backward()
    best_seconds = float("inf")
    for _ in range(5):  # best of 5 rounds: interference from other processes only ever slows a round down
        start = time.process_time()
        for _ in range(3):
            extractor.zero_grad()
            extractor(batch).sum().backward()
        best_seconds = min(best_seconds, (time.process_time() - start) / 3)
    return args.batch / best_seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="auto", help=f"'auto' ({MMRL_ENV_ID} if registered), 'builtin' or an id")
    parser.add_argument("--timesteps", type=int, default=4096, help="PPO timesteps per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per variant (median reported)")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=512, help="batch of the extractor-only measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, help="write the table as Markdown")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    make_env, env_description = env_factory(args.env)

    ppo_rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    ppo_cpu_rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    extractor_rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        for name, kwargs in VARIANTS.items():
            wall_rate, cpu_rate = ppo_frames_per_second(make_env, kwargs, args)
            ppo_rates[name].append(wall_rate)
            ppo_cpu_rates[name].append(cpu_rate)
            extractor_rates[name].append(extractor_samples_per_second(make_env, kwargs, args))
            print(f"repeat {repeat + 1}/{args.repeats} {name}: {ppo_rates[name][-1]:.0f} frames/s", file=sys.stderr)

    baseline = statistics.median(ppo_rates[BASELINE])
    baseline_cpu = statistics.median(ppo_cpu_rates[BASELINE])
    baseline_extractor = statistics.median(extractor_rates[BASELINE])
    rows = []
    for name in VARIANTS:
        median = statistics.median(ppo_rates[name])
        cpu_median = statistics.median(ppo_cpu_rates[name])
        extractor_median = statistics.median(extractor_rates[name])
        rows.append(
            {
                "variant": name,
                "kwargs": VARIANTS[name],
                "ppo_frames_per_s": median,
                "ppo_frames_per_s_min": min(ppo_rates[name]),
                "ppo_frames_per_s_max": max(ppo_rates[name]),
                "ratio_to_image_only": median / baseline,
                "ppo_frames_per_cpu_s": cpu_median,
                "cpu_ratio_to_image_only": cpu_median / baseline_cpu,
                "extractor_samples_per_s": extractor_median,
                "extractor_ratio_to_image_only": extractor_median / baseline_extractor,
            }
        )
    header = (
        "| variant | PPO frames/s (min-max) | ratio | PPO frames/CPU-s | ratio | extractor fwd+bwd samples/CPU-s "
        "| ratio |\n|---|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {row['variant']} | {row['ppo_frames_per_s']:.0f} ({row['ppo_frames_per_s_min']:.0f}-"
        f"{row['ppo_frames_per_s_max']:.0f}) | {row['ratio_to_image_only']:.2f} | {row['ppo_frames_per_cpu_s']:.0f} | "
        f"{row['cpu_ratio_to_image_only']:.2f} | "
        f"{row['extractor_samples_per_s']:.0f} | {row['extractor_ratio_to_image_only']:.2f} |"
        for row in rows
    ]
    settings = (
        f"env: {env_description}; PPO n_envs={args.n_envs} n_steps={args.n_steps} batch_size={args.batch_size} "
        f"n_epochs={args.n_epochs}, {args.timesteps} timesteps x {args.repeats} repeats (median); extractor batch "
        f"{args.batch}; torch {torch.__version__}, {args.threads} thread(s), {platform.machine()}"
    )
    markdown = f"{settings}\n\n{header}" + "\n".join(lines) + "\n"
    print(markdown)
    results = {"settings": vars(args) | {"env": env_description, "json": None, "markdown": None}, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown)
    return results


if __name__ == "__main__":
    main()
