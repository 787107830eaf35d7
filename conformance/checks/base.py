"""What a check is, what it runs against, and how it runs.

A `Check` has a stable id (``parity.trajectory``), a one-sentence statement of the
property, and the features it needs: a target that does not claim them skips the check
with that reason. Its body draws Cases from `conformance.strategies` through a
hypothesis ``data`` object and hands each, with the property, to `holds`, which runs the
`Target` and raises `CheckFailure` (carrying the Cases that show the failure, how severe
it is, and how to rerun it) when the property does not hold. `run_check` runs one check
under a `Profile`: first the covering examples (every branch the target claims, at every
profile), then the random ones; a failure is explained by ablation
(`conformance.checks.ablation`). pytest (directly or through the plugin) runs every check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, Phase, errors, given, seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from conformance import budget, oracle, strategies
from conformance.budget import Parity
from conformance.dtypes import components
from conformance.case import Case, Trace
from conformance.registry import EDGES, SEVERITIES
from conformance.target import Target

class CheckFailure(AssertionError):
    """The property does not hold. `cases` are the Cases that show it (minimal, once shrunk)."""

    def __init__(self, message: str, cases: Sequence[Case] = (), parity: Parity | None = None,
                 repro: dict | None = None, severity: str = "parameters"):
        super().__init__(message)
        self.cases = tuple(cases)
        self.parity = parity
        #: How a reproducer shows it (see conformance.repro_runtime); None: side by side with torch.
        self.repro = repro
        self.severity = severity
        #: (property, args): `holds` fills it, so that the failure can be rerun on changed Cases.
        self.retest: tuple[Callable, tuple] | None = None
        #: What the minimal Case needs for the failure to show (`ablation.explain`).
        self.necessary: list[str] | None = None


class CheckSkipped(Exception):
    """The check cannot observe this target (it keeps no such state, say). Skipped, not failed."""


class CheckTimeout(BaseException):
    """The check ran past its time limit (a BaseException: hypothesis must not shrink it)."""


class Evidence:
    """What a check saw across its examples, for the report: the worst parity verdict,
    and the smallest example where torch itself breaks the property."""

    def __init__(self) -> None:
        self.parity: Parity | None = None
        self.examples = 0
        self.torch_deviation: CheckFailure | None = None

    def saw(self, parity: Parity | None) -> None:
        self.examples += 1
        if parity is not None and (self.parity is None or parity.error / parity.budget > self.parity.error / self.parity.budget):
            self.parity = parity

    def deviates(self, failure: CheckFailure) -> None:
        size = lambda f: sum(len(c.steps) * sum(p.init.size for p in c.params) for c in f.cases)  # noqa: E731
        if self.torch_deviation is None or size(failure) < size(self.torch_deviation):
            self.torch_deviation = failure


def torch_name(spec: str) -> str:
    return f"torch.optim.{'AdamW' if spec == 'adamw' else 'Adam'}"


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
        raise CheckFailure(f"{target.impl.name} raised where {torch_name(target.spec)} did not: {trace.error}", [case],
                           severity="api")
    return trace, refs


def within_budget(target: Target, case: Case, truth: Trace | None = None) -> Parity | None:
    """The property of parity: the target's run of `case` is within the error budget of the
    oracle's (or of `truth`, a golden trace). Returns the verdict (None when torch raises too)."""
    trace, refs = run_against_torch(target, case)
    if refs[0].error:
        return None
    truth = truth or oracle.run(case)
    parity = budget.judge(trace, refs, truth, case)
    if not parity.passed:
        raise _parity_failure(parity, trace, refs, truth, case)
    return parity


def _parity_failure(parity: Parity, trace: Trace, refs: list[Trace], truth: Trace, case: Case) -> CheckFailure:
    """The failure of an over-budget run, led by what matters most: a wrong parameter
    (one never updated says so), else the state alone, with what it may hold instead."""
    params = budget.judge(trace, refs, truth, case, state=False)
    if not params.passed:
        frozen = [i for i in range(len(case.params)) if _never_updated(trace, truth, case, i)]
        note = "".join(f"; param {i} was never updated: it keeps its initial values at every step, where the "
                       "oracle's moves" for i in frozen[:1])
        return CheckFailure(f"{params}{note}", [case], params, severity="parameters")
    hint = _rescaled_state(trace, truth, case)
    return CheckFailure(f"the parameters are within budget ({budget.fmt_eps(params.error)} eps vs budget {budget.fmt_eps(params.budget)} "
                        f"at worst); only the state differs: {parity}{hint}", [case], parity, severity="state")


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


CheckBody = Callable[[Target, Evidence, st.DataObject], None]


