"""The check catalogue as pytest tests, collected when pytest runs with ``--adam-impl``.

One test per check, ``test_check[<check id>]``. What each saw (the worst parity figures,
a torch deviation), and on failure the minimal Cases, go into the test's
``user_properties`` for reports. Each check runs under a time limit: past it the check
errors and the run goes on; a target stuck in native code past the limit and a grace
period ends its worker (certify's, `conformance.front.worker`, or pytest-xdist's), which is
replaced.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import threading

import numpy as np
import pytest

from conformance.cases.case import Case, Group, Param, Step
from conformance.checks import CATALOGUE, CheckFailure, CheckSkipped, run_check
from conformance.checks.catalogue import CheckTimeout
from conformance.front.plugin import TARGET, database_dir
from conformance.front.worker import EXPENDABLE
from conformance.report import records
from conformance.run import distributed, pool

#: How a check skipped on request reads in every report.
ON_REQUEST = "skipped on request (--skip)"


@pytest.fixture(scope="session", autouse=True)
def warm_up(request: pytest.FixtureRequest) -> None:
    """Run torch's reference path once before any time limit starts: torch imports much of
    itself lazily, and an import interrupted by the limit would break the process."""
    target = request.config.stash[TARGET]
    case = Case(target.spec, (Param(np.ones(2)),), (Group((0,)),), (Step((np.ones(2),)),))
    target.torch().run(case)


@pytest.fixture(scope="session", autouse=True)
def process_pools():
    """Close the process pools a distributed target ran on, after the last check."""
    yield
    pool.close_all()


@pytest.mark.parametrize("check_id", sorted(CATALOGUE))
def test_check(check_id: str, request: pytest.FixtureRequest, record_property) -> None:
    config = request.config
    target = config.stash[TARGET]
    chk = CATALOGUE[check_id]
    if check_id in config.getoption("adam_skip"):
        pytest.skip(ON_REQUEST)
    unmet = chk.unmet(target)
    if unmet:
        pytest.skip(unmet)
    try:
        with time_limit(config.getoption("adam_check_timeout")):
            evidence = run_check(chk, target, config.getoption("adam_seed"), database_dir(config))
    except CheckSkipped as e:
        pytest.skip(str(e))
    except CheckFailure as failure:
        record_property("adam_failure", records.failure_record(failure))
        raise
    except CheckTimeout as e:
        record_property("adam_error", str(e))
        pytest.fail(str(e), pytrace=False)
    except Exception as e:  # the target broke the machinery itself: an error, not a verdict
        record_property("adam_error", f"{type(e).__name__}: {e}")
        raise
    record_property("adam_evidence", records.evidence_record(evidence))


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise CheckTimeout in the block after `seconds` (main thread, POSIX); in a worker (certify's,
    or pytest-xdist's), also end the worker if native code ignores the signal."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expire(signum, frame):
        raise CheckTimeout(f"timed out: the check ran past its {seconds:g} s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    if os.environ.get("PYTEST_XDIST_WORKER") or os.environ.get(EXPENDABLE):  # grace, then end a worker stuck in C
        faulthandler.dump_traceback_later(seconds + min(30.0, max(5.0, seconds)), exit=True)
    try:
        with distributed.deadline(seconds):  # a hung rank is named before the limit strikes
            yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()
