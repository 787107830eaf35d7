"""The blind red team's zoo (tests/redteam): every bug is rejected at the quick profile, each by
a check that fails on it, and every correct variant written the same way is certified: no
false alarm. The targets are taken as certify takes them (their names, the preflight)."""

from __future__ import annotations

import pytest

from conformance import resolve
from conformance.checks import CATALOGUE, CheckFailure, run_check
from conformance.run import pool, preflight
from conformance.run.target import Target
from conformance.vocabulary import PROFILES
from tests.redteam import ENTRIES

#: The order a bug is looked for in: the cheapest checks first (one Case, no reference run).
ORDER = sorted(CATALOGUE, key=lambda c: (not c.startswith("contract."), c.startswith("sharded."), c))
#: The whole red team takes five minutes and more on two cores (4 to 30 s a correct variant): the
#: fast inner loop (``-m "not slow"``) rejects three bugs found within a second, and the rest are
#: marked slow.
FAST = {"single.rt_closure_nograd", "single.rt_hf_adamw", "single.rt_default_dtype"}

pytestmark = pytest.mark.zoo


def _entries(kind: str) -> list:
    return [pytest.param(e, id=e.module, marks=() if e.module in FAST else pytest.mark.slow)
            for e in ENTRIES if e.kind == kind]


def _target(entry) -> Target:
    impl = resolve(entry.target)
    target = Target(impl, entry.spec, "cpu", PROFILES["quick"], world_size=entry.world_size)
    return preflight.run(target).apply(target)


@pytest.fixture(autouse=True)
def fresh_ranks():
    yield
    pool.close_all()


@pytest.mark.parametrize("entry", _entries("bug"))
def test_every_red_team_bug_is_rejected(entry):
    target = _target(entry)
    for check_id in ORDER:
        if CATALOGUE[check_id].unmet(target) is None:
            try:
                run_check(CATALOGUE[check_id], target, explain=False)
            except CheckFailure:
                return
    pytest.fail(f"certified at quick, though {entry.why}")


@pytest.mark.parametrize("entry", _entries("correct"))
def test_every_red_team_correct_variant_is_certified(entry):
    target = _target(entry)
    failed = {}
    for check_id in ORDER:
        if CATALOGUE[check_id].unmet(target) is None:
            try:
                run_check(CATALOGUE[check_id], target, explain=False)
            except CheckFailure as failure:
                failed[check_id] = str(failure).splitlines()[0]
    assert not failed, failed
