"""Sharded optimizers across processes: what the sharding must not change.

Each check here observes a distributed target (`registry.Sharding`) certified with
``--world-size W`` of 2 or more, and skips with that reason otherwise. Parity, the
invariants and the contract already run through the W ranks (`run.distributed`), on the
Trace gathered from the shards. An elementwise Adam computes each element from that element
alone, so how the elements are shared among ranks changes nothing (fairscale#767: FSDP
equals DDP for pointwise optimizers), and the bar across world sizes is bitwise:

* the same Case at world sizes 1, 2, 4 and W gives the identical trajectory;
* every rank ends with the same whole parameters;
* state saved at W and loaded at another world size continues the identical trajectory;
* every state tensor is kept in one dtype whatever the shard size (pytorch/ao#4912 chose
  8-bit or float32 state from the size of the local shard);
* a rank that raises, hangs or dies at a step ends the run within a time limit, the error
  naming that rank, and leaves no process behind.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from conformance.cases.case import Case, Group, Param, Step
from conformance.cases.trace import Trace
from conformance.checks.assertions import holds
from conformance.checks.catalogue import CheckFailure, Evidence, check
from conformance.checks.contract import assert_identical
from conformance.run import distributed, pool
from conformance.run.drive import same_bits
from conformance.run.rank import FAULTS
from conformance.run.target import Target

#: The world sizes every Case is compared across (with the target's own).
WORLD_SIZES = (1, 2, 4)
#: Seconds a Case with a planted fault may take before the hung ranks are ended: the Case
#: is three steps of two tiny parameters (milliseconds), on ranks that have already run it
#: once (started, and compiled where the target compiles), so a hang is what outlasts this.
FAULT_LIMIT = 5.0


def _sizes(target: Target) -> list[int]:
    return sorted(set(WORLD_SIZES) | {target.world_size})


def _drive(target: Target, case: Case, world: int, **kw) -> distributed.Outcome:
    """The target's run of `case` on `world` ranks (`distributed.Hung` if a rank hangs with no
    fault planted). A target that is not distributed (torch's path, when `holds` asks whether
    torch breaks a property too) runs in one process, the same at every world size."""
    if target.impl.sharding is None:
        trace = target.run(case)
        finals = [[None if not len(p) else torch.from_numpy(np.asarray(p[-1])) for p in trace.params]]
        kinds = [{k: (v.get("dtype", v["type"]), 0) for k, v in trace.kinds[i].items()} if trace.kinds else {}
                 for i in range(len(case.params))]
        return distributed.Outcome(trace, finals, [kinds], None, "")
    outcome = distributed.drive(target.impl, case, target.device, world, **kw)
    return outcome if "fault" in kw else distributed.unhung(outcome, case)


def _completed(outcome: distributed.Outcome, case: Case, world: int) -> distributed.Outcome:
    if outcome.trace.error:
        raise CheckFailure(f"at world size {world} the run raised: {outcome.trace.error}", [case], severity="api")
    return outcome


@check(
    "sharded.world-sizes",
    "The same Case at world sizes 1, 2, 4 and the certified one gives bitwise the same parameters and state "
    "at every step, for parameters of every size up to the profile's largest.",
    sharded=True,
)
def world_sizes(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _same_at_every_world_size, data.draw(target.cases(), label="case"))
    holds(target, evidence, _same_at_every_world_size, data.draw(target.ladders(), label="ladder"))


def _same_at_every_world_size(target: Target, case: Case) -> None:
    traces = {w: _completed(_drive(target, case, w), case, w).trace for w in _sizes(target)}
    for w, trace in traces.items():
        assert_identical(traces[1], trace, f"world size 1 against {w}", [case])


@check(
    "sharded.ranks-agree",
    "After every Case, every rank holds the same whole parameters (every replicated piece bitwise equal "
    "to rank 0's).",
    sharded=True,
)
def ranks_agree(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _ranks_agree, data.draw(target.cases(), label="case"))


def _ranks_agree(target: Target, case: Case) -> None:
    outcome = _completed(_drive(target, case, target.world_size), case, target.world_size)
    split = target.impl.sharding is not None and target.impl.sharding.params == "dtensor"
    for i, p in enumerate(case.params):
        if split and p.init.ndim:  # Shard(0): each rank holds rows of its own
            continue
        mine = outcome.finals[0][i]
        for r, theirs in enumerate(f[i] for f in outcome.finals):
            if theirs is not None and mine is not None and not same_bits(mine, theirs):
                differ = int((mine != theirs).sum())
                raise CheckFailure(f"rank {r} ends with param {i} unlike rank 0's in {differ} of {mine.numel()} "
                                   "element(s): the ranks hold different models", [case])


@check(
    "sharded.resharded-resume",
    "State saved mid-run at the certified world size and loaded at another (1, 2 or 4) continues the identical "
    "trajectory.",
    sharded=True,
)
def resharded_resume(target: Target, evidence: Evidence, data) -> None:
    case = data.draw(target.cases(events=False, late_joins=False), label="case")
    assume(len(case.steps) >= 2 and case.objective is None)
    case = dataclasses.replace(case, record=None)
    k = data.draw(st.integers(1, len(case.steps) - 1), label="saved after step")
    other = data.draw(st.sampled_from([w for w in WORLD_SIZES if w != target.world_size]), label="loaded at")
    holds(target, evidence, _resumes_resharded, case, k, other)


def _resumes_resharded(target: Target, case: Case, k: int, other: int) -> None:
    """Saved after step `k` at the target's world size and loaded at `other`, `case` goes on
    as it does unbroken (a Case too short to save within holds trivially)."""
    if not 1 <= k < len(case.steps) or target.impl.sharding is None:
        return
    world = target.world_size
    whole = _completed(_drive(target, case, world), case, world).trace
    head = dataclasses.replace(case, steps=case.steps[:k], record=None)
    saved = _completed(_drive(target, head, world, save=True), head, world)
    rest = _continued(case, k, saved.trace)
    resumed = _drive(target, rest, other, resume=saved.saved).trace
    assert_identical(_after(whole, k), resumed, f"saved after step {k} at world size {world}, loaded at {other}",
                     [case])


def _continued(case: Case, k: int, head: Trace) -> Case:
    """The steps of `case` after step `k`, from the parameters `head` ended with."""
    params = tuple(dataclasses.replace(p, init=head.params[i][-1].astype(p.init.dtype))
                   for i, p in enumerate(case.params))
    return dataclasses.replace(case, params=params, steps=case.steps[k:], record=None)


def _after(trace: Trace, k: int) -> Trace:
    """`trace` from step k + 1 on."""
    return dataclasses.replace(trace, steps=trace.steps[k:], params=tuple(p[k:] for p in trace.params),
                               state=tuple({key: v[k:] for key, v in s.items()} for s in trace.state))


@check(
    "sharded.shard-size",
    "Every state tensor is kept in one dtype whatever the shard size: at world sizes 1, 2, 4 and the certified one, "
    "on every rank, for parameters of every size up to the profile's largest.",
    sharded=True,
)
def shard_size(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _one_dtype, data.draw(target.cases(), label="case"))
    holds(target, evidence, _one_dtype, data.draw(target.ladders(), label="ladder"))


def _one_dtype(target: Target, case: Case) -> None:
    outcomes = {w: _drive(target, case, w) for w in _sizes(target)}
    for i in range(len(case.params)):
        seen: dict[str, dict[str, tuple[int, int, int]]] = {}
        for w, outcome in outcomes.items():
            for r, dtypes in enumerate(outcome.dtypes):
                for key, (dtype, n) in dtypes[i].items():
                    seen.setdefault(key, {}).setdefault(dtype, (w, r, n))
        for key, kinds in seen.items():
            if len(kinds) > 1:
                said = [f"{dtype} at world size {w} (rank {r}, {n} elements)" for dtype, (w, r, n) in kinds.items()]
                raise CheckFailure(f"param {i} {key} is kept in " + " but in ".join(said) + ": the precision "
                                   "depends on the shard size", [case], severity="state")


@check(
    "sharded.rank-failure",
    "A rank that raises, hangs or dies at a step ends the run within the time limit, with an error naming that "
    "rank, and leaves no process behind.",
    drawn=False, sharded=True,
)
def rank_failure(target: Target, evidence: Evidence, data) -> None:
    case = _small_case(target.spec)
    try:
        _fails_cleanly(target, case)
    except CheckFailure as failure:
        failure.retest, failure.ablate = (_fails_cleanly, (case,)), False
        raise
    evidence.saw(None)


def _fails_cleanly(target: Target, case: Case) -> None:
    """A rank that raises, hangs or dies at step 2 of `case` ends the run within the limit,
    the run's failure naming that rank, and leaves no process behind."""
    last = target.world_size - 1
    pool.close(target.world_size, target.device)  # a fresh pool: what is left is the target's
    for kind in FAULTS:
        _completed(_drive(target, case, target.world_size), case, target.world_size)  # ranks up, before the clock
        started = time.monotonic()
        outcome = _drive(target, case, target.world_size, fault=(last, kind, 2), limit=FAULT_LIMIT)
        took, error = time.monotonic() - started, outcome.trace.error or ""
        what = f"a rank that {'dies' if kind == 'exit' else kind + 's'} at step 2 (rank {last})"
        if last not in outcome.failed:
            raise CheckFailure(f"{what}: the run {'blamed another: ' + error if error else 'ended without an error'}",
                               [case], severity="api")
        if took > FAULT_LIMIT + pool.START_LIMIT:
            raise CheckFailure(f"{what}: the run took {took:.0f} s to end", [case], severity="api")
        left = pool.leftovers(outcome.token)
        for pid, _ in left:
            os.kill(pid, signal.SIGKILL)
        if left:
            shown = ", ".join(f"{pid} ({command[:40]})" for pid, command in left[:3])
            raise CheckFailure(f"{what}: {len(left)} process(es) it started outlived the ranks: {shown}", [case],
                               severity="api")


def _small_case(spec: str) -> Case:
    """Two float32 parameters, three steps."""
    values = lambda n, scale: (np.arange(n, dtype=np.float64) - n / 2) * scale
    params = (Param(values(6, 0.5).reshape(2, 3)), Param(values(4, 0.25)))
    steps = tuple(Step((values(6, 0.125 * t).reshape(2, 3), values(4, -0.5 * t))) for t in (1, 2, 3))
    return Case(spec, params, (Group((0, 1)),), steps)
