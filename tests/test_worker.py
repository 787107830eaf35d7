"""certify's worker (`conformance.front.worker`): the controller's pytest session reports what
a forked worker ran, and a worker that dies or falls silent costs only the test it was in."""

import pytest

from conformance.front import worker

TESTS = '''
import os, time
import pytest

def test_passes():
    pass

def test_crashes():
    os._exit(3)

def test_is_skipped():
    pytest.skip("not here")

def test_fails():
    assert 1 == 2

def test_falls_silent():
    time.sleep(600)

def test_passes_after():
    pass
'''


class Seen:
    """The controller's reports, as a plugin such as certify's collector sees them."""

    def __init__(self):
        self.reports = {}

    def pytest_runtest_logreport(self, report):
        if report.when in ("call", "???") or report.outcome != "passed":
            self.reports[report.nodeid.split("::")[-1]] = report


def test_a_crash_and_a_silence_cost_their_test_and_the_rest_run(tmp_path, monkeypatch):
    monkeypatch.setattr(worker, "GRACE", 8.0)  # silent for 2 * limit + GRACE: 10 s (a worker starts in 1-3)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_some.py").write_text(TESTS)
    argv = [str(tmp_path / "test_some.py"), "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path),
            "-p", "no:cacheprovider", "-p", "no:randomly", "-q", "-n", "0"]
    seen = Seen()
    code = pytest.main([*argv, "--junitxml", str(tmp_path / "junit.xml")],
                       plugins=[worker.Controller(argv, limit=1.0), seen])
    outcomes = {name: report.outcome for name, report in seen.reports.items()}
    assert outcomes == {"test_passes": "passed", "test_crashes": "failed", "test_is_skipped": "skipped",
                        "test_fails": "failed", "test_falls_silent": "failed", "test_passes_after": "passed"}
    assert "crashed while running this check (exit code 3)" in str(seen.reports["test_crashes"].longrepr)
    assert "said nothing for 10 s and was killed" in str(seen.reports["test_falls_silent"].longrepr)
    assert seen.reports["test_fails"].when == "call" and code == 1
    junit = (tmp_path / "junit.xml").read_text()
    assert 'tests="6"' in junit and 'errors="2"' in junit and 'failures="1"' in junit and 'skipped="1"' in junit
