"""Slow learning tests: the default presets solve the cheap built-in envs, and the agents read the instruction.

Each case trains with ``mmrl.train(algo, env_id)`` and the preset's own budget (``agents/<algo>.yaml``; only the
periodic evaluations and checkpoints are turned off), then evaluates the greedy policy on 100 held-out episodes
(seeds 100000.., never used in training) with ``mmrl.evaluate``, as ``mmrl evaluate RUN --episodes 100 --seed
100000`` does. Where the instruction decides the goal, blanking it (``ablate="mission"``) must cost at least
``ABLATION_DROP`` of success; where listed in ``COMBINATIONS``, the held-out colour/kind combinations
(``split="test"``, never seen in training) must reach the target as well. One torch thread per test;
``python -m pytest -n 2 tests/test_learning.py``.

Known gaps of the presets (envs not yet solved) are listed with their figures in benchmarks/RESULTS.md,
"Benchmark table"; every case here must reach the target.
``mmrl/VisualQuery-v0`` stands for the VisualQuery family: its three question types (count, colour, existence), and
its held-out colour/kind combinations (the other ids ask one type each, with the same preset; figures in
benchmarks/RESULTS.md).
"""

from __future__ import annotations

import time

import pytest
import torch

import mmrl

pytestmark = pytest.mark.slow

EPISODES = 100
EVAL_SEED = 100_000
TARGET = 0.90
ABLATION_DROP = 0.30

#: Held-out colour/kind combinations (``split="test"``) asserted at ``TARGET`` too, where the preset reaches them
#: reliably (benchmarks/RESULTS.md: Sequence-5x5 with PPO 0.955 from its clone of the planner, 0.955-0.96 over 3
#: seeds; VisualQuery-v0 with PPO 0.95, 0.935-0.955; PickUp-5x5 with PPO 0.975-1.00, 0.95 for this case). Not yet:
#: GoTo-5x5 with PPO (0.92-0.985 over 3 seeds, 0.91 for this case: with an earlier encoder seed 0 passed on an AMD
#: CPU and gave 0.81 on an Intel one, float rounding alone moves it), DQN on GoTo-5x5 (0.89-0.985).
COMBINATIONS = {("ppo", "mmrl/Sequence-5x5-v0"), ("ppo", "mmrl/VisualQuery-v0"), ("ppo", "mmrl/PickUp-5x5-v0")}

#: (algo, env id, seed, whether blanking the instruction must cost ABLATION_DROP)
CASES = [
    ("ppo", "mmrl/GoTo-5x5-v0", 0, True),
    ("ppo", "mmrl/PickUp-5x5-v0", 0, True),
    ("ppo", "mmrl/Sequence-5x5-v0", 0, True),
    ("ppo", "mmrl/Level-Corridor-v0", 0, False),
    ("ppo", "mmrl/VisualQuery-v0", 0, True),
    ("dqn", "mmrl/GoTo-5x5-v0", 0, True),
    ("qlearning", "mmrl/Level-Corridor-v0", 0, False),
    ("qlearning", "mmrl/Level-Corridor-v0", 1, False),
    ("qlearning", "mmrl/Level-Corridor-v0", 2, False),
]


@pytest.mark.parametrize(("algo", "env_id", "seed", "reads"), CASES)
def test_default_preset_solves_held_out_episodes(algo, env_id, seed, reads, tmp_path):
    torch.set_num_threads(1)
    started = time.time()
    run = tmp_path / "run"
    result = mmrl.train(algo, env_id, seed=seed, run_dir=run, progress_bar=False, eval_freq=0, checkpoint_freq=0)
    trained = time.time() - started
    greedy = mmrl.evaluate(run, episodes=EPISODES, seed=EVAL_SEED).success_rate
    blank = mmrl.evaluate(run, episodes=EPISODES, seed=EVAL_SEED, ablate="mission").success_rate if reads else None
    combos = None
    if (algo, env_id) in COMBINATIONS:
        combos = mmrl.evaluate(run, episodes=EPISODES, seed=EVAL_SEED, split="test").success_rate
    print(
        f"\n{algo} {env_id} seed {seed}: {result.config.timesteps:,} steps in {trained:.0f} s; greedy held-out "
        f"success {greedy:.2f}"
        + ("" if blank is None else f", instruction blanked {blank:.2f}")
        + ("" if combos is None else f", held-out combinations {combos:.2f}")
    )
    if reads:
        assert blank <= greedy - ABLATION_DROP
    if combos is not None:
        assert combos >= TARGET, f"{env_id}: held-out colour/kind combinations {combos:.2f} < {TARGET}"
    assert greedy >= TARGET, f"{env_id}: greedy held-out success {greedy:.2f} < {TARGET}"
