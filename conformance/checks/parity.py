"""Parity: trajectories match the oracle within the error budget."""

from __future__ import annotations

from conformance.checks.assertions import and_more, holds, within_budget
from conformance.checks.catalogue import CheckFailure, CheckSkipped, Evidence, check
from conformance.run.target import Target
from conformance.truth import budget, golden
from conformance.vocabulary import SEVERITIES


@check(
    "parity.trajectory",
    "Every parameter and state tensor follows the oracle's trajectory, for the target's spec, "
    "within the error budget set by torch's single-tensor path. A target that declares a low-precision "
    "state is drawn a first parameter large enough to be stored in it, and allowed what its format implies.",
)
def trajectory(target: Target, evidence: Evidence, data) -> None:
    big = target.precision.from_elements if target.precision else 0
    holds(target, evidence, within_budget, data.draw(target.cases(big=big), label="case"))


@check(
    "parity.long-horizon",
    "Resumed from a torch state_dict saved after step 2047 or 10^6, every parameter and state tensor stays "
    "within the error budget: step counters and bias corrections hold late in training.",
)
def long_horizon(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, within_budget, data.draw(target.cases(resume=True), label="case"))


@check(
    "parity.golden",
    "Every golden trace the target can run (its claims, spec and profile) is reproduced "
    "within the error budget.",
    drawn=False,
)
def golden_traces(target: Target, evidence: Evidence, data) -> None:
    failures, ran = [], 0
    for name, case, oracle_trace in golden.load_all():
        if (case.spec != target.spec or not target.accepts(case)
                or len(case.steps) > target.profile.golden_steps
                or (case.objective is not None and not target.profile.closed_loop)):
            continue
        ran += 1
        try:
            evidence.saw(within_budget(target, case, oracle_trace))
        except CheckFailure as failure:
            failures.append((name, failure))
    if not ran:
        raise CheckSkipped(f"no golden scenario fits spec {target.spec}, the claims and the {target.profile.name} "
                           "profile")
    if failures:
        # The most severe first (a wrong parameter before a wrong state tensor), then the farthest over budget.
        rank = list(SEVERITIES)
        failures.sort(key=lambda f: (rank.index(f[1].severity), -_over(f[1].parity)))
        name, worst = failures[0]
        others = and_more([n for n, _ in failures])
        failure = CheckFailure(f"golden {name}: {worst}{others}", worst.cases, worst.parity, severity=worst.severity)
        failure.retest = (_reproduces, (worst.cases[0], name, others))
        raise failure


def _reproduces(target: Target, case, name: str, others: str) -> budget.Parity | None:
    """`within_budget` for a golden scenario's Case, as the failure names it. (An ablated
    Case is no golden one: the oracle computes its truth.)"""
    try:
        return within_budget(target, case)
    except CheckFailure as failure:
        raise CheckFailure(f"golden {name}: {failure}{others}", failure.cases, failure.parity,
                           severity=failure.severity) from None


def _over(parity: budget.Parity | None) -> float:
    return 0.0 if parity is None else parity.error / parity.budget
