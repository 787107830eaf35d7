"""A pool of W ranks in one process group, started once per world size and device and reused
for every Case after (a pool costs a second or more, a Case milliseconds).

The ranks are forked from multiprocessing's fork server, which has imported torch once, so
a rank need not import it again; they join one process group (gloo on the CPU, nccl with
CUDA, one GPU per rank) through a file store in a temporary directory. A rank's error comes
back with its result, never raised mid-Case. A rank that dies, or that does not answer
while another has (within the time the answering rank took, and at least `GRACE`), or
ranks that all wait in torch.distributed using no CPU time, with nothing heard from them
for a while (a deadlock: `QUIET`, or `SETTLE` once a rank has answered), or the caller's
limit, end the Case: a `PoolError` that names those ranks,
the step each began last and, for a hung rank, where it is stuck (its stack, dumped on
SIGUSR1: the torch.distributed collective it waits in, and the target's code that called it). Then the
pool is reaped: every process it started, and theirs, terminated, killed after a grace
period, joined; the next Case starts a fresh pool.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import tempfile
import time
import uuid

from conformance.run import forked, processes, rank

#: Seconds a pool may take to start (fork the ranks, join the group; the first one imports torch).
START_LIMIT = 300.0
#: Seconds a Case may take on every rank, by default (a first torch.compile included).
CASE_LIMIT = 300.0
#: The least time the other ranks get to answer once one has (failed: at most this).
GRACE = 5.0
#: Seconds without a word from any rank after which their CPU time is watched: if every rank
#: still running used none for another such while (`IDLE`) and waits in torch.distributed,
#: they are deadlocked (a rank that computes, compiles or is merely slow uses CPU time).
QUIET = 2.5
IDLE = 0.05
#: Once a rank has answered, the ranks still running are watched so over this much less time:
#: one idle in torch.distributed then waits on a rank that has ended its Case, or on one as idle.
SETTLE = 0.5


class PoolError(RuntimeError):
    """The pool could not start, or broke while running a Case. The message is one line;
    ``ranks`` are the ranks that failed (raised, died or hung), ``hung`` those that did not
    answer, ``step`` the step the first of them began last (0: none)."""

    def __init__(self, message: str, ranks=(), hung=(), step: int = 0):
        super().__init__(message)
        self.ranks, self.hung, self.step = tuple(ranks), tuple(hung), step


class Pool:
    """W processes in one process group, running the tasks sent to them; `reap` ends them all."""

    def __init__(self, world: int, device: str = "cpu"):
        context = forked.context()  # each rank forked from one that imported torch
        self.world, self.device, self.token = world, device, uuid.uuid4().hex
        self.scratch = tempfile.TemporaryDirectory(prefix="adam-conformance-pool-")
        store = os.path.join(self.scratch.name, "store")
        self.outbox = context.Queue()
        self.inboxes = [context.Queue() for _ in range(world)]
        self.processes = [context.Process(target=rank.serve, daemon=True, name=f"adam-conformance-rank-{r}",
                                          args=(r, world, device, store, self.stacks(r), self.inboxes[r],
                                                self.outbox, self.token))
                          for r in range(world)]
        self.job = 0
        for p in self.processes:
            p.start()
        self._collect(0, START_LIMIT, "start")

    def stacks(self, r: int) -> str:
        """The file rank r dumps its stacks into."""
        return os.path.join(self.scratch.name, f"stacks-{r}")

    def call(self, task: dict, limit: float) -> list[dict]:
        """Each rank's result of `task`, rank order. PoolError (the pool reaped) if a rank died
        or did not answer in time (see the module docstring)."""
        self.job += 1
        data = rank.dumps(task)  # bytes: each rank gets tensors of its own, never shared memory
        for inbox in self.inboxes:
            inbox.put((self.job, data))
        return self._collect(self.job, limit, "run")

    def _collect(self, job: int, limit: float, what: str) -> list[dict]:
        results: dict[int, dict] = {}
        begun: dict[int, int] = {}
        started = news = time.monotonic()
        deadline, waited = started + limit, f"within {limit:g} s"
        used: dict[int, float | None] = {}
        try:
            while len(results) < self.world:
                try:
                    got, r, kind, payload = self.outbox.get(timeout=0.05)
                except queue.Empty:
                    got = None
                now = time.monotonic()
                if got == job:
                    news = now
                if got == job and kind == "step":
                    begun[r] = payload
                    continue
                if got == job:
                    results[r] = rank.loads(payload)
                    if results[r].get("error"):
                        deadline, waited = min(deadline, now + GRACE), f"within {GRACE:g} s of rank {r}'s error"
                    elif len(results) == 1:
                        settle = max(GRACE, now - started)
                        deadline, waited = min(deadline, now + settle), f"within {settle:.0f} s of rank {r}'s answer"
                    continue
                silent = [r for r in range(self.world) if r not in results]
                dead = [r for r in silent if not self.processes[r].is_alive()]
                if dead:
                    time.sleep(0.2)  # a rank that errored and died at once: let its others show
                    raise self._failure(what, results, begun, dead, f"died (exit code "
                                                                   f"{self.processes[dead[0]].exitcode})")
                if now > deadline:
                    raise self._failure(what, results, begun, silent, f"did not answer {waited} (hung)", hung=True)
                window = SETTLE if results else QUIET
                if what == "run" and now - news > window:  # nothing heard for a while: deadlocked?
                    now_used = {r: processes.cpu_seconds(self.processes[r].pid) for r in silent}
                    idle = used.keys() == now_used.keys() and all(
                        None not in (used[r], now_used[r]) and now_used[r] - used[r] < IDLE for r in silent)
                    where = {r: self.stuck_in(r) for r in silent} if idle else {}
                    if idle and all("torch.distributed" in w for w in where.values()):
                        raise self._failure(what, results, begun, silent, f"{'all ' * (len(silent) > 1)}waited "
                                                                          f"in torch.distributed, using no CPU, for "
                                                                          f"{now - news + window:.0f} s (deadlocked)",
                                            where)
                    used, news = now_used, time.monotonic()
        except BaseException:
            self.reap()
            raise
        return [results[r] for r in range(self.world)]

    def _failure(self, what: str, results: dict, begun: dict, ranks: list[int], how: str,
                 hung: bool | dict = False) -> PoolError:
        """The PoolError of `ranks` that failed `how` (died, or hung: `hung` may already say
        where each is stuck): the ranks to blame first (one that died, else one that raised,
        else a hung one not waiting on the others), each with the last step it said it began
        and, if hung, where it is stuck."""
        errors = {r: res["error"] for r, res in sorted(results.items()) if res.get("error")}
        where = hung if isinstance(hung, dict) else {r: self.stuck_in(r) if hung else "" for r in ranks}
        ranks = sorted(ranks, key=lambda r: "torch.distributed" in where[r])
        said = [f"{_ranks(ranks)} {how}"]
        said[len(said) if not hung else 0:0] = [f"rank {r}: {e}" for r, e in list(errors.items())[:1]]
        for r in ranks:
            step = f"last said it began step {begun[r]}" if r in begun else "began no step"
            said.append(f"rank {r} {step}" + (f", {where[r]}" if where[r] else ""))
        failed = ([] if hung else ranks) + list(errors) + (ranks if hung else [])
        return PoolError(f"the pool could not {what}: " + "; ".join(said), failed, ranks if hung else (),
                         begun.get(ranks[0], 0) if ranks else 0)

    def stuck_in(self, r: int) -> str:
        """Where rank r is stuck, from its stacks (dumped on SIGUSR1): 'in all_reduce
        (torch.distributed), called from opt.py:40 in step'; "" if that cannot be told."""
        path, process = self.stacks(r), self.processes[r]
        try:
            size = os.path.getsize(path)
            os.kill(process.pid, signal.SIGUSR1)
        except OSError:
            return ""
        for _ in range(20):
            time.sleep(0.05)
            if os.path.getsize(path) > size:
                break
        time.sleep(0.1)
        with open(path, errors="replace") as f:
            f.seek(size)
            return describe_stack(f.read())

    def descendants(self) -> list[int]:
        """The processes the ranks started, and theirs (Linux /proc; empty elsewhere)."""
        return processes.descendants([p.pid for p in self.processes if p.pid])

    def reap(self) -> None:
        """End every process of the pool and those they started: SIGTERM, SIGKILL after a
        grace period, join."""
        others = self.descendants()
        for p in self.processes:
            if p.is_alive():
                p.terminate()
        processes.signal_all(others, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for p in self.processes:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5.0)
        processes.signal_all(others, signal.SIGKILL)
        self._forget()

    def close(self) -> None:
        """Let the ranks leave the group and exit, reap those that do not, and end what they
        started that outlived them (a target's daemon: `reap` leaves those for
        sharded.rank-failure to find)."""
        for inbox in self.inboxes:
            inbox.put(None)
        for p in self.processes:
            p.join(10.0)
        if any(p.is_alive() for p in self.processes):
            self.reap()
        else:
            self._forget()
        processes.signal_all([pid for pid, _ in leftovers(self.token)], signal.SIGKILL)

    def _forget(self) -> None:
        for q in (self.outbox, *self.inboxes):
            q.cancel_join_thread()
            q.close()
        if _POOLS.get((self.world, self.device)) is self:
            del _POOLS[(self.world, self.device)]
        self.scratch.cleanup()


