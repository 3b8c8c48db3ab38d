"""Sweep specs and reports without Ray: validation, the search space, aggregation over seeds, the CLI's refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmrl.atomic import write_json
from mmrl.sweep.results import collect, markdown, write_report
from mmrl.sweep.spec import load_spec, parse_spec
from mmrl.sweep.trial import config_dir_name, config_label

ROOT = Path(__file__).resolve().parents[1]
BASE = {"algo": "ppo", "env": "mmrl/GoTo-5x5-v0", "timesteps": 1000}


def write_spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_examples_are_valid_and_sized_as_documented():
    quick = load_spec(ROOT / "examples" / "sweep-quick.yaml")
    assert (quick.n_configs, len(quick.seeds), quick.timesteps, quick.envs) == (2, 2, 4096, ["mmrl/GoTo-5x5-v0"])
    fusions = load_spec(ROOT / "examples" / "sweep-fusions.yaml")
    assert (fusions.n_configs, len(fusions.seeds), fusions.n_trials) == (3, 3, 9)


def test_spec_defaults_and_counts():
    spec = parse_spec(
        {
            **BASE,
            "seeds": 3,
            "search": {"fusion": {"grid": ["concat", "film"]}, "learning_rate": {"loguniform": [1e-4, 1e-3]}},
            "num_samples": 2,
        }
    )
    assert spec.seeds == [0, 1, 2]
    assert spec.search_alg == "random"  # a sampled dimension makes random search the default
    assert spec.n_configs == 4 and spec.n_trials == 12
    assert spec.mode == "max"
    assert parse_spec({**BASE, "metric": "frames_to_threshold"}).mode == "min"
    assert parse_spec(spec.to_dict()).to_dict() == spec.to_dict()  # sweep.json round trip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"learning_rat": 0.1}, "unknown key 'learning_rat'"),
        ({"algo": "sac"}, "unknown algorithm"),
        ({"env": "mmrl/NoSuch-v0"}, "NoSuch"),
        ({"seeds": 0}, "'seeds' must be an integer >= 1"),
        ({"seeds": [1, 1]}, "lists a seed twice"),
        ({"timesteps": -5}, "'timesteps' must be an integer >= 1"),
        ({"metric": "reward"}, "'metric' must be one of"),
        ({"threshold": 1.5}, "'threshold'"),
        ({"settings": {"gamma": 2.0}}, "gamma must be in [0, 1]"),
        ({"settings": {"no_such": 1}}, "unknown key 'no_such'"),
        ({"settings": {"timesteps": 5}}, "set by the sweep"),
        ({"search": {"fusion": {"grid": ["concat", "nope"]}}}, "unknown fusion 'nope'"),
        ({"search": {"learning_rate": {"loguniform": [0.0, 0.1]}}}, "learning_rate must be > 0"),
        ({"search": {"learning_rate": {"uniform": [0.1, 0.01]}}}, "low < high"),
        ({"search": {"n_steps": {"uniform": [8, 64]}}}, "use choice or grid"),
        ({"search": {"gamma": {"between": [0.9, 0.99]}}}, "unknown domain 'between'"),
        ({"search": {"bogus": {"grid": [1]}}}, "[search.bogus]: unknown key 'bogus'"),
        ({"search": {"fusion": {"choice": ["concat"]}}, "search_alg": "grid"}, "search_alg grid needs grid"),
        ({"search": {"fusion": {"grid": ["concat"]}}, "settings": {"fusion": "film"}}, "both in settings and"),
        ({"search": {"fusion": {"grid": ["concat"]}}, "search_alg": "optuna"}, "use choice instead of grid"),
        ({"name": "../x"}, "plain folder name"),
    ],
)
def test_bad_spec_names_the_key_and_the_file(tmp_path, change, message):
    path = write_spec(tmp_path, {**BASE, **change})
    with pytest.raises(ValueError) as error:
        load_spec(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_spec_yaml_is_read_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("algo: !!python/object/apply:os.system ['touch pwned']\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"yaml\.safe_load"):
        load_spec(path)
    assert not (tmp_path / "pwned").exists()


def test_config_dir_names_are_stable_and_distinct():
    a = config_dir_name("mmrl/GoTo-5x5-v0", {"fusion": "concat", "learning_rate": 0.001})
    b = config_dir_name("mmrl/GoTo-5x5-v0", {"learning_rate": 0.001, "fusion": "concat"})
    c = config_dir_name("mmrl/GoTo-5x5-v0", {"fusion": "concat", "learning_rate": 0.0010001})
    assert a == b != c
    assert "/" not in a and a.startswith("fusion=concat")
    assert config_label("mmrl/GoTo-5x5-v0", {}) == "mmrl/GoTo-5x5-v0"


def fake_trial(sweep_dir: Path, params: dict, seed: int, success: float | None, evaluations: list, status="done"):
    """A trial's files as run_trial leaves them (the report reads nothing else)."""
    env_id = "mmrl/GoTo-5x5-v0"
    folder = sweep_dir / "runs" / config_dir_name(env_id, params)
    run_dir = folder / f"seed-{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", {"env_id": env_id, "params": params, "label": config_label(env_id, params)})
    write_json(folder / f"seed-{seed}.trial.json", {"status": status, "attempts": 1, "wall_time_s": 10.0 + seed})
    if success is not None:
        metrics = {"success_rate": success, "mean_return": success / 2, "timesteps": 1000, "evaluations": evaluations}
        write_json(run_dir / "metrics.json", metrics)


