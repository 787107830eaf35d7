"""Processes forked from the fork server: what `run` returns of them, and what it guarantees."""

import os
import subprocess
import sys
import time

import pytest

from conformance.run import forked
from conformance.run.processes import alive

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _speaks(code):
    print("from Python")
    os.write(1, b"from C\n")  # below sys.stdout, as a kernel's or a compiler's output is
    os.write(2, b"to stderr\n")
    return code


def _raises():
    raise ValueError("a target's bug")


def _exits(message):
    sys.exit(message)


def _what_it_sees():
    print("torch._dynamo" in sys.modules, os.getcwd(), os.environ.get("ADAM_FORKED_TEST"), sys.path[-1])
    return 0


def _hangs_with_a_child(pidfile):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(pidfile, "w") as f:
        f.write(str(child.pid))
    time.sleep(600)


def test_the_exit_code_and_all_output_come_back():
    done = forked.run(_speaks, (3,))
    assert done.returncode == 3
    assert done.stdout.splitlines() == ["from Python", "from C"] and done.stderr == "to stderr\n"


def test_an_exception_is_exit_1_with_its_traceback_and_a_message_exit_is_1_with_the_message():
    raised = forked.run(_raises)
    assert raised.returncode == 1 and "ValueError: a target's bug" in raised.stderr and "Traceback" in raised.stderr
    said = forked.run(_exits, ("one line why",))
    assert said.returncode == 1 and said.stderr.strip() == "one line why"


def test_the_child_has_torch_imported_and_the_callers_directory_environment_and_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ADAM_FORKED_TEST", "set after the server started")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "path", [*sys.path, "/a/folder/only/the/caller/has"])
    seen = forked.run(_what_it_sees).stdout.split()
    assert seen == ["True", str(tmp_path), "set", "after", "the", "server", "started", "/a/folder/only/the/caller/has"]


def test_past_its_time_limit_it_is_killed_with_what_it_started(tmp_path):
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        forked.run(_hangs_with_a_child, (str(pidfile),), timeout=3)
    assert time.monotonic() - started < 30
    grandchild = int(pidfile.read_text())
    for _ in range(50):  # the kill is delivered at once; reaping the orphan may take a moment
        if not alive(grandchild):
            break
        time.sleep(0.1)
    assert not alive(grandchild)


@pytest.mark.e2e
def test_a_long_tmpdir_does_not_stop_the_server(tmp_path):
    """multiprocessing's sockets live in TMPDIR, and a Unix socket's path has at most 107 bytes."""
    deep = tmp_path / ("a-long-folder-name-" * 6)
    deep.mkdir()
    done = subprocess.run([sys.executable, "-c", "from conformance.run import forked; from tests.test_forked import "
                           "_speaks; print(forked.run(_speaks, (0,)).stdout, end='')"],
                          env={**os.environ, "TMPDIR": str(deep)}, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.splitlines() == ["from Python", "from C"], done.stderr



def test_watch_is_called_while_it_runs_and_what_it_raises_kills_it(tmp_path):
    pidfile, calls = tmp_path / "pid", []

    def watch():
        calls.append(time.monotonic())
        if pidfile.exists() and len(calls) > 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        forked.run(_hangs_with_a_child, (str(pidfile),), timeout=60, watch=watch)
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        if not alive(grandchild):
            break
        time.sleep(0.1)
    assert not alive(grandchild) and len(calls) > 3
    ended = []
    assert forked.run(_speaks, (0,), watch=lambda: ended.append(1)).returncode == 0 and ended  # once after the end