#: A frame of a faulthandler dump: file, line, function.
FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)', re.M)


def describe_stack(dump: str) -> str:
    """Where a dumped rank waits, from its main thread (the one serving tasks): the innermost
    torch.distributed call ('waiting in all_reduce (torch.distributed)', or the file and line
    of torch.distributed code that waits on one) and the target's own code that called it;
    "" if the dump shows neither."""
    threads = [FRAME.findall(block) for block in re.split(r"^(?:Current thread|Thread) ", dump, flags=re.M)]
    serving = [t for t in threads if any(func == "serve" for _, _, func in t)]
    if not serving:
        return ""
    frames = serving[0]  # innermost first
    inside = lambda parts: os.sep.join(("", *parts, ""))
    waits = [(f, line, func) for f, line, func in frames if inside(("torch", "distributed")) in f]
    machinery = [inside(parts) for parts in (("torch",), ("conformance", "run"), ("multiprocessing",))]
    caller = next(((f, line, func) for f, line, func in frames
                   if not f.startswith("<") and not any(m in f for m in machinery)), None)
    at = lambda frame: f"{os.path.basename(frame[0])}:{frame[1]} in {frame[2]}"
    said = []
    if waits:
        collective = next((func for f, _, func in waits if f.endswith("distributed_c10d.py")), None)
        said.append(f"waiting in {collective} (torch.distributed)" if collective else
                    f"waiting in torch.distributed ({at(waits[0])})")
    if caller:
        said.append(f"called from {at(caller)}" if waits else f"at {at(caller)}")
    return ", ".join(said)


def _ranks(ranks: list[int]) -> str:
    """'rank 1' or 'ranks 0, 1'."""
    return f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"


def leftovers(token: str) -> list[tuple[int, str]]:
    """(pid, command) of every live process a pool marked with `token` started, but a live
    pool's ranks and what they started."""
    ours = {pid for p in _POOLS.values() for pid in [*(r.pid for r in p.processes if r.is_alive()), *p.descendants()]}
    return processes.marked(token, ours)


_POOLS: dict[tuple[int, str], Pool] = {}


def pool(world: int, device: str = "cpu") -> Pool:
    """The pool of `world` ranks on `device`, started on first use."""
    if (world, device) not in _POOLS:
        _POOLS[(world, device)] = Pool(world, device)
    return _POOLS[(world, device)]


def close(world: int, device: str = "cpu") -> None:
    """Close the pool of `world` ranks on `device`, if there is one: the next Case starts a fresh one."""
    if (world, device) in _POOLS:
        _POOLS[(world, device)].close()


def close_all() -> None:
    """Close every pool (each running Case done)."""
    for p in list(_POOLS.values()):
        p.close()
