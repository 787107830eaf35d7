"""Shared fixtures for the project's own tests."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: half as many workers again as cores. The tests wait part of their time on
    subprocesses, ranks and planted hangs; an extra worker fills it. Measured on 2 cores, the whole
    command, one run each: 2 workers 687 s, 3 workers 635 s (the cores 95% busy), 4 workers 629 s."""
    cores = os.cpu_count() or 1
    return cores + cores // 2


def pytest_configure(config):
    """Under pytest-xdist, each worker gets its share of the cores for torch's threads, and so
    do the processes it starts (certify runs, ranks): N workers, each on all the cores, would
    oversubscribe them. Measured on 2 cores (tests/test_impls.py and tests/test_oracle.py):
    -n 2 takes 113 s with 2 threads a worker, 100 s with 1."""
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a module into a fresh directory on sys.path and return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark the tests tests/known.py lists as strict expected failures; an entry that names a
    collected test function but matches none of its runs is stale, and fails the run. They
    were measured on the CPU: on another device none is known, so every test asserts outright."""
    from tests.known import DEVICE, KNOWN_FAILURES, matches

    if DEVICE != "cpu":
        return
    used, collected = set(), {item.originalname for item in items}
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = {str(v) for v in callspec.params.values()} if callspec else set()
        for key, reason in KNOWN_FAILURES.items():
            if matches(key, item.originalname, params):
                item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
                used.add(key)
    stale = [key for key in KNOWN_FAILURES if key[0] in collected and key not in used]
    if stale:
        raise pytest.UsageError(f"tests/known.py: {len(stale)} known failure(s) match no test: {stale}")
