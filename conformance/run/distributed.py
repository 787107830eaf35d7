"""Sharded optimizers across processes: Case -> Trace on torch.distributed.

A distributed target (`registry.Sharding`) is driven through a Case by the W ranks of a
`pool.Pool` (`rank.ShardedRun` on each), and the Trace is assembled from what they send
back: a whole parameter from rank 0, a ``Shard(0)`` piece concatenated in rank order, a
state tensor from the first rank that holds it (the owner, for ZeRO), so every check and the
oracle judge it unchanged. A Shard(0) state tensor that some ranks hold and others do not is
left out and noted (``state-missing``), never half-assembled. A rank that fails makes the
Trace's error, with the failed ranks in the `Outcome`; a rank that hangs (no fault planted)
raises `Hung`, naming the rank, the step and where it waits, with the Case cut there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

import torch

from conformance.cases.case import Case
from conformance.cases.trace import Trace
from conformance.dtypes import components
from conformance.registry import Implementation, Sharding
from conformance.run import pool, runner
from conformance.run.rank import backend_of

#: Seconds kept, before a check's own time limit, to name a hung rank and reap the pool.
MARGIN = 10.0
_DEADLINE: list[float | None] = [None]


class Hung(BaseException):
    """A rank hung in a Case no fault was planted in (a BaseException: hypothesis must not
    shrink it, each try costing a wait). ``case`` is the Case cut after the step the rank
    hung in."""

    def __init__(self, message: str, case: Case):
        super().__init__(message)
        self.case = case


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


@contextlib.contextmanager
def deadline(seconds: float | None):
    """Within the block, a Case ends `MARGIN` seconds before `seconds` from now are up, so that
    a hung rank is named before the caller's own time limit strikes."""
    _DEADLINE[0] = None if not seconds else time.monotonic() + seconds
    try:
        yield
    finally:
        _DEADLINE[0] = None


def _limit(limit: float) -> float:
    if _DEADLINE[0] is None:
        return limit
    return max(1.0, min(limit, _DEADLINE[0] - MARGIN - time.monotonic()))


@dataclasses.dataclass
class Outcome:
    """A sharded run of a Case: its Trace, and what only the ranks show. ``finals[r][i]`` is
    the last piece of parameter i rank r held; ``dtypes[r][i]`` maps each state key of
    parameter i to (dtype, elements) as rank r held it last; ``saved`` the whole state_dict
    after the last step (when asked for); ``token`` marks the pool's processes; ``failed``
    the ranks that raised, died or hung; ``hung`` the PoolError of ranks that hung."""

    trace: Trace
    finals: list[list[torch.Tensor]]
    dtypes: list[list[dict]]
    saved: dict | None
    token: str
    failed: tuple[int, ...] = ()
    hung: pool.PoolError | None = None


def drive(impl: Implementation, case: Case, device: str = "cpu", world: int = 1, *, fault: tuple | None = None,
          resume: dict | None = None, save: bool = False, limit: float = pool.CASE_LIMIT) -> Outcome:
    """Run `impl` (a distributed target) through `case` on `world` ranks. A rank that fails
    makes the Trace's error, never an exception; the Case needs what the target claims."""
    runner.claimed(impl, case, device)
    meta, arrays = case.to_json()
    task = dict(impl=impl, case=meta, arrays={k: components(a) for k, a in arrays.items()}, fault=fault,
                resume=resume, save=save)
    outcome = Outcome(None, [], [], None, "")
    try:
        ranks = pool.pool(world, device)
        outcome.token = ranks.token
        results = ranks.call(task, _limit(limit))
    except pool.PoolError as e:
        outcome.trace = runner.to_trace(_blank(case, str(e)), case, [])
        outcome.failed, outcome.hung = e.ranks, e if e.hung else None
        return outcome
    outcome.trace = _assembled(results, case, impl.sharding)
    outcome.finals = [[ps[-1] if ps else None for ps in r["params"]] for r in results]
    outcome.dtypes, outcome.saved = [r["dtypes"] for r in results], results[0]["saved"]
    outcome.failed = tuple(r for r, res in enumerate(results) if res.get("error"))
    return outcome


def run(impl: Implementation, case: Case, device: str = "cpu", world: int = 1) -> Trace:
    """The Trace of `impl` through `case` on `world` ranks; `Hung` if a rank hangs."""
    return unhung(drive(impl, case, device, world), case).trace


def unhung(outcome: Outcome, case: Case) -> Outcome:
    """`outcome`, or `Hung` with `case` cut after the step the hung rank began last."""
    if outcome.hung is None:
        return outcome
    joined = max(g.added_at for g in case.groups)
    steps = max(1, joined, min(outcome.hung.step or len(case.steps), len(case.steps)))
    cut = dataclasses.replace(case, steps=case.steps[:steps],
                              record=None if case.record is None else tuple(t for t in case.record if t <= steps)
                              or None)
    raise Hung(str(outcome.hung), cut)


def _blank(case: Case, error: str) -> dict:
    n = len(case.params)
    return dict(steps=[], params=[[] for _ in range(n)], state=[[] for _ in range(n)], kinds=[{}] * n,
                losses=[], observations=[], error=error, refused=False)


def _assembled(results: list[dict], case: Case, sharding: Sharding) -> Trace:
    """One Trace from the ranks' pieces (see the module's docstring)."""
    first = results[0]
    errors = [f"rank {r}: {res['error']}" for r, res in enumerate(results) if res.get("error")]
    steps = min(len(res["steps"]) for res in results)
    merged = _blank(case, errors[0] if errors else None)
    merged.update(steps=first["steps"][:steps], losses=first["losses"], observations=list(first["observations"]))
    split = sharding.params == "dtensor"
    for i, p in enumerate(case.params):
        holders = [res for res in results if res["kinds"][i]]
        merged["kinds"][i] = {k: v for k, v in (holders[0]["kinds"][i] if holders else {}).items()
                              if not split or all(k in res["kinds"][i] for res in results)}
        for s in range(steps):
            pieces = [res["params"][i][s] for res in results]
            merged["params"][i].append(_whole(pieces, split))
            entry = {}
            for key in sorted(set().union(*(res["state"][i][s] for res in results))):
                held = [r for r, res in enumerate(results) if key in res["state"][i][s]]
                if split and key != "step" and p.init.ndim and len(held) < len(results):
                    lacking = [r for r in range(len(results)) if r not in held]
                    merged["observations"].append((merged["steps"][s], i, "state-missing",
                                                   f"rank {lacking[0]} holds no {key} of param {i} "
                                                   f"(rank {held[0]} does)"))
                    continue
                value = _whole([results[r]["state"][i][s][key] for r in held], split and key != "step")
                if key == "step" or tuple(value.shape) == p.shape:
                    entry[key] = value
            merged["state"][i].append(entry)
    notes = {tuple(n) for res in results for n in res["notes"]}
    return runner.to_trace(merged, case, sorted(notes, key=str))


def _whole(pieces: list[torch.Tensor], split: bool) -> torch.Tensor:
    """A tensor from the ranks' pieces: concatenated along dim 0 when `split`, else the first."""
    return torch.cat(pieces) if split and pieces[0].dim() else pieces[0]
