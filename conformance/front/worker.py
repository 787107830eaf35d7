"""The checks in one worker process, forked from the fork server (`conformance.run.forked`),
so it starts with torch imported: what a pytest-xdist worker gives (a target that crashes or
hangs in native code costs only the check it was in) without starting a Python and
importing torch again.

The controller's pytest session collects the checks and reports them (progress, JUnit XML,
the exit status) as if it had run them. `Controller` hands the checks to a worker, which
runs them in a pytest session of its own and writes each check's start and each report to
a file as a line of JSON (pytest's own serialisation, as xdist's). A worker that dies, or
says nothing for a while (`Controller.stall`), is killed; the check it was in is reported
as crashed (``when="???"``, as xdist reports a crashed worker's) and a fresh worker runs
the rest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conformance.run import forked

#: Set in a worker's environment: a process that exists to run checks, which the check time
#: limit may end if native code ignores the signal (as it ends a pytest-xdist worker).
EXPENDABLE = "ADAM_CONFORMANCE_WORKER"
#: Seconds past twice a check's limit that a worker may say nothing before it is killed: the
#: limit's own grace (`conformance.front.suite`) is at most 30 s, and a worker's start takes a few.
GRACE = 60.0


class Stalled(Exception):
    """The worker said nothing for longer than the controller waits."""


class Controller:
    """A pytest plugin for the controller: its run loop hands the checks to workers.
    `argv` is the worker's pytest command line, `limit` a check's time limit: a check stuck
    past it in native code ends its worker itself; one that says nothing for twice that and
    `GRACE` more is killed."""

    def __init__(self, argv: list[str], limit: float):
        self.argv, self.limit, self.stall = argv, limit, 2 * limit + GRACE

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        items = {item.nodeid: item for item in session.items}
        pending = list(items)
        while pending and not (session.shouldfail or session.shouldstop):
            pending = self._worker(session.config, items, pending)
        return True

    def _worker(self, config: pytest.Config, items: dict, pending: list[str]) -> list[str]:
        """Run `pending` in one worker; those it did not reach."""
        with tempfile.TemporaryDirectory(prefix="adam-conformance-worker-") as scratch:
            path = Path(scratch) / "reports"
            path.touch()
            reader = _Reader(path, config, items, self.stall)
            try:
                ended = forked.run(_work, (self.argv, pending, str(path)), watch=reader)
            except Stalled:
                ended = None
        if reader.running:
            _crashed(config, items[reader.running], self._how(ended, time.monotonic() - reader.started))
        elif not reader.finished:  # it ran nothing: pytest itself could not start
            tail = "\n".join((ended.stdout + ended.stderr).strip().splitlines()[-15:]) if ended else ""
            raise RuntimeError(f"the checks' worker ran none of them ({self._how(ended, 0.0)}):\n{tail}")
        return [nodeid for nodeid in pending if nodeid not in reader.finished and nodeid != reader.running]

    def _how(self, ended: subprocess.CompletedProcess | None, took: float) -> str:
        """How the worker ended, `took` seconds into its check, in words."""
        if ended is None:
            return f"it said nothing for {self.stall:g} s and was killed"
        if ended.returncode < 0:
            return f"killed by {signal.Signals(-ended.returncode).name}"
        if ended.returncode == 1 and took >= self.limit:  # what the limit does where its signal cannot reach
            return f"stuck {took:.0f} s, past the check's {self.limit:g} s limit, out of its signal's reach (C code)"
        return f"exit code {ended.returncode}"


class _Reader:
    """Replays the worker's lines through the controller's hooks as they come (`forked.run`'s
    watch); raises Stalled past `stall` seconds without one."""

    def __init__(self, path: Path, config: pytest.Config, items: dict, stall: float):
        self.path, self.config, self.items, self.stall = path, config, items, stall
        self.offset, self.heard = 0, time.monotonic()
        self.started = self.heard  # when the check running began
        self.running: str | None = None
        self.finished: set[str] = set()

    def __call__(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            text = f.read()
        whole = text[: text.rfind(b"\n") + 1]  # a line cut short by a crash is never read
        self.offset += len(whole)
        for line in whole.decode().splitlines():
            self._replay(json.loads(line))
        if whole:
            self.heard = time.monotonic()
        elif time.monotonic() - self.heard > self.stall:
            raise Stalled

    def _replay(self, message: dict) -> None:
        hook = self.config.hook
        if "start" in message:
            self.running, self.started = message["start"], time.monotonic()
            hook.pytest_runtest_logstart(nodeid=self.running, location=self.items[self.running].location)
            return
        data = message["report"]
        if isinstance(data["longrepr"], list):  # a skip's (path, line, reason): JSON makes the tuple a list
            data["longrepr"] = tuple(data["longrepr"])
        report = hook.pytest_report_from_serializable(config=self.config, data=data)
        hook.pytest_runtest_logreport(report=report)
        if report.when == "teardown":
            hook.pytest_runtest_logfinish(nodeid=report.nodeid, location=report.location)
            self.finished.add(report.nodeid)
            self.running = None


def _crashed(config: pytest.Config, item: pytest.Item, how: str) -> None:
    """Report `item` as xdist reports the test a worker crashed in."""
    report = pytest.TestReport(item.nodeid, item.location, {}, "failed",
                               f"its worker process crashed while running this check ({how})", "???")
    config.hook.pytest_runtest_logreport(report=report)
    config.hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)


def _work(argv: list[str], nodeids: list[str], path: str) -> int:
    """The worker: pytest with `argv`, running `nodeids` in that order, writing to `path`."""
    os.environ[EXPENDABLE] = "1"
    with open(path, "a", buffering=1) as sink:
        return pytest.main(argv, plugins=[_Sender(sink, nodeids)])


class _Sender:
    """The worker's plugin: runs only the checks handed to it, and writes their starts and
    reports, a line each."""

    def __init__(self, sink, nodeids: list[str]):
        self.sink, self.nodeids = sink, nodeids

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        self.config = config
        by_id = {item.nodeid: item for item in items}
        config.hook.pytest_deselected(items=[item for item in items if item.nodeid not in self.nodeids])
        items[:] = [by_id[nodeid] for nodeid in self.nodeids if nodeid in by_id]

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._send({"start": nodeid})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._send({"report": self.config.hook.pytest_report_to_serializable(config=self.config, report=report)})

    def _send(self, message: dict) -> None:
        self.sink.write(json.dumps(message) + "\n")
        self.sink.flush()