def test_report_aggregates_over_seeds_and_ranks(tmp_path):
    spec = parse_spec({**BASE, "seeds": 2, "search": {"fusion": {"grid": ["concat", "film"]}}})
    write_json(tmp_path / "sweep.json", spec.to_dict())
    reach = [{"timesteps": 500, "success_rate": 0.95}]
    fake_trial(tmp_path, {"fusion": "concat"}, 0, 0.5, [{"timesteps": 500, "success_rate": 0.5}])
    fake_trial(tmp_path, {"fusion": "concat"}, 1, 0.7, [{"timesteps": 500, "success_rate": 0.6}])
    fake_trial(tmp_path, {"fusion": "film"}, 0, 1.0, reach)
    fake_trial(tmp_path, {"fusion": "film"}, 1, None, [], status="running")  # killed mid-run: not counted
    report = write_report(tmp_path)
    best, second = report.configs
    assert best.label == "fusion=film"
    assert best.stats("success") == {"mean": 1.0, "std": 0.0, "min": 1.0, "max": 1.0, "n": 1}
    assert best.stats("frames_to_threshold")["mean"] == 500
    stats = second.stats("success")
    assert stats["mean"] == pytest.approx(0.6) and stats["std"] == pytest.approx(0.1)
    assert (stats["min"], stats["max"], stats["n"]) == (0.5, 0.7, 2)
    text = (tmp_path / "results.md").read_text()
    assert "| fusion=film | 1/2 | 1.00 ± 0.00 |" in text
    assert "| fusion=concat | 2/2 | 0.60 ± 0.10 | 0.50-0.70 |" in text
    assert "3 of 4 trials finished" in text
    rows = json.loads((tmp_path / "results.json").read_text())["configs"]
    assert [r["seeds_done"] for r in rows] == [1, 2]
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("config,env_id,fusion,seeds_done")
    assert (tmp_path / "results.png").stat().st_size > 1000
    assert markdown(collect(tmp_path)) == text  # re-rendering gives the same table


def test_report_lists_failed_trials_with_their_error(tmp_path):
    spec = parse_spec({**BASE, "seeds": 1})
    write_json(tmp_path / "sweep.json", spec.to_dict())
    fake_trial(tmp_path, {}, 0, None, [], status="failed")
    record = tmp_path / "runs" / config_dir_name("mmrl/GoTo-5x5-v0", {}) / "seed-0.trial.json"
    write_json(record, {"status": "failed", "attempts": 3, "errors": ["attempt 3: ValueError: bad batch"]})
    text = markdown(collect(tmp_path))
    assert "0/1, 1 failed" in text and "ValueError: bad batch" in text


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmrl.cli", "sweep", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_cli_refuses_a_bad_spec_before_ray_starts(tmp_path):
    path = write_spec(tmp_path, {**BASE, "search": {"gamma": {"grid": [0.9, 1.5]}}})
    result = run_cli(str(path), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: {path} [search.gamma]: gamma must be in [0, 1], got 1.5"]
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_non_empty_out_and_a_resume_without_sweep(tmp_path):
    path = write_spec(tmp_path, BASE)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("keep")
    result = run_cli(str(path), "--out", str(tmp_path / "busy"), cwd=tmp_path)
    assert result.returncode == 1 and "--resume" in result.stderr
    assert (tmp_path / "busy" / "file").read_text() == "keep"
    result = run_cli(str(path), "--resume", "--out", str(tmp_path / "none"), cwd=tmp_path)
    assert result.returncode == 1 and "holds no sweep" in result.stderr


def test_cli_report_rerenders_and_refuses_a_non_sweep(tmp_path):
    spec = parse_spec({**BASE, "seeds": 1})
    write_json(tmp_path / "sweep.json", spec.to_dict())
    fake_trial(tmp_path, {}, 0, 0.8, [])
    result = run_cli("--report", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "| mmrl/GoTo-5x5-v0 | 1/1 | 0.80 ± 0.00 |" in result.stdout
    result = run_cli("--report", str(tmp_path / "runs"), cwd=tmp_path)
    assert result.returncode == 1 and "is not a sweep folder" in result.stderr


def test_missing_ray_gives_the_install_command(tmp_path):
    path = write_spec(tmp_path, BASE)
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\nclass Block:\n    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'ray' or name.startswith('ray.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    result = subprocess.run(
        [sys.executable, "-m", "mmrl.cli", "sweep", str(path), "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == 'error: mmrl sweep needs Ray: pip install -c constraints-cpu.txt -e ".[ray]"'


def test_mmrl_sweep_is_the_callable_package():
    import mmrl

    assert callable(mmrl.sweep)
    assert mmrl.sweep.load_spec is load_spec