@dataclasses.dataclass(frozen=True)
class Check:
    id: str
    statement: str
    needs: frozenset[str]
    body: CheckBody
    #: Whether the body draws examples; a fixed procedure (the golden traces) runs once.
    drawn: bool = True

    def unmet(self, target: Target) -> str | None:
        """Why the check cannot run on `target` (None: it can): a feature it needs that the
        target does not claim, or one it claims but rejects, or an edge of the valid range
        (`registry.EDGES`) that it rejects."""
        unclaimed = sorted(self.needs - target.impl.claims - set(EDGES))
        if unclaimed:
            return f"not claimed: {', '.join(unclaimed)}"
        rejected = sorted(self.needs & target.avoid)
        if rejected:
            return f"the target rejects {', '.join(rejected)} (contract.accepts-valid fails on it)"
        return None


CATALOGUE: dict[str, Check] = {}


def check(id: str, statement: str, needs: Sequence[str] = (), drawn: bool = True) -> Callable[[CheckBody], CheckBody]:
    """Register a check under a stable id."""
    def register(body: CheckBody) -> CheckBody:
        if id in CATALOGUE:
            raise ValueError(f"duplicate check id {id}")
        CATALOGUE[id] = Check(id, statement, frozenset(needs), body, drawn)
        return body

    return register


def run_check(chk: Check, target: Target, seed_value: int = 0, database: Path | None = None,
              explain: bool = True) -> Evidence:
    """Run `chk` against `target` under its profile: the covering examples, then the random
    ones. Raises CheckFailure or CheckSkipped. A failure is shrunk to a minimal Case and
    explained by ablation, unless `explain` is False (a verdict is all the kill matrix needs)."""
    from conformance.checks import ablation

    evidence = Evidence()
    try:
        if not chk.drawn:
            chk.body(target, evidence, None)
            return evidence
        for plan in strategies.covering_plans(target.claims, target.spec):
            _examples(chk, dataclasses.replace(target, plan=plan), evidence, 1, seed_value, None, explain)
        _examples(chk, target, evidence, target.profile.examples, seed_value, database, explain)
    except CheckFailure as failure:
        if failure.retest is None or not explain:
            raise
        raise ablation.explain(target, failure) from None
    return evidence


def _examples(chk: Check, target: Target, evidence: Evidence, count: int, seed_value: int,
              database: Path | None, shrink: bool) -> None:
    """`count` examples of `chk` drawn by hypothesis (shrunk to a minimal one on failure if `shrink`)."""
    @seed(seed_value)
    @settings(
        max_examples=count,
        deadline=None,
        database=DirectoryBasedExampleDatabase(str(database / chk.id)) if database else None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate] + [Phase.shrink] * shrink,
    )
    @given(st.data())
    def examples(data):
        chk.body(target, evidence, data)

    try:
        examples()
    except errors.Unsatisfiable:  # a covering plan this check's draws cannot take
        if count > 1:
            raise
    except errors.FlakyFailure as flaky:  # the same example failed, then passed on replay
        failures = [e for e in flaky.exceptions if isinstance(e, CheckFailure)]
        first = failures[0] if failures else flaky.exceptions[0]
        raise CheckFailure(f"nondeterministic: an example that failed passed on replay; it failed with: {first}",
                           getattr(first, "cases", ())) from None


#: How far apart two runs of one implementation may be when an invariant says they are
#: equal, in eps at scale per step. They compute the same elementwise arithmetic on the
#: same values; they can differ only where the implementation's arithmetic depends on an
#: element's position or a tensor's grouping (a vector body and a scalar tail, fused
#: multiply-add or not, another kernel for another dtype mix), by a rounding or two per
#: operation: the budget's FLOOR per step bounds that.
INVARIANT_TOLERANCE = budget.FLOOR


def assert_same_trajectory(a: Trace, b: Trace, case: Case, what: str, cases: Sequence[Case]) -> None:
    """`a` and `b` (two runs of the target that did not raise) agree within INVARIANT_TOLERANCE per step."""
    allowed = INVARIANT_TOLERANCE * max(1, len(case.steps))
    for state in (False, True):  # the parameters first: a wrong parameter is the more severe finding
        error, deviations = budget.distance(a, b, case, state=state)
        severity = "state" if state else "parameters"
        if deviations:
            raise CheckFailure(f"{what}: {deviations} element(s) NaN or inf in one run and not the other", cases,
                               severity=severity)
        if error > allowed:
            raise CheckFailure(f"{what}: the runs' {'state' if state else 'parameters'} differ by {error:.3g} eps "
                               f"at scale (allowed {allowed:.3g})", cases, severity=severity)
