"""The view-limited searcher (:mod:`mmrl.engine.searcher`) and the ``demonstrator`` setting that clones it."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

import mmrl
from mmrl.engine.constants import Action, Colour, Direction, Kind, Verb
from mmrl.engine.planner import plan
from mmrl.engine.rules import step_navigation
from mmrl.engine.searcher import lookout_cells, search_plan
from mmrl.engine.view import visible_cells
from mmrl.engine.world import Goal, Layout, WorldState
from mmrl.pretrain.collect import collect, collect_relabelled, expert_action, expert_plan

torch.set_num_threads(1)


def _replay(env_id: str, seed: int, actions: list[int]) -> bool:
    env = gym.make(env_id)
    env.reset(seed=seed)
    info: dict = {}
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return bool(info.get("is_success", False)) and terminated


@pytest.mark.parametrize(("env_id", "episodes"), [("mmrl/Sequence-v0", 200), ("mmrl/GoTo-v0", 100)])
def test_searcher_plans_succeed_in_the_env(env_id: str, episodes: int) -> None:
    """The searcher solves almost every level of the rooms it is for, within the env's step limit, and its actions
    succeed when replayed in the env itself. It walks a little further than the planner, which sees everything."""
    env = gym.make(env_id)
    max_steps = env.unwrapped.task.max_steps
    planned = searched = 0
    found = 0
    for index in range(episodes):
        seed = 7_000 + index
        env.reset(seed=seed)
        layout = env.unwrapped.batch.world.layout(0)
        actions = search_plan(layout, "agent", 7, max_steps=max_steps)
        if actions is None:
            continue
        found += 1
        assert len(actions) <= max_steps and _replay(env_id, seed, actions), seed
        searched += len(actions)
        planned += len(plan(layout) or [])
    assert found >= 0.98 * episodes
    assert planned <= searched <= 1.3 * planned


def _room(target_at: tuple[int, int]) -> Layout:
    layout = Layout.empty_room(8, 8)
    layout.agent_pos, layout.agent_dir = (1, 1), int(Direction.EAST)
    layout.place(*target_at, Kind.BALL, Colour.GREEN)
    layout.place(1, 6, Kind.BOX, Colour.RED)  # in view from the start: a distractor
    layout.goals = [Goal(Verb.GOTO, Kind.BALL, Colour.GREEN)]
    return layout


def _out_of_view_prefix(layout: Layout, actions: list[int]) -> list[int]:
    """The actions taken before the target first comes into view."""
    world = WorldState(1, *layout.kind_HW.shape)
    world.load_layout(0, layout)
    target_HW = layout.kind_HW == Kind.BALL
    prefix = []
    for action in actions:
        if (target_HW & visible_cells(world, 0, "agent", 7)).any():
            break
        prefix.append(action)
        step_navigation(world, np.array([action]), 1 << 30)
    return prefix


def test_the_searcher_does_not_use_what_the_view_does_not_show() -> None:
    """Two rooms that differ only in where the (unseen) target lies: the planner's first step differs, the
    searcher's steps are the same until the target comes into view, so a policy that sees only the view can copy
    them."""
    rooms = _room((5, 1)), _room((5, 2))
    for layout in rooms:
        world = WorldState(1, 8, 8)
        world.load_layout(0, layout)
        assert not (layout.kind_HW == Kind.BALL)[visible_cells(world, 0, "agent", 7)].any()
    planner = [plan(layout) or [] for layout in rooms]
    searcher = [search_plan(layout) or [] for layout in rooms]
    assert planner[0][:1] == [int(Action.RIGHT)] and planner[1][:1] == [int(Action.FORWARD)]
    prefixes = [_out_of_view_prefix(layout, actions) for layout, actions in zip(rooms, searcher, strict=True)]
    assert prefixes[0] == prefixes[1] and len(prefixes[0]) >= 3
    for layout, actions in zip(rooms, searcher, strict=True):
        world = WorldState(1, 8, 8)
        world.load_layout(0, layout)
        for action in actions:
            step_navigation(world, np.array([action]), 1 << 30, wrong_object="fail")
        assert world.stage_N[0] == 1
    # it searched from a lookout in the middle of the room, with no object beside it
    lookout_HW = lookout_cells(rooms[0].kind_HW)
    assert lookout_HW[3:5, 3:5].all() and lookout_HW.sum() == 4
    # in the full view everything is in view: the searcher walks as the planner does
    assert [len(search_plan(layout, view="full") or []) for layout in rooms] == [len(actions) for actions in planner]


def test_the_searcher_plans_go_to_goals_only_and_expert_plan_falls_back_to_the_planner() -> None:
    env = gym.make("mmrl/PickUp-v0")
    env.reset(seed=3)
    layout = env.unwrapped.batch.world.layout(0)
    assert search_plan(layout) is None
    assert expert_plan(env, "searcher") == expert_plan(env, "planner") == plan(layout)
    with pytest.raises(ValueError, match="unknown demonstrator 'oracle'; valid choices: planner, searcher"):
        expert_plan(env, "oracle")
    with pytest.raises(ValueError, match="unknown demonstrator"):
        collect(env, 10, demonstrator="oracle")


def test_searcher_demonstrations_all_succeed() -> None:
    env = gym.make("mmrl/Sequence-v0", image_mode="symbolic", show_progress=True)
    demonstrations = collect(env, 2_000, seed=5, planner_fraction=1.0, demonstrator="searcher")
    assert demonstrations.expert_N.all() and demonstrations.successes >= demonstrations.episodes - 1


def test_demonstrator_setting_reaches_the_cloning_and_is_checked(tmp_path: Path) -> None:
    settings = {
        "n_steps": 16,
        "eval_freq": 0,
        "eval_episodes": 4,
        "demonstrations": 600,
        "demonstration_updates": 20,
        "demonstrator": "searcher",
    }
    run = mmrl.train("ppo", "mmrl/GoTo-v0", timesteps=32, seed=1, run_dir=tmp_path / "s", progress_bar=False,
                     overrides=settings)  # fmt: skip
    assert run.metrics["cloning"]["demonstration_frames"] == 600
    assert run.metrics["cloning"]["demonstrator"] == "searcher"
    assert yaml.safe_load((tmp_path / "s" / "config.yaml").read_text())["demonstrator"] == "searcher"
    with pytest.raises(ValueError, match="unknown demonstrator 'oracle'"):
        mmrl.train("ppo", "mmrl/GoTo-v0", run_dir=tmp_path / "bad", overrides={**settings, "demonstrator": "oracle"})
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("demonstrator", ["planner", "searcher"])
def test_the_expert_finishes_from_wherever_a_learner_left_it(demonstrator: str) -> None:
    """DAgger's labels come from states a learner reached: following :func:`expert_action` from there, one step at a
    time, completes the episode."""
    env = gym.make("mmrl/Sequence-v0")
    rng = np.random.default_rng(0)
    finished = started = 0
    for index in range(40):
        env.reset(seed=300 + index)
        info: dict = {}
        done = False
        for _ in range(int(rng.integers(0, 6))):  # a learner's first few steps
            _, _, terminated, truncated, info = env.step(int(rng.integers(3)))
            if terminated or truncated:
                done = True
                break
        if done:
            continue
        started += 1
        for _ in range(env.unwrapped.task.max_steps):
            action = expert_action(env, demonstrator)
            assert action is not None
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        finished += bool(info.get("is_success"))
    assert started >= 20 and finished >= started - 1


def test_relabelled_rollouts_are_played_by_the_learner_and_labelled_by_the_expert() -> None:
    env = gym.make("mmrl/GoTo-v0", image_mode="symbolic")
    played: list[bool] = []

    def always_left(observation: dict, deterministic: bool) -> int:
        played.append(deterministic)
        return int(Action.LEFT)

    rollouts = collect_relabelled(env, 300, always_left, seed=4, demonstrator="searcher")
    # turning in place never completes the instruction (it may end an episode early, facing a wrong object)
    assert rollouts.successes == 0 and rollouts.ends_N.sum() == rollouts.episodes >= 5
    assert rollouts.expert_N.all() and set(rollouts.actions_N.tolist()) >= {int(Action.RIGHT), int(Action.FORWARD)}
    # greedy and sampled episodes in turn
    episode_N = np.concatenate([[0], np.cumsum(rollouts.ends_N)[:-1]])
    assert played == (episode_N % 2 == 0).tolist()
    with pytest.raises(ValueError, match="unknown demonstrator"):
        collect_relabelled(env, 10, always_left, demonstrator="oracle")


def test_demonstration_rounds_relabel_the_clones_own_play_deterministically(tmp_path: Path) -> None:
    settings = {
        "n_steps": 16,
        "eval_freq": 0,
        "eval_episodes": 4,
        "demonstrations": 800,
        "demonstration_updates": 40,
        "demonstration_rounds": 2,
        "demonstrator": "searcher",
    }
    runs = [
        mmrl.train(
            "ppo", "mmrl/GoTo-v0", timesteps=32, seed=2, run_dir=tmp_path / name, progress_bar=False, overrides=settings
        )
        for name in ("a", "b")
    ]
    cloning = runs[0].metrics["cloning"]
    assert cloning["rounds"] == 2 and len(cloning["round_success"]) == 2
    assert 2 * 200 - 2 <= cloning["relabelled_frames"] <= 2 * 200
    first, second = (run.model.policy.state_dict() for run in runs)
    assert all(torch.equal(first[name], second[name]) for name in first)
    for rounds, message in ((9, "at most 8"), (-1, "must be >= 0")):
        with pytest.raises(ValueError, match=message):
            mmrl.train("ppo", "mmrl/GoTo-v0", run_dir=tmp_path / "bad", overrides={"demonstration_rounds": rounds})
    assert not (tmp_path / "bad").exists()


def test_pretrain_bc_cli_runs_demonstration_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mmrl.cli import main

    out = tmp_path / "bc"
    args = ["pretrain", "--method", "bc", "--env", "mmrl/GoTo-5x5-v0", "--frames", "400", "--updates", "20",
            "--demonstrator", "searcher", "--no-progress"]  # fmt: skip
    assert main([*args, "--rounds", "2", "--out", str(out)]) == 0
    metrics = yaml.safe_load((out / "metrics.json").read_text())
    assert metrics["rounds"] == 2 and len(metrics["round_success"]) == 2
    assert 2 * 100 - 2 <= metrics["relabelled_frames"] <= 2 * 100  # frames // 4 per round
    capsys.readouterr()
    assert main([*args, "--rounds", "9", "--out", str(tmp_path / "bad")]) != 0
    assert "rounds must be at most 8" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
