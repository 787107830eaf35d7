"""Sharded optimizers across processes: Case -> Trace on torch.distributed.

A distributed target (`registry.Sharding`) is driven through a Case by W processes, a
`Pool` started once per world size and device and reused for every Case after (a pool
costs a second or more, a Case milliseconds): its ranks are forked from multiprocessing's
fork server, which has imported torch once, so a pool need not import it again. The
processes join one process group: gloo on the CPU, nccl with CUDA (one GPU per rank),
initialised through a file store in a temporary directory. For each Case every rank

* builds the Case's tensors whole, and hands the target what it takes: the whole parameters
  (``full``: ZeRO shards the optimizer state itself), or each parameter as a DTensor
  ``Shard(0)`` over a 1-D mesh of the ranks, ``Replicate`` when 0-d (``dtensor``: FSDP2,
  DTensor); the gradients the Case prescribes likewise, so a rank is fed its own shards;
* steps through the Case as `drive.Run` does (events, closures, state_dict round trips
  through the target's ``save``; a dtensor target's saved state is gathered whole);
* sends back what it holds: its parameters and its state.

Tasks and results travel serialised by torch.save, so that no tensor is shared between
processes (a state_dict pickled to every rank would share one storage among them).

The Trace is assembled from those pieces: a whole parameter from rank 0, a ``Shard(0)``
piece concatenated in rank order, a state tensor from the first rank that holds it (the
owner, for ZeRO), so every check and the oracle judge it unchanged. A rank's error is
collected with its result, never raised mid-Case. A rank that dies, or answers not within
the time limit (hung in a collective, say) while the others finished or failed, ends the
Case with a one-line error, and the pool is reaped: every process it started, and theirs,
terminated, killed after a grace period, joined; the next Case spawns a fresh pool.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import os
import queue
import re
import signal
import tempfile
import time
import uuid

import torch

from conformance.cases.case import Case
from conformance.cases.trace import Observation, Trace
from conformance.dtypes import components
from conformance.registry import Implementation, Sharding
from conformance.run import runner
from conformance.run.drive import STATE_KEYS, Run, snapshot

#: The environment variable that marks every process of a pool, and what they start.
TOKEN = "ADAM_CONFORMANCE_POOL"
#: Seconds a pool may take to start (fork the ranks, join the group; the first one imports torch).
START_LIMIT = 300.0
#: Seconds a Case may take on every rank, by default (a first torch.compile included).
CASE_LIMIT = 300.0
#: Seconds the other ranks get to finish once one has failed or died.
GRACE = 5.0
#: What the fork server imports once, for every rank it forks: torch's distributed modules
#: that sharded optimizers are built from, and this module (a target's own module is imported
#: by each rank).
PRELOAD = ["torch", "torch.distributed", "torch.distributed.tensor", "torch.distributed.fsdp",
           "torch.distributed.optim", __name__]
#: Faults `drive` can plant on one rank at one step, instead of its step(): what a failing rank does.
FAULTS = ("raise", "hang", "exit")


class PoolError(RuntimeError):
    """The pool could not start, or broke while running a Case (the message is one line)."""


def unusable(sharding: Sharding, device: str = "cpu") -> str | None:
    """Why the installed torch cannot run a target sharded so on `device` (None: it can)."""
    import torch.distributed as dist

    if not dist.is_available():
        return f"torch {torch.__version__} is built without torch.distributed"
    backend = backend_of(device)
    if not (dist.is_nccl_available() if backend == "nccl" else dist.is_gloo_available()):
        return f"torch {torch.__version__} has no {backend} backend"
    if sharding.params == "dtensor":
        try:
            from torch.distributed.device_mesh import init_device_mesh  # noqa: F401
            from torch.distributed.tensor import DTensor, distribute_tensor  # noqa: F401
        except ImportError:
            return f"torch {torch.__version__} has no public DTensor (torch.distributed.tensor)"
    return None


def backend_of(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


# -- one rank ------------------------------------------------------------------------------


class ShardedRun(Run):
    """One rank's run of a Case: `drive.Run` over what this rank holds. ``fault`` is (rank,
    kind, step): that rank does `kind` instead of that step. ``resume`` is a whole state_dict
    the first optimizer built loads; ``save`` keeps the whole state_dict after the last step."""

    def __init__(self, impl: Implementation, case: dict, arrays, rank: int, world: int, device: str,
                 fault: tuple | None = None, resume: dict | None = None, save: bool = False):
        self.sharding, self.rank, self.world, self.fault, self.resume = impl.sharding, rank, world, fault, resume
        self.mesh = _mesh(world, device) if impl.sharding.params == "dtensor" else None
        super().__init__(impl.factory, case, arrays, impl.claims, device)
        self.save_at = len(case["steps"]) if save else None
        self.result.update(dtypes=[{} for _ in self.params], saved=None)

    def place(self, t):
        if self.mesh is None:
            return t
        from torch.distributed.tensor import Replicate, Shard, distribute_tensor

        return distribute_tensor(t, self.mesh, [Shard(0) if t.dim() else Replicate()], src_data_rank=None)

    def local(self, t):
        return t.to_local() if self.mesh is not None and hasattr(t, "to_local") else t

    def state_of(self, opt) -> dict:
        return self.sharding.state(opt) if self.sharding.state else super().state_of(opt)

    def saved(self, opt) -> dict:
        """The whole state_dict, on every rank (a DTensor gathered whole, in index order)."""
        state = self.sharding.save(opt) if self.sharding.save else opt.state_dict()
        if self.mesh is None:
            return state
        whole = lambda v: v.full_tensor() if hasattr(v, "full_tensor") else v
        return dict(state, state={i: {k: whole(v) for k, v in s.items()} for i, s in sorted(state["state"].items())})

    def restore(self, opt, state: dict) -> None:
        """Load a whole state_dict (a dtensor target's state placed as its parameter is)."""
        if self.mesh is not None:
            from torch.distributed.tensor import distribute_tensor

            params = [p for g in opt.param_groups for p in g["params"]]
            placed = lambda p, k, v: (distribute_tensor(v, self.mesh, p.placements, src_data_rank=None)
                                      if k in STATE_KEYS and torch.is_tensor(v) and hasattr(p, "placements") else v)
            state = dict(state, state={i: {k: placed(params[i], k, v) for k, v in s.items()}
                                       for i, s in state["state"].items()})
        super().restore(opt, state)

    def build(self, groups: list[int]):
        opt = super().build(groups)
        if self.resume is not None:
            state, self.resume = self.resume, None
            self.restore(opt, state)
        return opt

    def step(self, t: int, step: dict, opt) -> None:
        if self.fault is not None and self.fault[0] == self.rank and self.fault[2] == t:
            _plant(self.fault[1], self.rank, t)
        super().step(t, step, opt)

    def record(self, t: int, opt) -> None:
        """This rank's pieces: its part of each parameter and each state tensor, as held."""
        self.result["steps"].append(t)
        for i, p in enumerate(self.params):
            self.result["params"][i].append(snapshot(self.local(p)))
            state = self.state_of(opt).get(p, {})
            held = {k: self.local(v) for k, v in state.items() if k in STATE_KEYS and torch.is_tensor(v)}
            entry = {k: snapshot(v) for k, v in held.items()}
            if "step" in state:
                entry["step"] = torch.tensor(float(state["step"]), dtype=torch.float64)
            self.result["state"][i].append(entry)
            self.result["dtypes"][i] = {k: (str(v.dtype).removeprefix("torch."), v.numel()) for k, v in held.items()}
        if t == self.save_at:
            self.result["saved"] = self.saved(opt)


def _plant(kind: str, rank: int, t: int) -> None:
    """What a failing rank does instead of step `t`: raise, hang, or die."""
    if kind == "raise":
        raise RuntimeError(f"fault planted on rank {rank} at step {t}")
    if kind == "hang":
        while True:
            time.sleep(1)
    os._exit(3)


_MESHES: dict = {}


def _mesh(world: int, device: str):
    from torch.distributed.device_mesh import init_device_mesh

    if world not in _MESHES:
        _MESHES[world] = init_device_mesh(device, (world,))
    return _MESHES[world]


def _serve(rank: int, world: int, device: str, store: str, inbox, outbox, token: str) -> None:
    """A rank of a pool: join the group, then run each task sent until None comes."""
    import torch.distributed as dist

    os.environ[TOKEN] = token
    if device == "cuda":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group(backend_of(device), init_method=f"file://{store}", rank=rank, world_size=world)
    outbox.put((0, rank, _dumps({})))
    while (message := inbox.get()) is not None:
        job, data = message
        try:
            result = _execute(_loads(data), rank, world, device)
        except BaseException as e:  # the rank must answer, whatever happened
            result = {"error": f"{type(e).__name__}: {e}"}
        outbox.put((job, rank, _dumps(result)))
    dist.destroy_process_group()


def _execute(task: dict, rank: int, world: int, device: str) -> dict:
    notes: list[Observation] = []
    run = ShardedRun(task["impl"], task["case"], task["arrays"], rank, world, device, task["fault"],
                     task["resume"], task["save"])
    with runner.guarded_global_state(notes, step=len(task["case"]["steps"])):
        result = run.go()
    result["notes"] = [tuple(n) for n in notes]
    return result


def _dumps(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _loads(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=False)


# -- the pool --------------------------------------------------------------------------------


class Pool:
    """W processes in one process group, running the tasks sent to them; `reap` ends them all."""

    def __init__(self, world: int, device: str = "cpu"):
        context = multiprocessing.get_context("forkserver")  # each rank forked from one that imported torch
        context.set_forkserver_preload(PRELOAD)
        self.world, self.device, self.token = world, device, uuid.uuid4().hex
        self.scratch = tempfile.TemporaryDirectory(prefix="adam-conformance-pool-")
        store = os.path.join(self.scratch.name, "store")
        self.outbox = context.Queue()
        self.inboxes = [context.Queue() for _ in range(world)]
        self.processes = [context.Process(target=_serve, daemon=True, name=f"adam-conformance-rank-{r}",
                                          args=(r, world, device, store, self.inboxes[r], self.outbox, self.token))
                          for r in range(world)]
        self.job = 0
        for p in self.processes:
            p.start()
        self._collect(0, START_LIMIT, "start")

    def call(self, task: dict, limit: float) -> list[dict]:
        """Each rank's result of `task`, rank order. PoolError (the pool reaped) if a rank died
        or did not answer within `limit` seconds (or `GRACE` after another rank failed)."""
        self.job += 1
        data = _dumps(task)  # bytes: each rank gets tensors of its own, never shared memory
        for inbox in self.inboxes:
            inbox.put((self.job, data))
        return self._collect(self.job, limit, "run")

    def _collect(self, job: int, limit: float, what: str) -> list[dict]:
        results: dict[int, dict] = {}
        deadline, waited = time.monotonic() + limit, f"within {limit:g} s"
        try:
            while len(results) < self.world:
                try:
                    got, rank, data = self.outbox.get(timeout=0.05)
                except queue.Empty:
                    got = None
                if got == job:
                    results[rank] = _loads(data)
                    if results[rank].get("error") and time.monotonic() + GRACE < deadline:
                        deadline, waited = time.monotonic() + GRACE, f"{GRACE:g} s after rank {rank} failed"
                    continue
                dead = [r for r, p in enumerate(self.processes) if not p.is_alive() and r not in results]
                if dead:
                    time.sleep(0.2)  # a rank that errored and died at once: let its others show
                    raise PoolError(_failure(what, results, f"rank {dead[0]} died (exit code "
                                                            f"{self.processes[dead[0]].exitcode})"))
                if time.monotonic() > deadline:
                    silent = [r for r in range(self.world) if r not in results]
                    raise PoolError(_failure(what, results, f"{_ranks(silent)} did not answer "
                                                            f"{waited} (hung)"))
        except BaseException:
            self.reap()
            raise
        return [results[r] for r in range(self.world)]

    def descendants(self) -> list[int]:
        """The processes the ranks started, and theirs (Linux /proc; empty elsewhere)."""
        return descendants([p.pid for p in self.processes if p.pid])

    def reap(self) -> None:
        """End every process of the pool and those they started: SIGTERM, SIGKILL after a
        grace period, join."""
        others = self.descendants()
        for p in self.processes:
            if p.is_alive():
                p.terminate()
        _signal(others, signal.SIGTERM)
        deadline = time.monotonic() + 2.0
        for p in self.processes:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5.0)
        _signal(others, signal.SIGKILL)
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
        _signal([pid for pid, _ in leftovers(self.token)], signal.SIGKILL)

    def _forget(self) -> None:
        for q in (self.outbox, *self.inboxes):
            q.cancel_join_thread()
            q.close()
        if _POOLS.get((self.world, self.device)) is self:
            del _POOLS[(self.world, self.device)]
        self.scratch.cleanup()


def _failure(what: str, results: dict, reason: str) -> str:
    errors = [f"rank {r}: {res['error']}" for r, res in sorted(results.items()) if res.get("error")]
    return f"the pool could not {what}: {reason}" + (f"; {errors[0]}" if errors else "")


def _ranks(ranks: list[int]) -> str:
    """'rank 1' or 'ranks 0, 1'."""
    return f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"


def named(error: str) -> set[int]:
    """The ranks an error names ('rank 1: ...', 'ranks 0, 1 did not answer')."""
    return {int(r) for found in re.findall(r"\branks? (\d+(?:, \d+)*)", error) for r in found.split(", ")}


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def descendants(pids: list[int]) -> list[int]:
    """The processes `pids` started, and theirs (Linux /proc; empty elsewhere)."""
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
    """Whether process `pid` runs (Linux /proc): it exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def leftovers(token: str) -> list[tuple[int, str]]:
    """(pid, command) of every live process marked with a pool's `token` (Linux /proc), but a
    live pool's ranks and what they started."""
    found = []
    ours = {pid for p in _POOLS.values() for pid in [*(r.pid for r in p.processes if r.is_alive()), *p.descendants()]}
    mark = f"{TOKEN}={token}".encode()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                marked = mark in f.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if marked and alive(int(entry)) and int(entry) not in ours:
            found.append((int(entry), command))
    return found


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


# -- a Case across the pool ---------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    """A sharded run of a Case: its Trace, and what only the ranks show. ``finals[r][i]`` is
    the last piece of parameter i rank r held; ``dtypes[r][i]`` maps each state key of
    parameter i to (dtype, elements) as rank r held it last; ``saved`` the whole state_dict
    after the last step (when asked for); ``token`` marks the pool's processes."""

    trace: Trace
    finals: list[list[torch.Tensor]]
    dtypes: list[list[dict]]
    saved: dict | None
    token: str


def drive(impl: Implementation, case: Case, device: str = "cpu", world: int = 1, *, fault: tuple | None = None,
          resume: dict | None = None, save: bool = False, limit: float = CASE_LIMIT) -> Outcome:
    """Run `impl` (a distributed target) through `case` on `world` ranks. A rank that fails
    makes the Trace's error, never an exception; the Case needs what the target claims."""
    runner.claimed(impl, case, device)
    meta, arrays = case.to_json()
    task = dict(impl=impl, case=meta, arrays={k: components(a) for k, a in arrays.items()}, fault=fault,
                resume=resume, save=save)
    empty = Outcome(None, [], [], None, "")
    try:
        ranks = pool(world, device)
        empty.token = ranks.token
        results = ranks.call(task, limit)
    except PoolError as e:
        empty.trace = runner.to_trace(_blank(case, str(e)), case, [])
        return empty
    finals = [[ps[-1] if ps else None for ps in r["params"]] for r in results]
    return Outcome(_assembled(results, case, impl.sharding), finals, [r["dtypes"] for r in results],
                   results[0]["saved"], ranks.token)


def run(impl: Implementation, case: Case, device: str = "cpu", world: int = 1) -> Trace:
    """The Trace of `impl` through `case` on `world` ranks."""
    return drive(impl, case, device, world).trace


def _blank(case: Case, error: str) -> dict:
    n = len(case.params)
    return dict(steps=[], params=[[] for _ in range(n)], state=[[] for _ in range(n)], losses=[], observations=[],
                error=error)


def _assembled(results: list[dict], case: Case, sharding: Sharding) -> Trace:
    """One Trace from the ranks' pieces (see the module's docstring)."""
    first = results[0]
    errors = [f"rank {r}: {res['error']}" for r, res in enumerate(results) if res.get("error")]
    steps = min(len(res["steps"]) for res in results)
    merged = _blank(case, errors[0] if errors else None)
    merged.update(steps=first["steps"][:steps], losses=first["losses"], observations=first["observations"])
    split = sharding.params == "dtensor"
    for i, p in enumerate(case.params):
        for s in range(steps):
            pieces = [res["params"][i][s] for res in results]
            merged["params"][i].append(_whole(pieces, split))
            entry = {}
            for key in sorted(set().union(*(res["state"][i][s] for res in results))):
                held = [res["state"][i][s][key] for res in results if key in res["state"][i][s]]
                value = _whole(held, split and key != "step" and len(held) == len(results))
                if key == "step" or tuple(value.shape) == p.shape:
                    entry[key] = value
            merged["state"][i].append(entry)
    notes = {tuple(n) for res in results for n in res["notes"]}
    return runner.to_trace(merged, case, [Observation(*n) for n in sorted(notes, key=str)])


def _whole(pieces: list[torch.Tensor], split: bool) -> torch.Tensor:
    """A tensor from the ranks' pieces: concatenated along dim 0 when `split`, else the first."""
    return torch.cat(pieces) if split and pieces[0].dim() else pieces[0]
