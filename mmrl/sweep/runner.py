"""``sweep(...)``: run a sweep spec on Ray Tune (a local Ray by default, a cluster with ``address``).

Ray does the scheduling, retries and experiment bookkeeping: one Tune trial per seed of each configuration (1 CPU,
one torch thread), ``FailureConfig(max_failures=...)`` retries a failed trial (it continues its mmrl checkpoint),
``Tuner.restore`` resumes an interrupted sweep, running only the trials that did not finish.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from mmrl.atomic import write_json
from mmrl.sweep.results import SPEC_FILE, SweepReport, write_report
from mmrl.sweep.spec import SweepSpec, load_spec, parse_spec
from mmrl.sweep.trial import (
    ENV_KEY,
    INDEX_KEY,
    SEED_KEY,
    SweepContext,
    config_label,
    run_trial,
    searched_params,
)

__all__ = ["INSTALL_HINT", "require_ray", "sweep"]

INSTALL_HINT = 'mmrl sweep needs Ray: pip install -c constraints-cpu.txt -e ".[ray]"'
TUNE_DIR = "tune"

#: Quiet Ray: no dashboard, no usage stats, no per-trial logger files (mmrl writes its own run directories), no
#: Tune status tables (mmrl prints one line per trial event).
_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "RAY_DEDUP_LOGS": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "1000",
    "RAY_TRAIN_V2_ENABLED": "0",
    "OMP_NUM_THREADS": "1",
}


def require_ray() -> Any:
    """Import Ray Tune, or raise ``ModuleNotFoundError`` with the one-line install command."""
    try:
        import ray
        from ray import tune  # noqa: F401
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "ray":
            raise ModuleNotFoundError(INSTALL_HINT, name="ray") from None
        raise
    return ray


def _as_spec(spec: SweepSpec | dict[str, Any] | str | os.PathLike[str]) -> SweepSpec:
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, dict):
        return parse_spec(spec)
    return load_spec(spec)


def param_space(spec: SweepSpec) -> dict[str, Any]:
    """The Tune search space of ``spec``: every searched key, the env id and (except for Optuna) the seed."""
    from ray import tune

    space: dict[str, Any] = {}
    for dimension in spec.search:
        values = list(dimension.values)
        if dimension.domain == "grid":
            space[dimension.key] = tune.grid_search(values)
        elif dimension.domain == "choice":
            space[dimension.key] = tune.choice(values)
        elif dimension.domain == "uniform":
            space[dimension.key] = tune.uniform(*values)
        else:
            space[dimension.key] = tune.loguniform(*values)
    space[ENV_KEY] = tune.grid_search(list(spec.envs)) if len(spec.envs) > 1 else spec.envs[0]
    if spec.search_alg != "optuna":
        space[SEED_KEY] = tune.grid_search(list(spec.seeds))
    return space


def _search_alg(spec: SweepSpec, max_concurrent: int | None) -> Any:
    """Grid / random: Tune's variant generator, random values kept constant across the seeds (and the grid
    dimensions) of one sample. Optuna: Tune's OptunaSearch, each suggestion repeated once per seed (``Repeater``),
    which feeds Optuna the mean over seeds."""
    if spec.search_alg == "optuna":
        try:
            from ray.tune.search import Repeater
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            raise ModuleNotFoundError(
                'search_alg optuna needs Optuna: pip install -c constraints-cpu.txt -e ".[ray,optuna]"', name="optuna"
            ) from None
        return Repeater(OptunaSearch(seed=spec.sample_seed), repeat=len(spec.seeds), set_index=True)
    from ray.tune.search.basic_variant import BasicVariantGenerator

    return BasicVariantGenerator(
        constant_grid_search=True, random_state=spec.sample_seed, max_concurrent=max_concurrent or 0
    )


def _scheduler(spec: SweepSpec) -> Any:
    if spec.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler

    # max_t past the budget: a trial that reaches its budget finishes (final evaluation, metrics.json) instead of
    # being stopped at its last progress report
    return ASHAScheduler(
        time_attr="timesteps", max_t=spec.timesteps + 1, grace_period=max(spec.timesteps // 4, 1), reduction_factor=2
    )


def _progress_callback(total: int, seeds: list[int], out: Any) -> Any:
    from ray.tune import Callback

    class SweepProgress(Callback):
        """One line per trial event, with the overall count."""

        def __init__(self, stream: Any) -> None:  # an argument, not a closure: the class is pickled by value
            self.done = 0
            self.failed = 0
            self.started = time.time()
            self.out = stream

        def __getstate__(self) -> dict[str, Any]:
            # Tune pickles its run config (experiment state); a stream is not picklable, and is not state
            return {**self.__dict__, "out": None}

        def _line(self, trial: Any, what: str) -> None:
            config = trial.config
            name = config_label(config[ENV_KEY], searched_params(config))
            seed = config[SEED_KEY] if SEED_KEY in config else seeds[int(config[INDEX_KEY]) % len(seeds)]
            print(
                f"[sweep {self.done}/{total} done, {self.failed} failed, {time.time() - self.started:.0f}s] "
                f"{name} seed {seed}: {what}",
                file=self.out or sys.stdout,
                flush=True,
            )

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trial, "started")

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if not result.get("finished"):
                rate = result.get("train_success_rate")
                shown = "-" if rate is None else f"{rate:.2f}"
                self._line(trial, f"{result.get('timesteps', 0):,} steps, training success {shown}")

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.done += 1
            result = trial.last_result or {}
            success = result.get("success")
            self._line(trial, "finished" + ("" if success is None else f", held-out success {success:.2f}"))

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.failed += 1
            self._line(trial, "failed (after its retries)")

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._line(trial, "failed; retrying from its last checkpoint")

    return SweepProgress(out)


def _check_out(spec: SweepSpec, out: Path, resume: bool) -> None:
    stored = out / SPEC_FILE
    if resume:
        if not stored.is_file():
            raise FileNotFoundError(f"--resume: {out} holds no sweep ({SPEC_FILE} missing); drop --resume to start it")
        data = json.loads(stored.read_text(encoding="utf-8"))
        if data != json.loads(json.dumps(spec.to_dict())):
            raise ValueError(
                f"--resume: the spec differs from the one {out} was started with ({stored}); resume with the same "
                "spec, or start a new sweep with another --out"
            )
        if not (out / TUNE_DIR).is_dir():
            raise FileNotFoundError(f"--resume: {out / TUNE_DIR} is missing (the sweep never started Ray Tune)")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(
            f"{out} already exists and is not empty; continue that sweep with --resume, or choose another --out"
        )


def sweep(
    spec: SweepSpec | dict[str, Any] | str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    resume: bool = False,
    log: Any = None,
) -> SweepReport:
    """Run a sweep on Ray Tune and write its report.

    Example::

        report = mmrl.sweep("examples/sweep-quick.yaml", out="sweeps/quick")
        print(report.configs[0].label, report.configs[0].stats("success"))

    Args:
        spec: A spec file, its parsed mapping, or a :class:`~mmrl.sweep.spec.SweepSpec` (validated before Ray
            starts).
        out: The sweep folder (default ``sweeps/<name>``); must be new or empty unless ``resume``.
        address: A Ray cluster (``"auto"``, ``"HOST:PORT"``). None: start a local Ray with this machine's CPUs
            (unless Ray is already initialised in this process). The sweep folder must be on storage every node
            can reach (a shared file system).
        max_concurrent: Trials at once (default: the spec's, else as many as the cluster has CPUs).
        resume: Continue the interrupted sweep in ``out`` (``Tuner.restore``): finished trials are kept, the others
            continue from their last checkpoint or start.
        log: Where progress lines go (default ``sys.stdout``).

    Returns:
        The :class:`~mmrl.sweep.results.SweepReport` (also written to ``results.csv``, ``.json``, ``.md``, ``.png``).

    Raises:
        ValueError, FileNotFoundError: For a bad spec (naming the key and the file), before Ray starts.
        FileExistsError: If ``out`` is not empty and ``resume`` is False.
        ModuleNotFoundError: If Ray is not installed (the message says how to install it).
    """
    spec = _as_spec(spec)
    out = Path(out) if out is not None else Path("sweeps") / spec.name
    _check_out(spec, out, resume)
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or max_concurrent < 1):
        raise ValueError(f"max_concurrent must be a positive integer, got {max_concurrent!r}")
    log = sys.stdout if log is None else log
    settings = dict(_RAY_ENV)
    if address is None or address.rsplit(":", 1)[0] in ("127.0.0.1", "localhost"):
        # a Ray on this machine only: Ray then advertises 127.0.0.1 instead of the machine's network address
        # (read when Ray is imported)
        settings["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    added = [key for key in settings if key not in os.environ]
    os.environ.update({key: settings[key] for key in added})  # Ray's processes inherit them; removed at the end
    try:
        return _run(spec, out, address, max_concurrent, resume, log)
    finally:
        for key in added:
            os.environ.pop(key, None)


def _run(
    spec: SweepSpec, out: Path, address: str | None, max_concurrent: int | None, resume: bool, log: Any
) -> SweepReport:
    ray = require_ray()
    from ray import tune

    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    if not resume:
        write_json(out / SPEC_FILE, spec.to_dict())
    context = SweepContext(
        sweep_dir=str(out),
        algo=spec.algo,
        timesteps=spec.timesteps,
        seeds=tuple(spec.seeds),
        settings=dict(spec.settings),
        metric=spec.metric,
        threshold=spec.threshold,
        report_every=spec.report_every,
        preset=None if spec.preset is None else str(Path(spec.preset).resolve()),
    )
    started_ray = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR, "include_dashboard": False}
        ray.init(address=address, **kwargs)
        started_ray = True
    try:
        trainable = tune.with_resources(tune.with_parameters(run_trial, context=context), {"cpu": 1})
        progress = _progress_callback(spec.n_trials, list(spec.seeds), log)
        run_config = tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(out),
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
            callbacks=[progress],
            verbose=0,
        )
        print(
            f"sweep {spec.name}: {spec.n_trials} trials ({spec.n_configs} configurations x {len(spec.seeds)} "
            f"seeds), {spec.timesteps:,} steps each, into {out}",
            file=log,
            flush=True,
        )
        limit = max_concurrent or spec.max_concurrent
        if resume:
            tuner = tune.Tuner.restore(
                str(out / TUNE_DIR), trainable, resume_unfinished=True, resume_errored=False, restart_errored=True
            )
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space(spec),
                tune_config=tune.TuneConfig(
                    metric="objective",
                    mode=spec.mode,
                    search_alg=_search_alg(spec, limit),
                    scheduler=_scheduler(spec),
                    # Optuna: the Repeater turns each suggestion into one trial per seed
                    num_samples=spec.num_samples * (len(spec.seeds) if spec.search_alg == "optuna" else 1),
                    # the variant generator limits itself; Tune wraps a searcher (Optuna) in a ConcurrencyLimiter
                    max_concurrent_trials=limit if spec.search_alg == "optuna" else None,
                    reuse_actors=True,  # a new trial skips importing torch and SB3 again in its worker
                ),
                run_config=run_config,
            )
        tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()
    report = write_report(out)
    print(
        f"{report.n_done}/{spec.n_trials} trials finished ({report.n_failed} failed, {report.n_stopped} stopped "
        f"early); results in {out}",
        file=log,
        flush=True,
    )
    return report
