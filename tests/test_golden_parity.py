"""Every built-in implementation reproduces every golden trace within the error budget (on
the CPU; set ADAM_CONFORMANCE_DEVICE=cuda to run it on a GPU)."""

from __future__ import annotations

import functools

import pytest

from conformance import resolve
from conformance.run import runner
from conformance.truth import budget, golden
from tests.known import BASE, DEVICE


@functools.cache
def _golden(name: str):
    _, case, trace = golden.read_scenario(golden.DEFAULT_DIR, name)
    reference = resolve("torch" if case.spec == "adam" else "torch-adamw")
    return case, trace, [runner.run(reference, c, DEVICE) for c in budget.reference_cases(case)]


@pytest.mark.parametrize("scenario", golden.scenarios())
@pytest.mark.parametrize("name", BASE)
def test_reproduces_the_golden_trace_within_budget(name, scenario):
    case, oracle_trace, references = _golden(scenario)
    impl = resolve(name if case.spec == "adam" else f"{name}-adamw")
    unclaimed = case.features() - impl.claims
    if unclaimed:
        pytest.skip(f"{impl.name} does not claim {', '.join(sorted(unclaimed))}")
    if DEVICE not in impl.devices:
        pytest.skip(f"{impl.name} runs on {', '.join(impl.devices)} only")
    trace = runner.run(impl, case, DEVICE)
    assert trace.error is None, trace.error
    assert not trace.observations, [str(o) for o in trace.observations]
    parity = budget.judge(trace, references, oracle_trace, case)
    assert parity.passed, f"{impl.name} on {scenario}: {parity}"
