"""The assertions check bodies make: a property holds on a Case (and torch's own breaches
of it are recorded, not held against the target), a run completes, a run is within the
error budget of the oracle, two runs agree. Each failure says what matters most first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from conformance.cases.case import Case
from conformance.cases.trace import Trace
from conformance.checks.catalogue import CheckFailure, Evidence
from conformance.dtypes import components
from conformance.run.target import Target
from conformance.truth import budget, oracle
from conformance.truth.budget import INVARIANT_TOLERANCE, Parity
from conformance.vocabulary import torch_class_name


def completed(target: Target, case: Case) -> Trace:
    """The target's run of `case`; a failure (an API difference) if it raised."""
    trace = target.run(case)
    if trace.error:
        raise CheckFailure(f"the run raised: {trace.error}", [case], severity="api")
    return trace


def run_against_torch(target: Target, case: Case) -> tuple[Trace, list[Trace]]:
    """The target's trace and torch's; fails if only the target raised."""
    trace, refs = target.run(case), target.references(case)
    if trace.error and not refs[0].error:
        raise CheckFailure(f"{target.impl.name} raised where {torch_class_name(target.spec)} did not: "
                           f"{trace.error}", [case], severity="api")
    return trace, refs


def within_budget(target: Target, case: Case, truth: Trace | None = None) -> Parity | None:
    """The property of parity: the target's run of `case` is within the error budget of the
    oracle's (or of `truth`, a golden trace). Returns the verdict (None when torch raises too)."""
    trace, refs = run_against_torch(target, case)
    if refs[0].error:
        return None
    truth, allowance = truth or oracle.run(case), target.allowance(case)
    parity = budget.judge(trace, refs, truth, case, allowance=allowance)
    if not parity.passed:
        raise _parity_failure(parity, trace, refs, truth, case, allowance)
    return parity


def _parity_failure(parity: Parity, trace: Trace, refs: list[Trace], truth: Trace, case: Case,
                    allowance: Trace | None) -> CheckFailure:
    """The failure of an over-budget run, led by what matters most: a wrong parameter
    (one never updated says so), else the state alone, with what it may hold instead."""
    params = budget.judge(trace, refs, truth, case, state=False, allowance=allowance)
    if not params.passed:
        frozen = [i for i in range(len(case.params)) if _never_updated(trace, truth, case, i)]
        note = "".join(f"; param {i} was never updated: it keeps its initial values at every step, where the "
                       "oracle's moves" for i in frozen[:1])
        return CheckFailure(f"{params}{note}", [case], params, severity="parameters")
    hint = _rescaled_state(trace, truth, case)
    return CheckFailure(f"the parameters are within budget ({budget.fmt_eps(params.error)} eps vs budget "
                        f"{budget.fmt_eps(params.budget)} at worst); only the state differs: {parity}{hint}", [case],
                        parity, severity="state")


def _never_updated(trace: Trace, truth: Trace, case: Case, i: int) -> bool:
    init = case.params[i].init
    moved = any(not np.array_equal(o, init, equal_nan=True) for o in truth.params[i])
    return moved and len(trace.params[i]) > 0 and all(np.array_equal(x, init, equal_nan=True) for x in trace.params[i])


def _rescaled_state(trace: Trace, truth: Trace, case: Case) -> str:
    """'; param 0 exp_avg is the oracle's times 10 after step 1, ...' where a state tensor is
    a multiple of the oracle's, the same for every element of a snapshot: the target keeps
    another quantity under torch's key (bias-corrected moments, say)."""
    for i in range(len(case.params)):
        for key in sorted(set(truth.state[i]) & set(trace.state[i]) - {"step"}):
            factors = []
            for x, o in zip(components(trace.state[i][key]), components(truth.state[i][key])):
                use = np.isfinite(x) & np.isfinite(o) & (np.abs(o) > 0)
                ratio = x[use] / o[use]
                if ratio.size and np.ptp(ratio) <= 1e-3 * np.abs(ratio).max():
                    factors.append(float(np.median(ratio)))
                elif ratio.size:
                    break
            else:
                if factors and not np.allclose(factors, 1.0, rtol=1e-3):
                    shown = ", ".join(f"×{f:.3g} after step {t}" for f, t in zip(factors, trace.steps))
                    return (f"; param {i} {key} is the oracle's times a factor, the same for every element "
                            f"({shown}): the target keeps another quantity under torch's state key "
                            "(bias-corrected moments?)")
    return ""


def and_more(names: Sequence[str]) -> str:
    """' (and 2 more: b, c)', to follow what is said of the first of `names`."""
    return f" (and {len(names) - 1} more: {', '.join(names[1:])})" if len(names) > 1 else ""


def holds(target: Target, evidence: Evidence, prop: Callable[..., Parity | None], *args) -> None:
    """Check a property: ``prop(target, *args)`` raises CheckFailure where it does not hold
    (and may return the Parity it measured). The example is recorded in `evidence`.

    A property that torch's own single-tensor path breaks on the same input is not held
    against the target: certification means behaving like torch. It is recorded as a
    torch deviation instead, which the report shows. A failure keeps ``(prop, args)``,
    so that it can be rerun on changed Cases to find what it needs.
    """
    try:
        evidence.saw(prop(target, *args))
    except CheckFailure as failure:
        try:
            prop(target.torch(), *args)
        except CheckFailure as torch_failure:
            evidence.saw(None)
            evidence.deviates(torch_failure)
            return
        failure.retest = (prop, args)
        raise


def assert_same_trajectory(a: Trace, b: Trace, case: Case, what: str, cases: Sequence[Case],
                           allowance: Trace | None = None) -> None:
    """`a` and `b` (two runs of the target that did not raise) agree within INVARIANT_TOLERANCE
    per step, beyond what a declared state format lets the two be apart (`allowance`)."""
    allowed = INVARIANT_TOLERANCE * max(1, len(case.steps))
    for state in (False, True):  # the parameters first: a wrong parameter is the more severe finding
        error, deviations = budget.distance(a, b, case, state=state, allowance=allowance)
        severity = "state" if state else "parameters"
        if deviations:
            raise CheckFailure(f"{what}: {deviations} element(s) NaN or inf in one run and not the other", cases,
                               severity=severity)
        if error > allowed:
            raise CheckFailure(f"{what}: the runs' {'state' if state else 'parameters'} differ by {error:.3g} eps "
                               f"at scale (allowed {allowed:.3g})", cases, severity=severity)
