"""Fixed levels read from files in ``envs/`` (see :mod:`mmrl.envs.level_file` for the format)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from mmrl.checks import check_bool
from mmrl.engine.planner import faces_first_goal, is_solvable
from mmrl.engine.world import Layout
from mmrl.envs.batch import GridBatch
from mmrl.envs.grammar import describe_goals
from mmrl.envs.grid_env import GridEnv
from mmrl.envs.level_file import Level, parse_level
from mmrl.envs.task import MAX_GENERATION_ATTEMPTS, Task, place_agent
from mmrl.resources import level_files


def resolve_level(level: str | Path) -> Path:
    """A built-in level name (``"TwoRooms"``) or a path to a ``.level`` file."""
    built_in = level_files()
    if not isinstance(level, (str, Path)):
        raise TypeError(
            f"level must be a built-in level name ({', '.join(built_in)}) or a path to a .level file, "
            f"got {type(level).__name__}: {level!r}"
        )
    if isinstance(level, str) and level in built_in:
        return built_in[level]
    path = Path(level)
    if path.suffix == ".level" or path.exists():
        return path
    raise ValueError(
        f"unknown level {level!r}; built-in levels: {', '.join(built_in)}, or pass a path to a .level file"
    )


class FixedLevelTask(Task):
    """A level file's map with one of its instructions, drawn uniformly per episode.

    Args:
        level: The parsed level (every instruction was checked solvable by :func:`parse_level`).
        paraphrase: Describe the instruction in varied wording (else the file's text).
        max_steps: Episode length limit; ``None`` takes the file's.
    """

    def __init__(self, level: Level, paraphrase: bool, max_steps: int | None) -> None:
        check_bool("paraphrase", paraphrase)
        height, width = level.base.kind_HW.shape
        super().__init__(height, width, level.max_steps if max_steps is None else max_steps, level.n_actions)
        self.level = level
        self.paraphrase = bool(paraphrase)
        self.n_missions = len(level.missions)

    def generate(self, rng: np.random.Generator) -> Layout:
        """A layout for an instruction drawn uniformly; with ``start: random`` only the start is redrawn until the
        instruction is solvable and not already done (resampling the instruction would bias the draw)."""
        index = int(rng.integers(len(self.level.missions)))
        for _ in range(MAX_GENERATION_ATTEMPTS):
            layout = self.layout_for(index, rng)
            if is_solvable(layout, wrong_object_fails=self.wrong_object == "fail") and not faces_first_goal(layout):
                layout.mission = describe_goals(layout.goals, rng) if self.paraphrase else self.level.missions[index]
                return layout
        raise RuntimeError(
            f"{self.level.path}: found no start from which {self.level.missions[index]!r} is solvable and not "
            f"already done in {MAX_GENERATION_ATTEMPTS} attempts"
        )

    def layout_for(self, index: int, rng: np.random.Generator) -> Layout:
        """The level with instruction ``index`` (no text yet) and, for random starts, a random agent start."""
        layout = copy.deepcopy(self.level.base)
        layout.goals = list(self.level.goals[index])
        layout.mission_index = index
        if self.level.random_start:
            place_agent(layout, rng)
        return layout

    def sample_layout(self, rng: np.random.Generator) -> Layout:
        return self.generate(rng)


class FixedLevelEnv(GridEnv):
    """A level drawn in a file: fixed walls, doors and objects; one of the file's instructions per episode.

    ## Description
    The map, objects and instructions come from a ``.level`` file (built-in ones live in ``envs/``; ``mmrl envs``
    lists them). Each episode draws one of the file's instructions uniformly (a file is rejected when an
    instruction is unsolvable or, with a fixed start, already done at the start). Fixed layouts keep the state
    space small: with ``observation="compact"`` the observation is a short integer vector (agent row, column,
    heading, carried kind and colour, sub-goals done, instruction index, and the state of each door and object
    cell), which a tabular learner (:class:`mmrl.agents.QLearning`) learns quickly.

    ## Action Space
    ``Discrete(3)`` (left, right, forward) when every instruction is a "go to" and no door is closed, else
    ``Discrete(6)`` (adds pick up, drop, toggle); a file may set ``actions:``.

    ## Observation Space
    As :class:`~mmrl.envs.goto.GoToEnv` (or the compact vector).

    ## Rewards
    ``1 - 0.9 * steps / max_steps`` on success, 0 otherwise.

    ## Episode End
    Terminates when the instruction is done (or a wrong object is picked up for a pick-up instruction);
    truncates after ``max_steps`` (from the file, default ``4 * height * width``).

    ## Arguments
    ``level`` (a built-in name or a path), ``paraphrase`` (instructions in varied wording, default True; False
    uses the file's canonical text), ``max_steps``, and :class:`~mmrl.envs.grid_env.GridEnv`'s options.

    ## Version History
    * v0: initial version.
    """

    def __init__(
        self, level: str | Path = "TwoRooms", paraphrase: bool = True, max_steps: int | None = None, **kwargs
    ) -> None:
        self.level = parse_level(resolve_level(level))
        super().__init__(FixedLevelTask(self.level, paraphrase, max_steps), **kwargs)

    def configure_batch(self, batch: GridBatch) -> None:
        batch.set_watch_cells(*self.level.door_and_object_cells)
