"""The check catalogue as pytest tests, collected when pytest runs with ``--adam-impl``.

One test per check, ``test_check[<check id>]``. What each saw (the worst parity figures,
a torch deviation) and, on failure, the minimal Cases go into the test's
``user_properties`` for reports.
"""

from __future__ import annotations

import pytest

from conformance import report
from conformance.checks import CATALOGUE, CheckFailure, CheckSkipped, run_check
from conformance.plugin import TARGET, database_dir


@pytest.mark.parametrize("check_id", sorted(CATALOGUE))
def test_check(check_id: str, request: pytest.FixtureRequest, record_property) -> None:
    config = request.config
    target = config.stash[TARGET]
    chk = CATALOGUE[check_id]
    unclaimed = chk.unclaimed(target)
    if unclaimed:
        pytest.skip(f"not claimed: {', '.join(sorted(unclaimed))}")
    try:
        evidence = run_check(chk, target, config.getoption("adam_seed"), database_dir(config))
    except CheckSkipped as e:
        pytest.skip(str(e))
    except CheckFailure as failure:
        record_property("adam_failure", report.failure_record(failure))
        raise
    record_property("adam_evidence", report.evidence_record(evidence))
