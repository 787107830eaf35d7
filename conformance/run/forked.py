"""Processes forked from multiprocessing's fork server, which imports torch once.

A fresh ``python`` process spends about 3 s importing torch and the compiler stack that
torch.optim loads on its first step; a process forked from the server starts in
milliseconds with both imported, yet shares nothing with its caller: a target that hangs,
crashes or changes global state there costs only that process. The server is started on
first use and ends with the process that started it. A process forked from it that forks
again starts a server of its own.

`run` calls a function in such a process, as `subprocess.run` runs a command: its exit
code, and what it wrote to file descriptors 1 and 2 (C code included), whole.
"""

from __future__ import annotations

import atexit
import math
import multiprocessing
import multiprocessing.forkserver
import multiprocessing.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

#: Seconds between the calls of `run`'s ``watch``.
WATCH = 0.1
#: What the server imports once, for every process it forks: torch, the compiler stack that
#: torch.optim imports on the first step, torch's distributed modules that sharded
#: optimizers are built from, the module a rank of a pool runs, and the check suite that
#: certify's worker runs (with hypothesis and pytest).
PRELOAD = ["torch", "torch._dynamo", "torch.distributed", "torch.distributed.tensor", "torch.distributed.fsdp",
           "torch.distributed.optim", "conformance.run.rank", "conformance.front.suite"]


def context():
    """multiprocessing's fork-server context, its server preloading `PRELOAD`."""
    _short_temp_dir()
    server = multiprocessing.get_context("forkserver")
    server.set_forkserver_preload(PRELOAD)
    return server


def _short_temp_dir() -> None:
    """Give multiprocessing a folder for its sockets where their paths fit (a Unix socket's path
    is at most 107 bytes): under a long TMPDIR (pytest's, say) the server could not listen."""
    if len(tempfile.gettempdir()) > 60 and os.path.isdir("/tmp"):
        saved, tempfile.tempdir = tempfile.tempdir, "/tmp"
        try:
            multiprocessing.util.get_temp_dir()  # made once, then kept for the process
        finally:
            tempfile.tempdir = saved


def start() -> None:
    """Start the server now (it imports in the background, beside what the caller does)."""
    context()
    multiprocessing.forkserver.ensure_running()


def run(function, args: tuple = (), timeout: float | None = None, watch=None) -> subprocess.CompletedProcess:
    """``function(*args)`` (a module-level function that returns an exit code) in a process
    forked from the server, in this process's directory, environment and import path.
    Returns its exit code (negative: killed by that signal; an exception: 1, its traceback
    on stderr) and its output. Past `timeout` seconds it is killed, with whatever it started,
    and subprocess.TimeoutExpired raised. ``watch()``, if given, is called every `WATCH`
    seconds while it runs and once after it ends; an exception it raises (or any other while
    waiting, KeyboardInterrupt included) kills the process and goes on up."""
    with tempfile.TemporaryDirectory(prefix="adam-conformance-forked-") as scratch:
        out, err = Path(scratch) / "stdout", Path(scratch) / "stderr"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        child = context().Process(target=_main, args=(function, args, os.getcwd(), sys.path, env, out, err),
                                  name=f"adam-conformance-{getattr(function, '__name__', 'forked')}", daemon=False)
        child.start()
        try:
            _wait(child, math.inf if timeout is None else timeout, watch or (lambda: None))
            ended = child.exitcode is not None
        finally:  # past its time, or the wait interrupted: it goes, with what it started
            if child.exitcode is None:
                _kill(child.pid)
                child.join()
        if not ended:
            raise subprocess.TimeoutExpired(function.__name__, timeout, _read(out), _read(err))
        return subprocess.CompletedProcess(function.__name__, child.exitcode, _read(out), _read(err))


def _wait(child, timeout: float, watch) -> None:
    """Until `child` ends or `timeout` seconds pass, calling ``watch()`` every `WATCH` seconds."""
    deadline = time.monotonic() + timeout
    while child.exitcode is None and time.monotonic() < deadline:
        child.join(min(WATCH, deadline - time.monotonic()))
        watch()


def _main(function, args, cwd, path, env, out, err) -> None:
    """The forked process: a session of its own (so `_kill` reaches what it starts), output
    to `out` and `err`, the caller's directory, import path and environment."""
    os.setsid()
    for fd, name in ((1, out), (2, err)):
        opened = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdout, sys.stderr = (open(fd, "w", buffering=1, closefd=False) for fd in (1, 2))
    os.chdir(cwd)
    sys.path[:] = path
    os.environ.clear()
    os.environ.update(env)
    try:
        code = function(*args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) or e.code is None else (print(e.code, file=sys.stderr) or 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()  # what os._exit skips: temporary folders, pools' shutdowns
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def _kill(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
