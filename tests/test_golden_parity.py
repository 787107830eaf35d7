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


#: The fast inner loop (``-m "not slow"``): on torch's paths and the eager and foreach built-ins,
#: every golden trace but the notebook's 100000-element MLP; on the compiled and Triton ones (a
#: graph compiled per dtype and flag; the interpreter, 0.3 to 30 s a trace), the two basic traces.
#: The rest is marked slow.
FAST_ON = {"compiled": {"basic-adam", "basic-adamw"}, "triton": {"basic-adam", "basic-adamw"}}


def _slow(name: str, scenario: str) -> bool:
    return scenario == "mlp-notebook" or scenario not in FAST_ON.get(name, {scenario})


@pytest.mark.parametrize(("name", "scenario"), [
    pytest.param(name, scenario, marks=pytest.mark.slow if _slow(name, scenario) else (), id=f"{name}-{scenario}")
    for name in BASE for scenario in golden.scenarios()])
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
