"""The processes a pool of ranks started, found through Linux's /proc (nothing elsewhere):
what a pool reaps, and what `sharded.rank-failure` finds left behind."""

from __future__ import annotations

import os

#: The environment variable that marks every process of a pool, and what they start.
TOKEN = "ADAM_CONFORMANCE_POOL"


def descendants(pids: list[int]) -> list[int]:
    """The processes `pids` started, and theirs."""
    found, frontier = [], list(pids)
    while frontier:
        pid = frontier.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found += children
            frontier += children
    return found


def alive(pid: int) -> bool:
    """Whether process `pid` runs: it exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def cpu_seconds(pid: int) -> float | None:
    """The CPU time process `pid` has used, all its threads (None: it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def marked(token: str, besides: set[int] = frozenset()) -> list[tuple[int, str]]:
    """(pid, command) of every live process whose environment carries a pool's `token`, but
    those in `besides` (a live pool's ranks and what they started)."""
    found = []
    mark = f"{TOKEN}={token}".encode()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                carries = mark in f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if carries and alive(int(entry)) and int(entry) not in besides:
            found.append((int(entry), command))
    return found


def signal_all(pids: list[int], sig: int) -> None:
    """Send `sig` to each of `pids` that still exists."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
