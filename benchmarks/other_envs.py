"""Other people's envs: the one-line path (``auto_wrap`` + ``mmrl.policy_kwargs()``) against hand-tuned mmrl settings
and a plain CNN + GRU + concat extractor, with the same PPO settings.

PPO: ``n_steps=128, batch_size=256, n_epochs=4, learning_rate=1e-3, ent_coef=0.01``, 16 envs in SB3's
``DummyVecEnv`` (``make_vec_env``), one torch thread. A run stops when the success rate of the last 200 training
episodes (sampled actions; success = positive episode return) reaches 0.90, or at ``--max-frames``. The table gives
the frames at which that happened and the held-out success of the policy at that point (sampled actions, one
episode in each of ``--eval-episodes`` worlds seeded from 1,000,000; training worlds use seeds below 1,000).

Configurations (``--configs``):

* ``one-line``: ``auto_wrap(gym.make(ID))`` and ``mmrl.policy_kwargs()`` with no arguments;
* ``mmrl:OPTIONS``: a hand-tuned mmrl stack, e.g. ``mmrl:fusion=concat,text_encoder=bow,direction=keep`` (options
  are ``mmrl.policy_kwargs`` arguments, plus ``direction=keep`` to keep MiniGrid's ``direction`` key and
  ``symbolic=0`` to leave MiniGrid's codes declared as 0..255 pixels);
* ``plain``: ``TokenizeText(FilterObservation(env, [image, mission]), max_length=10)`` and :class:`PlainExtractor`
  (a small CNN on the raw image, an embedding + GRU on the mission, concatenated); MiniGrid codes are fed raw
  (``normalize_images=False``), RGB images divided by 255.

Envs (``--envs``): BabyAI levels by id, and ``other_envs/GoToColourSquare-v0`` (registered here): a non-MiniGrid env
with a ``spaces.Text`` instruction ("go to the red square") and 72x72 RGB images of a 5x5 room with three coloured
squares, drawn around the agent (a 9x9-cell window, 8 px per cell, the agent in the centre cell, outside grey); four
move actions, 16 steps; reward ``1 - 0.9 t / 16`` on the named square; another square or the step limit ends the
episode as a failure (``terminated``). The first version (a top-down 64x64 view of an 8x8 room with the agent drawn
as a cross, and the step limit as ``truncated``) was not learned by any extractor within 600k frames.

Run ``python benchmarks/other_envs.py --help``. Results append to ``--jsonl`` (one line per run), and ``--table``
prints the Markdown table of a JSONL file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

COLOUR_SQUARES_ID = "other_envs/GoToColourSquare-v0"
HELD_OUT_SEED = 1_000_000
THRESHOLD = 0.90
WINDOW = 200
#: BabyAI's criterion (Hui et al., 2020): 99 % success over the last 100 training episodes.
BABYAI_THRESHOLD = 0.99
BABYAI_WINDOW = 100
PPO_SETTINGS = {"n_steps": 128, "batch_size": 256, "n_epochs": 4, "learning_rate": 1e-3, "ent_coef": 0.01}
N_ENVS = 16

COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 40),
    "blue": (50, 80, 240),
    "yellow": (235, 220, 30),
    "purple": (160, 40, 200),
    "cyan": (40, 210, 220),
}


class GoToColourSquare(gym.Env):
    """Go to the <colour> square: a grid of coloured squares drawn as an RGB image, with a ``spaces.Text`` instruction.

    Reaching the named square succeeds (reward ``1 - 0.9 t / max_steps``); reaching another square, or running out
    of steps, ends the episode as a failure (``terminated``: the step limit is part of the task, so no learner
    should value a timed-out episode by bootstrapping). The instruction decides the goal: an agent that ignores it
    succeeds on about ``1 / n_squares`` of the episodes at best.

    Args:
        grid: Cells per side of the room.
        cell: Pixels per cell.
        n_squares: Squares of distinct colours per episode.
        max_steps: Steps before the episode ends as a failure.
        centred: Draw the room around the agent (a ``2 * grid - 1`` cell window with the agent in its centre cell,
            cells outside the room grey), as MiniGrid's egocentric views keep the agent in one place; ``False``
            draws the room top-down with the agent as a white cross (``grid * cell`` pixels).
    """

    metadata = {"render_modes": []}

    def __init__(
        self, grid: int = 5, cell: int = 8, n_squares: int = 3, max_steps: int = 16, centred: bool = True
    ) -> None:
        self.grid, self.cell, self.n_squares, self.max_steps, self.centred = grid, cell, n_squares, max_steps, centred
        size = (2 * grid - 1 if centred else grid) * cell
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
                "mission": spaces.Text(max_length=40, charset="abcdefghijklmnopqrstuvwxyz "),
            }
        )
        self.action_space = spaces.Discrete(4)
        self._moves = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])

    def _observation(self) -> dict[str, Any]:
        cell, grid = self.cell, self.grid
        image = np.zeros(self.observation_space["image"].shape, np.uint8)
        row, col = (int(v) for v in self.agent)
        # top-left cell of the room in the image: the room is shifted so that the agent sits in the centre cell
        top, left = (grid - 1 - row, grid - 1 - col) if self.centred else (0, 0)
        if self.centred:
            image[:] = 128
            image[top * cell : (top + grid) * cell, left * cell : (left + grid) * cell] = 0
        for (r, c), colour in zip(self.squares, self.colours, strict=True):
            y, x = (top + r) * cell, (left + c) * cell
            image[y + 1 : y + cell - 1, x + 1 : x + cell - 1] = COLOURS[colour]
        y, x, mid = (top + row) * cell, (left + col) * cell, cell // 2
        image[y + mid - 1 : y + mid + 1, x + 1 : x + cell - 1] = 255
        image[y + 1 : y + cell - 1, x + mid - 1 : x + mid + 1] = 255
        return {"image": image, "mission": f"go to the {self.colours[self.target]} square"}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        cells = self.np_random.choice(self.grid * self.grid, self.n_squares + 1, replace=False)
        positions = [(int(c) // self.grid, int(c) % self.grid) for c in cells]
        self.agent, self.squares = np.array(positions[0]), positions[1:]
        self.colours = [str(c) for c in self.np_random.choice(list(COLOURS), self.n_squares, replace=False)]
        self.target = int(self.np_random.integers(self.n_squares))
        self.steps = 0
        return self._observation(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.agent = np.clip(self.agent + self._moves[int(action)], 0, self.grid - 1)
        self.steps += 1
        reward, terminated, success = 0.0, False, False
        position = (int(self.agent[0]), int(self.agent[1]))
        if position in self.squares:
            terminated = True
            success = self.squares.index(position) == self.target
            reward = 1.0 - 0.9 * self.steps / self.max_steps if success else 0.0
        if not terminated and self.steps >= self.max_steps:
            terminated = True  # running out of steps is a failure of the task, not a cut-off (see the class docstring)
        return self._observation(), reward, terminated, False, {"is_success": success}


def register_envs() -> None:
    """Register :class:`GoToColourSquare` as ``other_envs/GoToColourSquare-v0`` (once)."""
    if COLOUR_SQUARES_ID not in gym.registry:
        gym.register(COLOUR_SQUARES_ID, entry_point=GoToColourSquare)


def plain_extractor_class() -> type:
    """The plain baseline extractor class (built lazily: torch and SB3 are imported here)."""
    import torch
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class PlainExtractor(BaseFeaturesExtractor):
        """A small CNN on the image, an embedding + GRU on the mission, concatenated (a 40-line baseline)."""

        def __init__(self, observation_space: spaces.Dict, features_dim: int = 128) -> None:
            super().__init__(observation_space, features_dim)
            channels, height, _ = observation_space["image"].shape  # SB3 transposes images channel-first
            if height >= 32:  # Nature-style strides for renders
                layers = [nn.Conv2d(channels, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU()]
                layers += [nn.Conv2d(64, 64, 3, 1), nn.ReLU(), nn.Flatten()]
            else:  # BabyAI-style 2x2 convolutions for 7x7 grids
                layers = [nn.Conv2d(channels, 16, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 2), nn.ReLU()]
                layers += [nn.Conv2d(32, 64, 2), nn.ReLU(), nn.Flatten()]
            self.cnn = nn.Sequential(*layers)
            with torch.no_grad():
                image_dim = self.cnn(torch.zeros(1, *observation_space["image"].shape)).shape[1]
            vocab_size = int(observation_space["mission"].high.max()) + 1
            self.embedding = nn.Embedding(vocab_size, 32)
            self.gru = nn.GRU(32, 128, batch_first=True)
            self.head = nn.Sequential(nn.Linear(image_dim + 128, features_dim), nn.ReLU())

        def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
            image = self.cnn(observations["image"].float())
            _, hidden = self.gru(self.embedding(observations["mission"].long()))
            return self.head(torch.cat([image, hidden[-1]], dim=1))

    return PlainExtractor


def parse_config(name: str) -> dict[str, Any]:
    """``one-line``, ``plain`` or ``mmrl:key=value,...`` -> ``{"kind", "options"}``."""
    if name in ("one-line", "plain"):
        return {"kind": name, "options": {}}
    if not name.startswith("mmrl:"):
        raise SystemExit(f"unknown config {name!r}: use one-line, plain or mmrl:key=value,...")
    options: dict[str, Any] = {}
    for item in filter(None, name[len("mmrl:") :].split(",")):
        key, _, value = item.partition("=")
        options[key] = int(value) if value.isdigit() else value
    return {"kind": "mmrl", "options": options}


def build(env_id: str, config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``(env factory, policy_kwargs)`` of one configuration."""
    import minigrid  # noqa: F401  (registers BabyAI)
    from gymnasium.wrappers import FilterObservation

    import mmrl
    from mmrl.wrappers import TokenizeText, auto_wrap
    from mmrl.wrappers.minigrid import MiniGridSymbolicImage

    register_envs()
    minigrid_env = env_id.startswith(("BabyAI-", "MiniGrid-"))
    if config["kind"] == "one-line":
        return (lambda: auto_wrap(gym.make(env_id), log=False)), mmrl.policy_kwargs()
    if config["kind"] == "plain":

        def make_plain() -> gym.Env:
            return TokenizeText(FilterObservation(gym.make(env_id), ["image", "mission"]), max_length=10)

        kwargs = {"features_extractor_class": plain_extractor_class(), "net_arch": [64]}
        return make_plain, {**kwargs, "normalize_images": not minigrid_env}
    options = dict(config["options"])
    keep_direction = options.pop("direction", "drop") == "keep"
    symbolic = bool(options.pop("symbolic", 1))

    def make_mmrl() -> gym.Env:
        env = gym.make(env_id)
        if minigrid_env:
            env = FilterObservation(env, ["image", "mission", "direction"] if keep_direction else ["image", "mission"])
            if symbolic:
                env = MiniGridSymbolicImage(env)
        return TokenizeText(env)

    return make_mmrl, mmrl.policy_kwargs(**options)


