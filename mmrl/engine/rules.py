"""The rules of the gridworld, applied to all N worlds at once with vectorised NumPy.

Movement and interaction follow MiniGrid: the agent turns, moves forward onto empty cells and open doors,
picks up keys, balls and boxes in front of it, drops what it carries onto an empty cell in front, and toggles
doors (a locked door opens only while carrying the key of its colour). Sub-goals complete in order:

* ``GOTO``: the cell in front holds the named object;
* ``PICKUP``: the agent carries the named object (picking up another one ends the episode as a failure);
* ``OPEN``: the door in front, of the named colour, is open.

With ``wrong_object="fail"`` (every built-in task's default) the instruction must be read: the episode ends as a
failure when, after an action, the agent faces a key, ball or box that no sub-goal up to the current one names
(the key of a door that such a sub-goal opens counts as named, and so does a key of a locked door's colour: a
route may need it), or toggles a door of another colour while the current sub-goal is ``OPEN``. An object named
by a later sub-goal is wrong too: sub-goals are done in order. With ``wrong_object="continue"`` only picking up a
wrong object under ``PICKUP`` fails.

Question tasks (``answer_N >= 0``) end after one step; the action is the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmrl.engine.constants import DIRECTION_DELTAS, PICKABLE_KINDS, Action, DoorState, Kind, Verb
from mmrl.engine.world import WorldState

_PICKABLE = np.zeros(256, dtype=bool)
_PICKABLE[list(PICKABLE_KINDS)] = True
# plain ints: comparing arrays with IntEnum members costs an enum lookup per use
_EMPTY, _FLOOR, _GOAL, _DOOR, _KEY = int(Kind.EMPTY), int(Kind.FLOOR), int(Kind.GOAL), int(Kind.DOOR), int(Kind.KEY)
_OPEN, _CLOSED, _LOCKED = int(DoorState.OPEN), int(DoorState.CLOSED), int(DoorState.LOCKED)
_LEFT, _RIGHT, _FORWARD = int(Action.LEFT), int(Action.RIGHT), int(Action.FORWARD)
_PICKUP_ACTION, _DROP, _TOGGLE = int(Action.PICKUP), int(Action.DROP), int(Action.TOGGLE)
_GOTO, _PICKUP_VERB, _OPEN_VERB = int(Verb.GOTO), int(Verb.PICKUP), int(Verb.OPEN)
#: What a wrong object does: ``"fail"`` ends the episode as a failure, ``"continue"`` lets the agent go on.
WRONG_OBJECT_RULES = ("fail", "continue")


@dataclass
class StepResult:
    """Per-world outcome of one step (arrays of length N)."""

    reward_N: np.ndarray
    terminated_N: np.ndarray
    truncated_N: np.ndarray
    success_N: np.ndarray


def success_reward(step_count_N: np.ndarray, max_steps: int) -> np.ndarray:
    """MiniGrid's reward on success: ``1 - 0.9 * steps / max_steps``."""
    return (1.0 - 0.9 * (step_count_N / max_steps)).astype(np.float32)


