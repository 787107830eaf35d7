"""Parity: trajectories match the oracle within the error budget."""

from __future__ import annotations

from conformance import budget, golden
from conformance.checks.base import CheckFailure, CheckSkipped, Evidence, Target, check, judge, run_against_torch


@check(
    "parity.trajectory",
    "Every parameter and state tensor follows the oracle's trajectory, for the target's spec, "
    "within the error budget set by torch's single-tensor path.",
)
def trajectory(target: Target, evidence: Evidence, data) -> None:
    within_budget(target, evidence, data.draw(target.cases(), label="case"))


def within_budget(target: Target, evidence: Evidence, case) -> None:
    """The target's run of `case` is within the error budget of the oracle's."""
    parity = judge(target, case)
    evidence.saw(parity)
    if parity is not None and not parity.passed:
        raise CheckFailure(f"{parity}", [case], parity)


@check(
    "parity.golden",
    "Every golden trace the target can run (its claims, spec and profile) is reproduced "
    "within the error budget.",
    drawn=False,
)
def golden_traces(target: Target, evidence: Evidence, data) -> None:
    failures, ran = [], 0
    for name, case, oracle_trace in golden.load_all():
        if (case.spec != target.spec or case.features() - target.claims
                or len(case.steps) > target.profile.golden_steps
                or (case.objective is not None and not target.profile.closed_loop)):
            continue
        ran += 1
        trace, refs = run_against_torch(target, case)
        parity = budget.judge(trace, refs, oracle_trace, case)
        evidence.saw(parity)
        if not parity.passed:
            failures.append((name, case, parity))
    if not ran:
        raise CheckSkipped(f"no golden scenario fits spec {target.spec}, the claims and the {target.profile.name} profile")
    if failures:
        name, case, parity = failures[0]
        others = f" (and {len(failures) - 1} more: {', '.join(n for n, _, _ in failures[1:])})" if len(failures) > 1 else ""
        raise CheckFailure(f"golden {name}: {parity}{others}", [case], parity)
