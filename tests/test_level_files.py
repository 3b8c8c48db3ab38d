"""Level files: comments, parse-time checks of every instruction with the planner, uniform instruction draws."""

from __future__ import annotations

import collections
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mmrl  # noqa: F401  (registers the environments)
from mmrl.engine.planner import plan
from mmrl.envs.level_file import LevelFileError, parse_level
from mmrl.resources import level_files


def write_level(tmp_path: Path, text: str, name: str = "test.level") -> Path:
    path = tmp_path / name
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


LINE_MAP = """
map:
  #######
  #.>.rb#
  #######
"""
LEGEND = """
legend:
  r: ball red
  b: box blue
"""


def test_every_shipped_level_parses_and_resets() -> None:
    for name, path in level_files().items():
        level = parse_level(path)
        env = gym.make(f"mmrl/Level-{name}-v0")
        for seed in range(5):
            env.reset(seed=seed)
        assert level.missions


def test_comment_lines_are_allowed_in_every_section(tmp_path: Path) -> None:
    path = write_level(
        tmp_path,
        "# header comment\n" + LINE_MAP + "# the ball is red\n" + LEGEND + "  # inside the legend\n"
        "missions:\n  # inside the missions\n  - go to the red ball\n",
    )
    assert parse_level(path).missions == ["go to the red ball"]


def test_unreachable_object_is_rejected_at_parse_time_with_file_and_line(tmp_path: Path) -> None:
    path = write_level(
        tmp_path,
        "map:\n  #######\n  #r>.#b#\n  #######\n" + LEGEND + "missions:\n  - go to the blue box\n",
    )
    with pytest.raises(LevelFileError, match=rf"{path.name}:10: the instruction 'go to the blue box' cannot be"):
        parse_level(path)


def test_instruction_needing_more_actions_than_the_level_has_is_rejected(tmp_path: Path) -> None:
    path = write_level(tmp_path, "actions: 3\n" + LINE_MAP + LEGEND + "missions:\n  - pick up the red ball\n")
    with pytest.raises(LevelFileError, match=r":12: .*needs the 'pickup' action.*'actions: 3' \(line 1\)"):
        parse_level(path)


#: A blue ball behind a red locked door, with the red key on the agent's side (missions appended by each test).
LOCKED_DOOR_LEVEL = (
    "map:\n  ########\n  #.k.#..#\n  #>..L.b#\n  #...#..#\n  ########\n"
    "legend:\n  k: key red\n  L: door red locked\n  b: ball blue\nmissions:\n"
)


def test_closed_door_needs_toggle(tmp_path: Path) -> None:
    path = write_level(
        tmp_path,
        "actions: 4\nmap:\n  #######\n  #>.D.r#\n  #######\nlegend:\n  D: door yellow closed\n  r: ball red\n"
        "missions:\n  - go to the red ball\n",
    )
    with pytest.raises(LevelFileError, match="needs the 'toggle' action"):
        parse_level(path)


def test_go_to_behind_a_locked_door_fetches_the_key(tmp_path: Path) -> None:
    path = write_level(
        tmp_path,
        LOCKED_DOOR_LEVEL + "  - go to the blue ball\n",
    )
    level = parse_level(path)
    layout = level.base
    layout.goals = level.goals[0]
    assert plan(layout) is not None
    env = gym.make("mmrl/Level-v0", level=str(path))
    env.reset(seed=0)
    for action in plan(layout):
        _, reward, terminated, _, info = env.step(action)
    assert terminated and info["is_success"] and reward > 0


def test_pick_up_behind_a_locked_door_names_the_planner_limit(tmp_path: Path) -> None:
    path = write_level(
        tmp_path,
        LOCKED_DOOR_LEVEL + "  - pick up the blue ball\n",
    )
    with pytest.raises(LevelFileError, match="does not route 'pick up' instructions through locked doors"):
        parse_level(path)


def test_instruction_done_at_a_fixed_start_is_rejected(tmp_path: Path) -> None:
    text = "map:\n  #######\n  #.>r..#\n  #....b#\n  #######\n" + LEGEND
    text += "missions:\n  - go to the red ball\n  - go to the blue box\n"
    with pytest.raises(LevelFileError, match=r":11: the agent starts facing the object of 'go to the red ball'"):
        parse_level(write_level(tmp_path, text))


def test_instructions_are_drawn_uniformly_with_a_random_start(tmp_path: Path) -> None:
    # Starts facing the red ball are redrawn; redrawing the instruction with them (not only the start) would make
    # the drawn instruction depend on the start, favouring the blue box. The draw must be the generator's first.
    text = "start: random\nmap:\n  #######\n  #..r..#\n  #....b#\n  #######\n" + LEGEND
    text += "missions:\n  - go to the red ball\n  - go to the blue box\n"
    env = gym.make("mmrl/Level-v0", level=str(write_level(tmp_path, text)), paraphrase=False)
    task = env.unwrapped.task
    for seed in range(200):
        first_draw = int(np.random.default_rng(seed).integers(task.n_missions))
        assert task.generate(np.random.default_rng(seed)).mission_index == first_draw, seed
    counts = collections.Counter(env.reset(seed=seed)[1]["mission"] for seed in range(400))
    assert abs(counts["go to the red ball"] - 200) < 40, counts  # binomial sd 10
