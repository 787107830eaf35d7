"""Running a check: the covering examples (every branch the target claims, at every
profile), then the random ones, under the target's profile; a failure shrunk by hypothesis
to a minimal Case and explained by `ablation`. A sharded target's rank that hangs fails the check at once, with
the Case cut after the step it hung in (`distributed.Hung`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import HealthCheck, Phase, errors, given, seed, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from conformance.cases import strategies
from conformance.checks import ablation
from conformance.checks.assertions import completed
from conformance.checks.catalogue import Check, CheckFailure, Evidence
from conformance.run import distributed
from conformance.run.target import Target
from conformance.vocabulary import NONDETERMINISTIC


def run_check(chk: Check, target: Target, seed_value: int = 0, database: Path | None = None,
              explain: bool = True) -> Evidence:
    """Run `chk` against `target` under its profile: the covering examples, then the random
    ones. Raises CheckFailure or CheckSkipped. A failure is shrunk to a minimal Case and
    explained by ablation, unless `explain` is False (a verdict is all the kill matrix needs)."""
    evidence = Evidence()
    try:
        if not chk.drawn:
            chk.body(target, evidence, None)
            return evidence
        for plan in strategies.covering_plans(target.claims, target.spec):
            _examples(chk, dataclasses.replace(target, plan=plan), evidence, 1, seed_value, None, explain)
        _examples(chk, target, evidence, target.profile.examples, seed_value, database, explain)
    except CheckFailure as failure:
        if failure.retest is None or not explain or not failure.ablate:
            raise
        raise ablation.explain(target, failure) from None
    except distributed.Hung as hung:  # named where it hung, the Case cut there
        failure = CheckFailure(str(hung), [hung.case], severity="api")
        failure.retest = (completed, (hung.case,))
        raise ablation.explain(target, failure) if explain else failure from None
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
        raise CheckFailure(f"{NONDETERMINISTIC} an example that failed passed on replay; it failed with: {first}",
                           getattr(first, "cases", ())) from None


