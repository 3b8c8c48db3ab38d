"""Sweeps and multi-seed runs on Ray Tune: ``mmrl.sweep(SPEC, out=...)`` and ``mmrl sweep SPEC.yaml``.

``mmrl.sweep`` is this package, callable as :func:`mmrl.sweep.runner.sweep`. The spec schema is in
:mod:`mmrl.sweep.spec`, the sweep folder layout in :mod:`mmrl.sweep.trial`, the report in :mod:`mmrl.sweep.results`.
Ray (the ``[ray]`` extra) is imported only when a sweep runs; specs and reports need no Ray.

Example::

    import mmrl

    report = mmrl.sweep("examples/sweep-quick.yaml", out="sweeps/quick")
    for config in report.configs:
        print(config.label, config.stats("success"))
"""

from __future__ import annotations

import sys
import types
from typing import Any

from mmrl.sweep.results import SweepReport, collect, write_report
from mmrl.sweep.spec import SweepSpec, load_spec, parse_spec

__all__ = ["SweepReport", "SweepSpec", "collect", "load_spec", "parse_spec", "sweep", "write_report"]


def sweep(*args: Any, **kwargs: Any) -> SweepReport:
    """Run a sweep: :func:`mmrl.sweep.runner.sweep` (imports Ray)."""
    from mmrl.sweep.runner import sweep as run

    return run(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """``mmrl.sweep(...)`` runs a sweep, while ``mmrl.sweep`` stays the package."""

    def __call__(self, *args: Any, **kwargs: Any) -> SweepReport:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