def held_out_success(model: Any, make_env: Any, episodes: int, blank: bool = False) -> float:
    """Sampled success on ``episodes`` held-out worlds; ``blank`` replaces the token ids by padding (0)."""
    env = make_env()
    successes = 0
    for episode in range(episodes):
        observation, _ = env.reset(seed=HELD_OUT_SEED + episode)
        total, done = 0.0, False
        while not done:
            if blank:
                observation = {**observation, "mission": np.zeros_like(observation["mission"])}
            action, _ = model.predict(observation, deterministic=False)
            observation, reward, terminated, truncated, _ = env.step(int(action))
            total += float(reward)
            done = terminated or truncated
        successes += total > 0
    return successes / episodes


def train(
    env_id: str, config_name: str, seed: int, max_frames: int, stop_at_threshold: bool = True, until: str = "0.90"
) -> dict[str, Any]:
    """Train one configuration for up to ``max_frames`` frames (stopping at the threshold when asked).

    ``until="0.90"`` stops at 0.90 over the last 200 episodes; ``until="babyai"`` goes on to BabyAI's criterion,
    0.99 over the last 100 episodes (both are recorded either way).

    Returns ``{"model", "make_env", "frames_to_90", "episodes_to_90", "frames_to_99", "episodes_to_99", "window",
    "curve", "seconds"}``.
    """
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    make_env, policy_kwargs = build(env_id, parse_config(config_name))
    venv = make_vec_env(make_env, n_envs=N_ENVS, seed=seed)
    model = PPO("MultiInputPolicy", venv, seed=seed, policy_kwargs=policy_kwargs, verbose=0, **PPO_SETTINGS)

    class Threshold(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.window: deque[bool] = deque(maxlen=WINDOW)
            self.reached: int | None = None
            self.reached_episodes: int | None = None
            self.babyai: tuple[int, int] | None = None  # (frames, episodes) at 0.99 over the last 100
            self.episodes = 0
            self.curve: list[tuple[int, float]] = []

        def _on_rollout_end(self) -> None:
            if self.window:
                self.curve.append((self.num_timesteps, round(float(np.mean(self.window)), 3)))

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    self.window.append(info["episode"]["r"] > 0)
                    self.episodes += 1
            if self.reached is None and len(self.window) == WINDOW and np.mean(self.window) >= THRESHOLD:
                self.reached, self.reached_episodes = self.num_timesteps, self.episodes
                if until == "0.90":
                    return not stop_at_threshold
            last = list(self.window)[-BABYAI_WINDOW:]
            if self.babyai is None and len(last) == BABYAI_WINDOW and np.mean(last) >= BABYAI_THRESHOLD:
                self.babyai = (self.num_timesteps, self.episodes)
                if until == "babyai":
                    return not stop_at_threshold
            return True

    callback = Threshold()
    start = time.perf_counter()
    model.learn(max_frames, callback=callback)
    seconds = time.perf_counter() - start
    return {
        "model": model,
        "make_env": make_env,
        "frames_to_90": callback.reached,
        "episodes_to_90": callback.reached_episodes,
        "frames_to_99": callback.babyai[0] if callback.babyai else None,
        "episodes_to_99": callback.babyai[1] if callback.babyai else None,
        "episodes": callback.episodes,
        "window": list(callback.window),
        "curve": callback.curve[3::4],
        "seconds": seconds,
    }


def train_and_evaluate(env_id: str, config_name: str, seed: int, frames: int, eval_episodes: int) -> float:
    """Held-out success (sampled actions) after exactly ``frames`` training frames (no early stop)."""
    result = train(env_id, config_name, seed, frames, stop_at_threshold=False)
    return held_out_success(result["model"], result["make_env"], eval_episodes)


def run(
    env_id: str, config_name: str, seed: int, max_frames: int, eval_episodes: int, until: str = "0.90"
) -> dict[str, Any]:
    """Train one configuration until the threshold or ``max_frames``; returns the row of the table (JSON)."""
    result = train(env_id, config_name, seed, max_frames, until=until)
    model, window = result["model"], result["window"]
    return {
        "env": env_id,
        "config": config_name,
        "seed": seed,
        "until": until,
        "frames_to_90": result["frames_to_90"],
        "episodes_to_90": result["episodes_to_90"],
        "frames_to_99": result["frames_to_99"],
        "episodes_to_99": result["episodes_to_99"],
        "episodes": result["episodes"],
        "frames_trained": int(model.num_timesteps),
        "train_success_last_200": float(np.mean(window)) if window else 0.0,
        "held_out_success": held_out_success(model, result["make_env"], eval_episodes),
        "held_out_blank": held_out_success(model, result["make_env"], eval_episodes, blank=True),
        "eval_episodes": eval_episodes,
        "wall_s": round(result["seconds"], 1),
        "max_frames": max_frames,
        "curve": result["curve"],
    }


#: Training-success marks the table reports the first frame of (from the curve, every 8,192 frames).
MARKS = (0.25, 0.5, 0.75)


def table(path: Path) -> str:
    """Markdown table of a JSONL file: one row per run, marks read from each run's training curve."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    marks = " | ".join(f"frames to {mark:.2f}" for mark in MARKS)
    lines = [
        f"| env | config | seed | {marks} | frames to 0.90 (train, last 200) | training success at the end | "
        "held-out success (sampled) | held-out, instruction blanked | episodes (frames) to 0.99 over 100 | wall s |",
        "|---|---|---|" + "---|" * len(MARKS) + "---|---|---|---|---|---|",
    ]
    for row in rows:
        reached = f"{row['frames_to_90']:,}" if row["frames_to_90"] else f"> {row['frames_trained']:,}"
        cells = []
        for mark in MARKS:
            first = next((frames for frames, success in row["curve"] if success >= mark), None)
            cells.append(f"{first:,}" if first is not None else "-")
        blank = f"{row['held_out_blank']:.2f}" if "held_out_blank" in row else "-"
        if row.get("episodes_to_99"):
            babyai = f"{row['episodes_to_99']:,} ({row['frames_to_99']:,})"
        else:
            babyai = f"> {row['episodes']:,} ({row['frames_trained']:,})" if row.get("until") == "babyai" else "-"
        lines.append(
            f"| {row['env']} | {row['config']} | {row['seed']} | {' | '.join(cells)} | {reached} | "
            f"{row['train_success_last_200']:.2f} | {row['held_out_success']:.2f} ({row['eval_episodes']} ep.) | "
            f"{blank} | {babyai} | {row['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", default=["BabyAI-GoToRedBall-v0"], help="env ids to train on")
    parser.add_argument(
        "--configs", nargs="+", default=["one-line", "plain"], help="one-line, plain or mmrl:key=value,... (see above)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--max-frames", type=int, default=150_000, help="frame budget per run")
    parser.add_argument("--eval-episodes", type=int, default=100, help="held-out episodes per run")
    parser.add_argument(
        "--until",
        choices=["0.90", "babyai"],
        default="0.90",
        help="stop at 0.90 over the last 200 training episodes, or at BabyAI's criterion (0.99 over the last 100)",
    )
    parser.add_argument("--jsonl", type=Path, default=None, help="append one JSON line per run here")
    parser.add_argument("--table", type=Path, default=None, help="only print the Markdown table of this JSONL file")
    args = parser.parse_args(argv)
    if args.table is not None:
        print(table(args.table))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for env_id in args.envs:
        for config_name in args.configs:
            for seed in args.seeds:
                row = run(env_id, config_name, seed, args.max_frames, args.eval_episodes, args.until)
                print(json.dumps(row), flush=True)
                if args.jsonl is not None:
                    with args.jsonl.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
