"""One rank of a sharded run: `drive.Run` over what this rank holds, and the loop that serves a
pool's tasks (`conformance.run.pool`).

For each Case a rank builds the Case's tensors whole and hands the target what it takes:
the whole parameters (``full``: ZeRO shards the optimizer state itself), or each parameter
as a DTensor ``Shard(0)`` over a 1-D mesh of the ranks, ``Replicate`` when 0-d
(``dtensor``: FSDP2, DTensor); the gradients likewise, so a rank is fed its own shards. It
steps through the Case as `drive.Run` does, saying before each step that it starts it, and
sends back what it holds: its parameters, its state, and each state entry's kind.
"""

from __future__ import annotations

import faulthandler
import io
import os
import signal
import time

import torch

from conformance.registry import Implementation
from conformance.run.drive import STATE_KEYS, Run, guarded_global_state, kind, snapshot
from conformance.run.processes import TOKEN

#: Faults a rank can plant at one step instead of its step(): what a failing rank does.
FAULTS = ("raise", "hang", "exit")


class ShardedRun(Run):
    """One rank's run of a Case. ``fault`` is (rank, kind, step): that rank does `kind` instead
    of that step. ``resume`` is a whole state_dict the first optimizer built loads; ``save``
    keeps the whole state_dict after the last step; ``started(t)`` is told each step begun."""

    def __init__(self, impl: Implementation, case: dict, arrays, rank: int, world: int, device: str,
                 fault: tuple | None = None, resume: dict | None = None, save: bool = False, started=None):
        self.sharding, self.rank, self.world, self.fault, self.loaded = impl.sharding, rank, world, fault, resume
        self.started = started or (lambda t: None)
        self.mesh = _mesh(world, device) if impl.sharding.params == "dtensor" else None
        super().__init__(impl.factory, case, arrays, impl.claims, device, impl.explicit)
        self.save_at = len(case["steps"]) if save else None
        self.result.update(dtypes=[{} for _ in self.params], saved=None)

    def place(self, t):
        if self.mesh is None:
            return t
        from torch.distributed.tensor import Replicate, Shard, distribute_tensor

        return distribute_tensor(t, self.mesh, [Shard(0) if t.dim() else Replicate()], src_data_rank=None)

    def shared(self, t):
        if self.mesh is None:
            return t
        from torch.distributed.tensor import Replicate, distribute_tensor

        return distribute_tensor(t, self.mesh, [Replicate()], src_data_rank=None)

    def local(self, t):
        return t.to_local() if self.mesh is not None and hasattr(t, "to_local") else t

    def loss_and_grads(self, autograd: bool):
        """As a single process, each DTensor gradient then placed as its parameter is (as FSDP2's
        reduce-scatter leaves it; autograd may leave it replicated)."""
        loss = super().loss_and_grads(autograd)
        for p in self.params if self.mesh is not None else ():
            if p.grad is not None and p.grad.placements != p.placements:
                p.grad = p.grad.redistribute(p.device_mesh, p.placements)
        return loss

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
        if self.loaded is not None:
            state, self.loaded = self.loaded, None
            self.restore(opt, state)
        return opt

    def step(self, t: int, step: dict, opt) -> None:
        self.started(t)
        self.doing = f"step {t}"
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
            if state:
                self.result["kinds"][i] = {k: kind(v) for k, v in state.items()}
        if t == self.save_at:
            self.result["saved"] = self.saved(opt)


def _plant(fault: str, rank: int, t: int) -> None:
    """What a failing rank does instead of step `t`: raise, hang, or die."""
    if fault == "raise":
        raise RuntimeError(f"fault planted on rank {rank} at step {t}")
    if fault == "hang":
        while True:
            time.sleep(1)
    os._exit(3)


_MESHES: dict = {}


def _mesh(world: int, device: str):
    from torch.distributed.device_mesh import init_device_mesh

    if world not in _MESHES:
        _MESHES[world] = init_device_mesh(device, (world,))
    return _MESHES[world]


def backend_of(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


def serve(rank: int, world: int, device: str, store: str, stacks: str, inbox, outbox, token: str) -> None:
    """A rank of a pool: join the group, then run each task sent until None comes. Each
    message to the pool is (job, rank, what, payload): ``step`` with the step begun, or
    ``done`` with the result. SIGUSR1 dumps every thread's stack into the file `stacks`
    (where a hung rank is stuck)."""
    import torch.distributed as dist

    os.environ[TOKEN] = token
    dump = open(stacks, "w")  # noqa: SIM115 (open for the life of the rank)
    faulthandler.register(signal.SIGUSR1, file=dump, all_threads=True)
    if device == "cuda":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group(backend_of(device), init_method=f"file://{store}", rank=rank, world_size=world)
    outbox.put((0, rank, "done", dumps({})))
    while (message := inbox.get()) is not None:
        job, data = message
        try:
            result = execute(loads(data), rank, world, device, lambda t, job=job: outbox.put((job, rank, "step", t)))
        except BaseException as e:  # the rank must answer, whatever happened
            result = {"error": f"{type(e).__name__}: {e}"}
        outbox.put((job, rank, "done", dumps(result)))
    dist.destroy_process_group()


def execute(task: dict, rank: int, world: int, device: str, started) -> dict:
    """This rank's run of a task (see `pool.Pool.call`), torch's global state guarded."""
    notes: list[tuple] = []
    run = ShardedRun(task["impl"], task["case"], task["arrays"], rank, world, device, task["fault"],
                     task["resume"], task["save"], started)
    with guarded_global_state(notes, step=len(task["case"]["steps"])):
        result = run.go()
    result["notes"] = notes
    return result


def dumps(obj) -> bytes:
    """Tasks and results travel serialised by torch.save, so that no tensor is shared between
    processes (a state_dict pickled to every rank would share one storage among them)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def loads(data: bytes):
    return torch.load(io.BytesIO(data), weights_only=False)
