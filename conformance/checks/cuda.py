"""CUDA only: what a GPU optimizer promises beyond the numbers, checked where it runs.

Each check here observes ``--device cuda`` and skips with that reason elsewhere; the gate
(``certify --device cuda``) refuses to start without a usable GPU, so a GPU job cannot
pass by skipping. A target that declares ``capturable`` (torch's ``capturable=True``) is
held to CUDA-graph capture: step 1 runs eagerly, step 2 is captured once, and every step
from 2 on is a replay of that graph, with the gradients copied into the same buffers and
the lr tensor changed with ``fill_``. The replayed run must follow the target's own eager
run within the invariant tolerance and the oracle within the error budget, and keep
``state["step"]`` on the device. Its ``step()`` after the first must not synchronise with the host. A
target that declares ``allocation_free`` (a fused kernel) allocates nothing in ``step()``
after its first step, as the CUDA caching allocator counts its requests.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from conformance.cases.case import Case
from conformance.cases.trace import Trace
from conformance.checks.assertions import assert_same_trajectory, completed
from conformance.checks.catalogue import CheckFailure, Evidence, check
from conformance.run import runner
from conformance.run.drive import Run, make_tensor
from conformance.run.target import Target
from conformance.truth import budget, oracle


def static_case(target: Target, data) -> Case:
    """A Case a captured graph can replay: at least three steps, every parameter with a
    gradient at every step, no events, no closure, every group's lr a tensor (where the
    target claims tensor_lr), and an lr changed after the capture (at step 3 or later)."""
    tensor_lr = "tensor_lr" in target.claims
    plan = dataclasses.replace(target.plan, missing_grad=False, late_group=False, closure=False, tensor_lr=tensor_lr)
    case = data.draw(target.cases(events=False, late_joins=False, plan=plan), label="case")
    if tensor_lr:
        groups = tuple(dataclasses.replace(g, tensor_lr=True, lr=float(np.float32(g.lr))) for g in case.groups)
    else:
        groups = case.groups
    steps = list(case.steps)
    while len(steps) < 3:
        steps.append(dataclasses.replace(steps[-1], set=()))
    if not any(s.set for s in steps[2:]):
        steps[2] = dataclasses.replace(steps[2], set=((0, "lr", groups[0].lr / 2),))
    return dataclasses.replace(case, groups=groups, steps=tuple(steps))


class StaticGrads(Run):
    """A Run whose gradients are fixed device buffers, written in place at every step (what
    a captured graph reads), and whose step() is `call`."""

    def step(self, t: int, step: dict, opt) -> None:
        for i, (p, spec) in enumerate(zip(self.params, self.case["params"])):
            values = make_tensor(next(self.grads[i]), spec["dtype"], spec["grad_layout"], self.device)
            if p.grad is None:
                p.grad = values
            else:
                p.grad.copy_(values)
        torch.cuda.synchronize()
        self.call(t, opt)

    def call(self, t: int, opt) -> None:
        opt.step()


class Captured(StaticGrads):
    """Step 1 eagerly (on a side stream, as torch's capture idiom warms up); step 2 captured
    once in a CUDA graph; every step from 2 on a replay. A ``state["step"]`` that is not on
    the device stops the run."""

    graph: torch.cuda.CUDAGraph | None = None

    def call(self, t: int, opt) -> None:
        if t == 1:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                opt.step()
            torch.cuda.current_stream().wait_stream(side)
            return
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                opt.step()
        self.graph.replay()

    def record(self, t: int, opt) -> None:
        super().record(t, opt)
        for i, p in enumerate(self.params):
            step = opt.state.get(p, {}).get("step")
            if not torch.is_tensor(step) or step.device.type != "cuda":
                where = "missing" if step is None else f"on {step.device}" if torch.is_tensor(step) else type(step)
                raise RuntimeError(f"state['step'] of param {i} is {where}, not on the device, so a replayed "
                                   "graph cannot advance it")


class Unsynced(StaticGrads):
    """Every step() after the first (which creates the state, as the warm-up before a capture
    does) under torch.cuda's sync debug mode "error": one that synchronises with the host raises."""

    def call(self, t: int, opt) -> None:
        if t == 1:
            opt.step()
            return
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("error")
        try:
            opt.step()
        finally:
            torch.cuda.set_sync_debug_mode(previous)


class Counted(StaticGrads):
    """Counts the device memory requests of every step() after the first (the CUDA caching
    allocator's ``allocation.all.allocated``); a step that makes any stops the run."""

    def call(self, t: int, opt) -> None:
        before = torch.cuda.memory_stats().get("allocation.all.allocated", 0)
        opt.step()
        made = torch.cuda.memory_stats().get("allocation.all.allocated", 0) - before
        if t > 1 and made:
            raise RuntimeError(f"step() allocated {made} block(s) of device memory")


def driven(target: Target, case: Case, driver: type[Run], how: str) -> Trace:
    """The target's run of `case` on `driver`; a failure saying `how` it was driven if it stopped."""
    trace = runner.run(target.impl, case, target.device, driver)
    if trace.error:
        raise CheckFailure(f"{how}, the run stopped at {trace.error}", [case], severity="api")
    return trace


@check(
    "cuda.graph-replay",
    "With CUDA, step() captured once in a CUDA graph and replayed follows the eager run within the invariant "
    "tolerance and the oracle within the error budget, keeps state['step'] on the device, and an lr tensor "
    "changed with fill_ between replays takes effect.",
    needs=["capturable", "tensor_lr"], device="cuda",
)
def graph_replay(target: Target, evidence: Evidence, data) -> None:
    case = static_case(target, data)
    replayed = driven(target, case, Captured, "captured in a CUDA graph and replayed")
    eager, truth = completed(target, case), oracle.run(case)
    parity = budget.judge(replayed, target.references(case), truth, case)
    if not parity.passed:
        raise CheckFailure(f"the replayed graph is off the oracle: {parity} (a value baked into the graph at "
                           "capture: a step count or an lr read on the host?)", [case], parity)
    assert_same_trajectory(eager, replayed, case, "the eager run and the replayed graph", [case])
    evidence.saw(parity)


@check(
    "cuda.no-host-sync",
    "With CUDA, step() of a target that declares capturable never synchronises with the host after its first step.",
    needs=["capturable", "tensor_lr"], device="cuda",
)
def no_host_sync(target: Target, evidence: Evidence, data) -> None:
    driven(target, static_case(target, data), Unsynced, "with torch.cuda.set_sync_debug_mode('error')")
    evidence.saw(None)


@check(
    "cuda.no-allocation",
    "With CUDA, step() of a target that declares allocation_free requests no device memory after its first step, "
    "as the CUDA caching allocator counts.",
    needs=["allocation_free"], device="cuda",
)
def no_allocation(target: Target, evidence: Evidence, data) -> None:
    driven(target, static_case(target, data), Counted, "with the CUDA caching allocator counting")
    evidence.saw(None)
