"""adam-conformance: certify that an optimizer behaves exactly like torch.optim.Adam / AdamW.

One way through the code, one subpackage per stage::

    cases/   Case: what a run is given (and Trace, what it produced); the strategies that draw them
    run/     run: drive an implementation through a Case (runner, drive), the Target, the preflight
    truth/   the truth a Trace is judged by: the oracle, the error budget, the golden traces
    checks/  checks: the catalogue of properties, how they run and are explained
    report/  report: the certificate, its records, reproducers, the environment
    front/   the command line, certify, the pytest plugin

Below them, without torch: `vocabulary` (the suite's words), `registry` (implementations
and targets), `spec` (the variants), `dtypes`. The public names are re-exported here; the
heavy ones are imported on first use, so that ``import conformance`` stays light.
"""

from __future__ import annotations

import importlib

from conformance.registry import Implementation, Sharding, TargetError, resolve
from conformance.vocabulary import FEATURES, PROFILES

#: Public names that need torch or hypothesis, and the module each comes from.
_LAZY = {
    "Case": "conformance.cases.case", "Trace": "conformance.cases.trace", "Param": "conformance.cases.case",
    "Group": "conformance.cases.case", "Step": "conformance.cases.case", "cases": "conformance.cases.strategies",
    "Target": "conformance.run.target", "CATALOGUE": "conformance.checks", "run_check": "conformance.checks",
}

__all__ = ["CATALOGUE", "FEATURES", "PROFILES", "Case", "Group", "Implementation", "Param", "Sharding", "Step",
           "Target", "TargetError", "Trace", "cases", "resolve", "run_check"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'conformance' has no attribute {name!r}")
