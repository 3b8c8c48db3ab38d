"""Issue 14's hostile inputs: each ends fast with a one-line error (run in a subprocess with a timeout and, where
the platform allows, a memory cap)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

_PRELUDE = """
import resource, sys
try:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
except (ValueError, OSError):
    pass
"""


def _python(code: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _PRELUDE + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _level(path: Path, side: int, random_start: bool, goal_walled_in: bool) -> Path:
    rows = [["#" if r in (0, side - 1) or c in (0, side - 1) else "." for c in range(side)] for r in range(side)]
    row, col = side - 3, side - 3
    if goal_walled_in:
        for d_row in (-1, 0, 1):
            for d_col in (-1, 0, 1):
                rows[row + d_row][col + d_col] = "#"
    rows[row][col] = "b"
    if not random_start:
        rows[1][1] = ">"
    body = "".join("  " + "".join(r) + "\n" for r in rows)
    header = "start: random\n" if random_start else ""
    path.write_text(f"{header}map:\n{body}legend:\n  b: ball blue\nmissions:\n  - go to the blue ball\n")
    return path


@pytest.mark.parametrize(
    ("side", "random_start", "walled", "accepted"),
    [(35, True, True, False), (120, False, False, True), (120, True, True, False), (2000, False, False, False)],
)
def test_large_levels_are_decided_fast(tmp_path, side, random_start, walled, accepted):
    path = _level(tmp_path / "big.level", side, random_start, walled)
    result = _python(
        f"""
        from mmrl.envs.level_file import parse_level, LevelFileError
        try:
            parse_level({str(path)!r}); print("ACCEPTED")
        except LevelFileError as error:
            print("REFUSED", str(error)[:200])
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ACCEPTED" if accepted else "REFUSED"), result.stdout


def test_planner_finds_the_same_plans_as_a_full_search_on_generated_levels():
    import gymnasium as gym
    import numpy as np

    import mmrl  # noqa: F401  (registers the envs)
    from mmrl.engine.planner import plan
    from mmrl.engine.rules import step_navigation
    from mmrl.engine.world import WorldState

    for env_id in ("mmrl/GoTo-v0", "mmrl/Open-Locked-v0", "mmrl/Sequence-v0", "mmrl/PickUp-v0"):
        task = gym.make(env_id).unwrapped.task
        rng = np.random.default_rng(0)
        for _ in range(20):
            layout = task.generate(rng)
            actions = plan(layout)
            assert actions is not None
            world = WorldState(1, *layout.kind_HW.shape)
            world.load_layout(0, layout)
            for action in actions:  # the plan really completes every sub-goal
                step_navigation(world, np.array([action]), 1 << 30)
            assert int(world.stage_N[0]) == len(layout.goals)


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_level_from_a_device_or_fifo_is_refused_at_once(tmp_path, special):
    if special == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("no FIFOs on this platform")
        special = str(tmp_path / "pipe.level")
        os.mkfifo(special)
    elif not Path(special).exists():
        pytest.skip("no /dev/zero on this platform")
    result = _python(
        f"""
        from mmrl.envs.level_file import parse_level, LevelFileError
        try:
            parse_level({special!r})
        except LevelFileError as error:
            print("REFUSED", error)
        """,
        timeout=20,
    )
    assert "REFUSED" in result.stdout and "not a regular file" in result.stdout, result.stdout + result.stderr


def test_level_error_never_quotes_much_of_the_file(tmp_path):
    path = tmp_path / "secret.level"
    path.write_text("root:" + "S" * 5000 + "\n")
    from mmrl.envs.level_file import LevelFileError, parse_level

    with pytest.raises(LevelFileError) as info:
        parse_level(path)
    assert "S" * 100 not in str(info.value)


def test_env_size_has_an_upper_bound():
    import gymnasium as gym

    import mmrl  # noqa: F401

    with pytest.raises(ValueError, match="MMRL_MAX_GRID_SIDE"):
        gym.make("mmrl/GoTo-v0", size=5000)


_BOMB = (
    "{a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], "
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]}"
)


def test_yaml_alias_bomb_is_refused_fast():
    result = _python(
        f"""
        from mmrl.training.presets import parse_overrides
        try:
            parse_overrides(["net_arch={_BOMB}"], "ppo")
        except ValueError as error:
            print("REFUSED", error)
        """,
        timeout=20,
    )
    assert "REFUSED" in result.stdout and "aliases" in result.stdout, result.stdout + result.stderr
    assert len(result.stdout) < 400


def test_yaml_loader_keeps_safe_load_semantics(tmp_path):
    from mmrl.yaml_io import YamlError, load_yaml_file, load_yaml_text

    assert load_yaml_text("a: [1, 2.5, x]", "t") == {"a": [1, 2.5, "x"]}
    with pytest.raises(YamlError, match="tag"):
        load_yaml_text("!!python/object/apply:os.system [echo hi]", "t")
    with pytest.raises(YamlError, match="deeper"):
        load_yaml_text("[" * 500 + "]" * 500, "t")
    (tmp_path / "p.yaml").write_text("default: {n_envs: 4}")
    assert load_yaml_file(tmp_path / "p.yaml") == {"default": {"n_envs": 4}}


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("n_steps=10000000000", "MMRL_MAX_ROLLOUT_STEPS"),
        ("n_envs=1000000000", "MMRL_MAX_ENVS"),
        ("net_arch=[12000,12000]", "MMRL_MAX_NET_PARAMS"),
        ("ent_coef=.nan", "ent_coef must be a finite number"),
        ("learning_rate=.inf", "learning_rate must be a finite number"),
        ("torch_threads=100000", "torch_threads must be at most"),
    ],
)
def test_training_settings_are_bounded_and_finite(override, needle):
    from mmrl.training.presets import resolve_config

    with pytest.raises(ValueError) as info:
        resolve_config("ppo", "mmrl/GoTo-5x5-v0", overrides=[override])
    assert needle in str(info.value)


def test_limits_can_be_raised_by_the_environment(monkeypatch):
    from mmrl.limits import check_limit

    with pytest.raises(ValueError):
        check_limit("n_envs", 5000, "max_envs")
    monkeypatch.setenv("MMRL_MAX_ENVS", "10000")
    assert check_limit("n_envs", 5000, "max_envs") == 5000


@pytest.mark.slow  # two fresh interpreters per case
@pytest.mark.parametrize(
    "exception",
    [
        "MemoryError()",
        "RuntimeError('device meta')",
        "RecursionError('maximum recursion depth exceeded')",
        "AttributeError(\"'list' object has no attribute 'get'\")",
        "AssertionError('x')",
        "__import__('zipfile').BadZipFile('truncated')",
        "__import__('pickle').UnpicklingError('bad')",
        "OverflowError('cannot convert float infinity to integer')",
        "ModuleNotFoundError('No module named evilmod')",
        "__import__('gymnasium').error.Error('bad env')",
    ],
)
def test_cli_turns_every_exception_into_one_line(exception):
    code = f"""
        import sys
        import mmrl.cli as cli
        import mmrl.cli.envs as envs
        def boom(args):
            raise {exception}
        original = envs.register
        def register(subparsers):
            original(subparsers)
            subparsers.choices["envs"].set_defaults(run=boom)
        envs.register = register
        sys.exit(cli.main(sys.argv[1:]))
        """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), "envs"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    debug = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), "envs", "--debug"], capture_output=True, text=True, timeout=120
    )
    assert debug.returncode == 1 and "Traceback" in debug.stderr