def front_cells(world: WorldState) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of the cell in front of each agent."""
    front_N2 = world.agent_pos_N2 + DIRECTION_DELTAS[world.agent_dir_N]
    return front_N2[:, 0], front_N2[:, 1]


def step_navigation(
    world: WorldState, actions_N: np.ndarray, max_steps: int, wrong_object: str = "continue"
) -> StepResult:
    """Apply one navigation action per world, in place, and score the sub-goals.

    Args:
        world: The worlds, advanced in place.
        actions_N: One action per world.
        max_steps: Episode length limit (truncation).
        wrong_object: ``"fail"`` or ``"continue"`` (see the module docstring).
    """
    n = world.n_worlds
    worlds = np.arange(n)
    world.step_count_N += 1

    turn = (actions_N == _RIGHT).astype(np.int64) - (actions_N == _LEFT)
    world.agent_dir_N = (world.agent_dir_N + turn) % 4

    rows, cols = front_cells(world)
    front_kind = world.kind_NHW[worlds, rows, cols]
    front_colour = world.colour_NHW[worlds, rows, cols]
    front_state = world.state_NHW[worlds, rows, cols]

    # forward: onto empty cells, floor, goal squares and open doors
    passable = (
        (front_kind == _EMPTY)
        | (front_kind == _FLOOR)
        | (front_kind == _GOAL)
        | ((front_kind == _DOOR) & (front_state == _OPEN))
    )
    move = (actions_N == _FORWARD) & passable
    world.agent_pos_N2[move, 0] = rows[move]
    world.agent_pos_N2[move, 1] = cols[move]
    world.visited_NHW[worlds[move], rows[move], cols[move]] = True

    carrying = world.carry_kind_N != _EMPTY
    # pickup: a pickable object in front and empty hands
    pick = (actions_N == _PICKUP_ACTION) & _PICKABLE[front_kind] & ~carrying
    world.carry_kind_N[pick] = front_kind[pick]
    world.carry_colour_N[pick] = front_colour[pick]
    world.kind_NHW[worlds[pick], rows[pick], cols[pick]] = _EMPTY
    world.colour_NHW[worlds[pick], rows[pick], cols[pick]] = 0

    # drop: carrying, onto an empty cell in front
    drop = (actions_N == _DROP) & carrying & (front_kind == _EMPTY)
    world.kind_NHW[worlds[drop], rows[drop], cols[drop]] = world.carry_kind_N[drop]
    world.colour_NHW[worlds[drop], rows[drop], cols[drop]] = world.carry_colour_N[drop]
    world.carry_kind_N[drop] = _EMPTY
    world.carry_colour_N[drop] = 0

    # toggle: open a closed door, close an open one, unlock with the key of the door's colour
    toggle = (actions_N == _TOGGLE) & (front_kind == _DOOR)
    has_key = (world.carry_kind_N == _KEY) & (world.carry_colour_N == front_colour)
    new_state = front_state.copy()
    new_state[toggle & (front_state == _OPEN)] = _CLOSED
    new_state[toggle & (front_state == _CLOSED)] = _OPEN
    new_state[toggle & (front_state == _LOCKED) & has_key] = _OPEN
    world.state_NHW[worlds[toggle], rows[toggle], cols[toggle]] = new_state[toggle]

    # score the current sub-goal (after the action: the agent may have turned or moved)
    rows, cols = front_cells(world)
    front_kind = world.kind_NHW[worlds, rows, cols]
    front_colour = world.colour_NHW[worlds, rows, cols]
    front_state = world.state_NHW[worlds, rows, cols]
    stage = np.minimum(world.stage_N, world.goal_verb_NG.shape[1] - 1)
    verb = world.goal_verb_NG[worlds, stage]
    goal_kind = world.goal_kind_NG[worlds, stage]
    goal_colour = world.goal_colour_NG[worlds, stage]
    facing_goal = (front_kind == goal_kind) & (front_colour == goal_colour)
    holding_goal = (world.carry_kind_N == goal_kind) & (world.carry_colour_N == goal_colour)
    done_goal = (
        ((verb == _GOTO) & facing_goal)
        | ((verb == _PICKUP_VERB) & holding_goal)
        | ((verb == _OPEN_VERB) & facing_goal & (front_state == _OPEN))
    )
    active = world.stage_N < world.n_goals_N
    world.stage_N += (done_goal & active).astype(np.int64)

    success = active & (world.stage_N == world.n_goals_N)
    # picking up the wrong object when a pick-up is asked for ends the episode as a failure
    failed = active & ~success & (verb == _PICKUP_VERB) & pick
    if wrong_object == "fail":
        failed |= (
            active
            & ~success
            & (
                _wrong_object_in_front(world, rows, cols, stage)
                | ((verb == _OPEN_VERB) & toggle & (front_colour != goal_colour))
            )
        )
    terminated = success | failed
    reward = np.where(success, success_reward(world.step_count_N, max_steps), np.float32(0.0)).astype(np.float32)
    truncated = ~terminated & (world.step_count_N >= max_steps)
    return StepResult(reward, terminated, truncated, success)


def _wrong_object_in_front(world: WorldState, rows: np.ndarray, cols: np.ndarray, stage_N: np.ndarray) -> np.ndarray:
    """Whether the cell in front holds a key, ball or box that no sub-goal up to ``stage_N`` names."""
    worlds = np.arange(world.n_worlds)
    kind_N = world.kind_NHW[worlds, rows, cols]
    colour_N = world.colour_NHW[worlds, rows, cols]
    n_subgoals = world.goal_verb_NG.shape[1]
    named_NG = (np.arange(n_subgoals)[None, :] <= stage_N[:, None]) & (world.goal_verb_NG != int(Verb.NONE))
    # an "open" sub-goal names its door's key too
    goal_kind_NG = np.where(world.goal_verb_NG == _OPEN_VERB, _KEY, world.goal_kind_NG)
    same_NG = (goal_kind_NG == kind_N[:, None]) & (world.goal_colour_NG == colour_N[:, None])
    wrong_N = _PICKABLE[kind_N] & ~(named_NG & same_NG).any(axis=1)
    # a key that unlocks a locked door is never wrong: a route to a named object may need it
    keys = np.flatnonzero(wrong_N & (kind_N == _KEY))
    if len(keys):
        opens_NHW = (
            (world.kind_NHW[keys] == _DOOR)
            & (world.state_NHW[keys] == _LOCKED)
            & (world.colour_NHW[keys] == colour_N[keys, None, None])
        )
        wrong_N[keys] = ~opens_NHW.any(axis=(1, 2))
    return wrong_N


def step_question(world: WorldState, actions_N: np.ndarray) -> StepResult:
    """Answer a question: one step, reward 1 when the action is the correct answer."""
    world.step_count_N += 1
    success = actions_N == world.answer_N
    return StepResult(
        success.astype(np.float32), np.ones(world.n_worlds, dtype=bool), np.zeros(world.n_worlds, bool), success
    )
