"""What a check is, what it runs against, and how it runs.

A `Check` has a stable id (``parity.trajectory``), a one-sentence statement of the
property, and the features it needs: a target that does not claim them skips the check
with that reason. Its body draws Cases from `conformance.strategies` through a
hypothesis ``data`` object, runs the `Target`, and raises `CheckFailure` (carrying the
Cases that show the failure) when the property does not hold. `run_check` runs one
check under a `Profile`; pytest (directly or through the plugin) runs every check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

from hypothesis import HealthCheck, Phase, errors, given, seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from conformance import budget, oracle
from conformance.budget import Parity
from conformance.case import Case, Trace
from conformance.target import Target


class CheckFailure(AssertionError):
    """The property does not hold. `cases` are the Cases that show it (minimal, once shrunk)."""

    def __init__(self, message: str, cases: Sequence[Case] = (), parity: Parity | None = None, repro: dict | None = None):
        super().__init__(message)
        self.cases = tuple(cases)
        self.parity = parity
        #: How a reproducer shows it (see conformance.repro_runtime); None: side by side with torch.
        self.repro = repro


class CheckSkipped(Exception):
    """The check cannot observe this target (it keeps no such state, say). Skipped, not failed."""


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


def run_against_torch(target: Target, case: Case) -> tuple[Trace, list[Trace]]:
    """The target's trace and torch's; fails if only the target raised."""
    trace, refs = target.run(case), target.references(case)
    if trace.error and not refs[0].error:
        torch_name = "AdamW" if target.spec == "adamw" else "Adam"
        raise CheckFailure(f"{target.impl.name} raised where torch.optim.{torch_name} did not: {trace.error}", [case])
    return trace, refs


def judge(target: Target, case: Case) -> Parity | None:
    """Parity of the target with the oracle on `case` (None when torch raises too)."""
    trace, refs = run_against_torch(target, case)
    if refs[0].error:
        return None
    return budget.judge(trace, refs, oracle.run(case), case)


def holds(target: Target, evidence: Evidence, verify: Callable[..., None], *args) -> None:
    """Check a property with ``verify(target, *args)`` (which raises CheckFailure).

    A property that torch's own single-tensor path breaks on the same input is not held
    against the target: certification means behaving like torch. It is recorded as a
    torch deviation instead, which the report shows.
    """
    try:
        verify(target, *args)
    except CheckFailure:
        try:
            verify(target.torch(), *args)
        except CheckFailure as torch_failure:
            evidence.deviates(torch_failure)
            return
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

    def unclaimed(self, target: Target) -> frozenset[str]:
        return self.needs - target.claims


CATALOGUE: dict[str, Check] = {}


def check(id: str, statement: str, needs: Sequence[str] = (), drawn: bool = True) -> Callable[[CheckBody], CheckBody]:
    """Register a check under a stable id."""
    def register(body: CheckBody) -> CheckBody:
        if id in CATALOGUE:
            raise ValueError(f"duplicate check id {id}")
        CATALOGUE[id] = Check(id, statement, frozenset(needs), body, drawn)
        return body

    return register


def run_check(chk: Check, target: Target, seed_value: int = 0, database: Path | None = None) -> Evidence:
    """Run `chk` against `target` under its profile. Raises CheckFailure or CheckSkipped."""
    evidence = Evidence()
    if not chk.drawn:
        chk.body(target, evidence, None)
        return evidence

    @seed(seed_value)
    @settings(
        max_examples=target.profile.examples,
        deadline=None,
        database=DirectoryBasedExampleDatabase(str(database / chk.id)) if database else None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.large_base_example],
        report_multiple_bugs=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    )
    @given(st.data())
    def examples(data):
        chk.body(target, evidence, data)

    try:
        examples()
    except errors.FlakyFailure as flaky:  # the same example failed, then passed on replay
        failures = [e for e in flaky.exceptions if isinstance(e, CheckFailure)]
        first = failures[0] if failures else flaky.exceptions[0]
        raise CheckFailure(f"nondeterministic: an example that failed passed on replay; it failed with: {first}",
                           getattr(first, "cases", ())) from None
    return evidence


def assert_same_trajectory(a: Trace, b: Trace, case: Case, what: str, cases: Sequence[Case]) -> None:
    """`a` and `b` (two runs of the target that did not raise) agree within INVARIANT_TOLERANCE per step."""
    error, deviations = budget.distance(a, b, case)
    allowed = INVARIANT_TOLERANCE * max(1, len(case.steps))
    if deviations:
        raise CheckFailure(f"{what}: {deviations} element(s) NaN or inf in one run and not the other", cases)
    if error > allowed:
        raise CheckFailure(f"{what}: the runs differ by {error:.3g} eps at scale (allowed {allowed:.3g})", cases)


#: How far apart two runs of one implementation may be when an invariant says they are
#: equal, in eps at scale per step. They compute the same elementwise arithmetic on the
#: same values; they can differ only where the implementation's arithmetic depends on an
#: element's position or a tensor's grouping (a vector body and a scalar tail, fused
#: multiply-add or not, another kernel for another dtype mix), by a rounding or two per
#: operation: the budget's FLOOR per step bounds that.
INVARIANT_TOLERANCE = budget.FLOOR
