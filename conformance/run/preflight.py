"""The preflight: one cheap probe of each behaviour a signature cannot show, before the checks.

One unsupported feature must be one finding, not twenty failures that all shrink to the
same cause. So before any check runs, the target is probed once on what a signature
cannot show (complex, float16, bfloat16 and float64 parameters, a Tensor lr,
non-contiguous parameters and gradients, param groups as dicts, 0-d and empty tensors,
``step(closure)``) and on the edges of the valid range that torch accepts (lr = 0,
eps = 0, a beta of 0, weight decay 1). Each probe is a tiny Case through the runner:

* a behaviour claimed only by default (a plain callable's, `Implementation.assumed`)
  that the target rejects is dropped from its claims, with a note saying what was
  probed, what it raised, and the ``--without`` that silences the note;
* a behaviour the target declares (in its `Implementation`), or a valid value torch
  accepts, that the target rejects is *avoided*: contract.accepts-valid fails on it, and
  every other check draws around it, so each still reports its own property.

A probe torch's own single-tensor path also rejects is not held against the target.
The preflight also times construction and a step, the target's and torch's, so that
per-check time limits fit a slow target (`Preflight.check_timeout`). A target that
raises on the plainest probe, whose factory returns no optimizer, or that has no
``step`` cannot be certified at all: `PreflightError`, one line.

`run` works in-process (the kill matrix, the tests); certify and the plugin run it in a
process of its own (`front.isolation`), so that a target that crashes or hangs there
cannot take the run down.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch

from conformance.cases import strategies
from conformance.cases.case import Case, Group, Param, Step
from conformance.dtypes import complex_from, round_to
from conformance.registry import TargetError
from conformance.run import reference
from conformance.run.runner import guarded_global_state
from conformance.run.target import Target
from conformance.vocabulary import BEHAVIOURS, EDGES, Profile

#: The methods of torch.optim.Optimizer the runner calls.
INTERFACE = ("step", "zero_grad", "state_dict", "load_state_dict", "param_groups")


class PreflightError(TargetError):
    """The target cannot be certified at all. One line."""


@dataclasses.dataclass(frozen=True)
class Probe:
    """A behaviour (`feature`: a registry feature, or an edge of the valid range) and the
    tiny Case that exercises it and nothing else."""

    name: str
    feature: str  # a registry feature, or a registry.EDGES name
    what: str  # how the report says it
    build: Callable[[str], Case]  # spec -> Case


def _case(spec: str, dtype: str = "float32", shape=(3,), layout="contiguous", grad_layout="contiguous",
          steps: int = 2, closure: bool = False, extra: tuple[Param, ...] = (), late: bool = False, **hyper) -> Case:
    """A small Case: one parameter of `dtype` and `shape` (plus `extra` ones, in a group of
    their own that joins before step 2 if `late`), two steps of fixed gradients."""
    rs = np.random.RandomState(0)

    def values(shape, dtype):
        draw = lambda: rs.standard_normal(shape)
        return round_to(complex_from(draw(), draw()) if dtype.startswith("complex") else draw(), dtype)

    params = (Param(values(shape, dtype), dtype, layout, grad_layout), *extra)
    groups = (Group((0,), **hyper),)
    if extra:
        groups += (Group(tuple(range(1, len(params))), added_at=2 if late else 1),)
    grads = [tuple(values(p.shape, p.dtype) for p in params) for _ in range(steps)]
    return Case(spec, params, groups, tuple(Step(g, closure=closure) for g in grads))


def _extra(shape) -> tuple[Param, ...]:
    return (Param(np.ones(shape), "float32"),)


PLAIN = Probe("plain", "", "one float32 (3,) parameter at torch's defaults, two steps", lambda spec: _case(spec))
PROBES = (
    Probe("complex", "complex", "a complex64 parameter", lambda spec: _case(spec, "complex64")),
    Probe("float16", "float16", "a float16 parameter", lambda spec: _case(spec, "float16")),
    Probe("bfloat16", "bfloat16", "a bfloat16 parameter", lambda spec: _case(spec, "bfloat16")),
    Probe("float64", "float64", "a float64 parameter", lambda spec: _case(spec, "float64")),
    Probe("tensor_lr", "tensor_lr", "lr given as a Tensor",
          lambda spec: _case(spec, tensor_lr=True, lr=float(np.float32(1e-3)))),
    Probe("noncontiguous-param", "noncontiguous", "a non-contiguous (sliced) parameter",
          lambda spec: _case(spec, layout="sliced")),
    Probe("noncontiguous-grad", "noncontiguous", "a non-contiguous (transposed) gradient",
          lambda spec: _case(spec, shape=(3, 2), grad_layout="transposed")),
    Probe("param_groups", "param_groups", "two param groups given as dicts",
          lambda spec: _case(spec, extra=_extra((2,)))),
    Probe("add_param_group", "param_groups", "a param group added by add_param_group after the first step",
          lambda spec: _case(spec, extra=_extra((2,)), late=True)),
    Probe("zero_dim", "zero_dim", "a 0-d parameter", lambda spec: _case(spec, shape=())),
    Probe("empty", "empty", "an empty parameter", lambda spec: _case(spec, shape=(0,))),
    Probe("closure", "closure", "step(closure)", lambda spec: _case(spec, closure=True)),
    Probe("lr=0", "lr=0", "lr=0", lambda spec: _case(spec, lr=0.0)),
    Probe("eps=0", "eps=0", "eps=0", lambda spec: _case(spec, eps=0.0)),
    Probe("beta1=0", "beta1=0", "betas=(0.0, 0.999)", lambda spec: _case(spec, betas=(0.0, 0.999))),
    Probe("beta2=0", "beta2=0", "betas=(0.9, 0.0)", lambda spec: _case(spec, betas=(0.9, 0.0))),
    Probe("weight_decay=1", "weight_decay=1", "weight_decay=1", lambda spec: _case(spec, weight_decay=1.0)),
)


def applicable(target: Target) -> list[Probe]:
    """The probes of what the target claims (an edge needs the keyword it sets)."""
    return [p for p in PROBES if p.feature in target.impl.claims
            or p.feature in EDGES and (p.feature != "weight_decay=1" or "weight_decay" in target.impl.claims)]


def rejection(target: Target, probe: Probe) -> str | None:
    """What the target raised on the probe where torch's single-tensor path did not (None:
    accepted). Only the probe's own behaviours are claimed: one param group is passed as a
    plain list of tensors, two as dicts."""
    case = probe.build(target.spec)
    claims = (target.impl.claims - set(BEHAVIOURS)) | case.features()
    ran = dataclasses.replace(target, impl=dataclasses.replace(target.impl, claims=claims)).run(case)
    if ran.error is None or target.torch().run(case).error is not None:
        return None
    return ran.error


@dataclasses.dataclass(frozen=True)
class Note:
    """A probe the target rejected: which, and what it raised."""

    probe: str
    feature: str
    what: str
    raised: str

    def dropped(self) -> str:
        return (f"{self.feature} dropped from the claims: {self.what} raised {self.raised} "
                f"(--without {self.feature} silences this note)")

    def avoided(self) -> str:
        return f"rejects {self.what}, which torch accepts: {self.raised} (contract.accepts-valid fails)"


@dataclasses.dataclass(frozen=True)
class Preflight:
    """What the preflight found and measured (seconds)."""

    dropped: tuple[Note, ...] = ()
    avoided: tuple[Note, ...] = ()
    construct_s: float = 0.0
    step_s: float = 0.0
    torch_construct_s: float = 0.0
    torch_step_s: float = 0.0
    duration_s: float = 0.0
    #: Why the preflight did not finish (it timed out, its process died); "" if it did.
    interrupted: str = ""

    def apply(self, target: Target) -> Target:
        """`target` with the dropped claims disclaimed and the avoided behaviours avoided."""
        impl = target.impl.without(n.feature for n in self.dropped)
        return dataclasses.replace(target, impl=impl, avoid=target.avoid | {n.feature for n in self.avoided})

    def check_timeout(self, profile: Profile) -> float:
        """The time limit of one check: the profile's, plus what the target's own slowness
        needs for the most runs a check makes (examples, covering rows and shrinking, each a
        construction and up to max_steps steps), so that a correct but slow target does not
        time out while a hang is still caught."""
        runs = RUNS_PER_EXAMPLE * (profile.examples + strategies.MAX_COVERING_ROWS)
        return profile.timeout + runs * (self.construct_s + profile.max_steps * self.step_s)

    def lines(self) -> list[str]:
        """Header lines: the notes, then the cost."""
        out = [f"preflight: {n.dropped()}" for n in self.dropped] + [f"preflight: {n.avoided()}" for n in self.avoided]
        if self.interrupted:
            return out + [f"preflight: {self.interrupted}; the checks run on every claim, "
                          "with the profile's time limit"]
        return out + [f"preflight {self.duration_s:.1f} s: construction {_ms(self.construct_s)}, "
                      f"step {_ms(self.step_s)} (torch {_ms(self.torch_construct_s)}, {_ms(self.torch_step_s)})"]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, doc: dict) -> Preflight:
        doc = dict(doc)
        doc["dropped"] = tuple(Note(**n) for n in doc["dropped"])
        doc["avoided"] = tuple(Note(**n) for n in doc["avoided"])
        return cls(**doc)


#: Runs of the target per example a check may make, shrinking and explaining included (a generous bound).
RUNS_PER_EXAMPLE = 10


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2g} ms" if seconds < 1 else f"{seconds:.2g} s"


def run(target: Target) -> Preflight:
    """Probe `target` (see the module docstring). Raises PreflightError if it cannot be certified."""
    start = time.perf_counter()
    if target.impl.sharding is None:
        construct_s, step_s = _timed(target.impl.factory, target.impl.name, target.device)
    else:
        construct_s, step_s = _timed_across(target)
    torch_construct_s, torch_step_s = _timed(reference.single_tensor(target.spec).factory, "torch", target.device)
    error = rejection(target, PLAIN)
    if error is not None:
        raise PreflightError(f"{target.impl.name} raised on the plainest case ({PLAIN.what}): {error}")
    dropped, avoided = [], []
    for probe in applicable(target):
        error = rejection(target, probe)
        if error is None:
            continue
        note = Note(probe.name, probe.feature, probe.what, error.split(": ", 1)[-1])
        (dropped if probe.feature in target.impl.assumed else avoided).append(note)
    return Preflight(tuple(dropped), tuple(avoided), construct_s, step_s, torch_construct_s, torch_step_s,
                     time.perf_counter() - start)


def _timed_across(target: Target, repeats: int = 3) -> tuple[float, float]:
    """A distributed target's (construction, step) seconds on its ranks: a whole run of the
    plain one-step Case (construction, a step and the round trip to the ranks), and what a
    second step adds; the best of `repeats` after a first run (which starts the ranks)."""
    two = PLAIN.build(target.spec)
    one = dataclasses.replace(two, steps=two.steps[:1])
    best = {}
    for case in (one, one, *[one, two] * repeats):
        start = time.perf_counter()
        trace = target.run(case)
        if trace.error:
            raise PreflightError(f"{target.impl.name} raised on {target.world_size} process(es): {trace.error}")
        took = time.perf_counter() - start
        best[len(case.steps)] = min(best.get(len(case.steps), took), took)
    return best[1], max(best[2] - best[1], 1e-6)


def _timed(factory, name: str, device: str, repeats: int = 3) -> tuple[float, float]:
    """(construction, step) seconds of `factory` on a small problem, the best of `repeats`
    after a first step (which may compile or load kernels). Checks the optimizer interface."""
    constructions, steps = [], []
    for _ in range(repeats):
        params = [torch.ones(64, device=device, requires_grad=True)]
        with guarded_global_state([], step=0):
            start = time.perf_counter()
            try:
                opt = factory(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
            except Exception as e:
                raise PreflightError(f"{name} raised at construction with torch's defaults: "
                                     f"{type(e).__name__}: {e}") from None
            constructions.append(time.perf_counter() - start)
            missing = [m for m in INTERFACE
                       if not (hasattr(opt, m) if m == "param_groups" else callable(getattr(opt, m, None)))]
            if missing:
                raise PreflightError(f"{name}: its factory returned {type(opt).__name__}, which lacks "
                                     f"{', '.join(missing)}: not an optimizer with torch.optim.Optimizer's interface")
            for _ in range(2):
                params[0].grad = torch.full_like(params[0], 0.5)
                start = time.perf_counter()
                try:
                    opt.step()
                except Exception as e:
                    raise PreflightError(f"{name} raised in step() with torch's defaults: "
                                         f"{type(e).__name__}: {e}") from None
                steps.append(time.perf_counter() - start)
    return min(constructions), min(steps[1::2])
