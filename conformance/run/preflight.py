"""The preflight: one cheap probe of each behaviour a signature cannot show, before the checks.

One unsupported feature must be one finding, not twenty failures that all shrink to the
same cause. So before any check runs, the target is probed once on what a signature
cannot show (complex, float16, bfloat16 and float64 parameters, a Tensor lr,
non-contiguous parameters and gradients, param groups as dicts, 0-d and empty tensors,
``step(closure)``) and on the edges of the valid range that torch accepts (lr = 0,
eps = 0, a beta of 0, weight decay 1). Each probe is a tiny Case through the runner:

* a behaviour claimed only by default (a plain callable's, `Implementation.assumed`)
  that the target cleanly refuses is dropped from its claims, with a note saying what was
  probed, what it raised, and the ``--without`` that silences the note;
* a behaviour the target declares (in its `Implementation`), or a valid value torch
  accepts, that the target refuses is *avoided*: contract.accepts-valid fails on it, and
  every other check draws around it, so each still reports its own property;
* a probe the target breaks instead (it changed a parameter's dtype and the suite's next
  gradient no longer fits, it raised on a later step, its closure call failed) keeps the
  behaviour claimed: that is a bug for the checks to judge, never a refusal (`drive.Run`
  tells the two apart), and the header says so.

A probe torch's own single-tensor path also rejects is not held against the target.
An open signature (``**kwargs``) shows no keyword features: each is probed at
construction, and one whose keyword raises a TypeError naming it is dropped, "read by
probing". The preflight also finds the keywords the target must be given even at torch's
defaults (`explicit`): those it cannot do without, and those whose own default differs
from torch's (read from its signature and from the param group it builds); every other
keyword at torch's default is left out, as a user leaves it out. For a plain function
whose spec nothing declares, the spec is read from the optimizer it returns (a
``torch.optim.AdamW``, or a param group with ``decoupled_weight_decay=True``: adamw).
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
import inspect
import time
from collections.abc import Callable

import numpy as np
import torch

from conformance.cases import strategies
from conformance.cases.case import Case, Group, Param, Step
from conformance.cases.trace import Trace
from conformance.dtypes import complex_from, round_to
from conformance.registry import TargetError
from conformance.run import distributed, reference
from conformance.run.drive import DEFAULTS, guarded_global_state, passed
from conformance.run.target import Target
from conformance.vocabulary import BEHAVIOURS, EDGES, KEYWORD_FEATURES, Profile

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


PLAIN = Probe("plain", "", "one float32 (3,) parameter at torch's defaults, one step",
              lambda spec: _case(spec, steps=1))
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
    """What the target raised, refusing the probe cleanly where torch's single-tensor path
    did not (None: accepted, or broken rather than refused: see `breakage`)."""
    ran = _probed(target, probe)
    return ran.error if ran.error is not None and ran.refused else None


def breakage(target: Target, probe: Probe) -> str | None:
    """How the target broke the probe's run without refusing it cleanly (None: it did not):
    the error, and what the run observed before it."""
    ran = _probed(target, probe)
    if ran.error is None or ran.refused:
        return None
    seen = [str(o) for o in ran.observations if o.kind != "global-state"]
    return ran.error + (f", after {seen[0]}" if seen else "")


def _probed(target: Target, probe: Probe):
    """The target's run of the probe's Case (no error where torch's path raises too). Only
    the probe's own behaviours are claimed: one param group is passed as a plain list of
    tensors, two as dicts."""
    case = probe.build(target.spec)
    claims = (target.impl.claims - set(BEHAVIOURS)) | case.features()
    try:
        ran = dataclasses.replace(target, impl=dataclasses.replace(target.impl, claims=claims)).run(case)
    except distributed.Hung as hung:  # broken, not refused: the checks find the hang
        return Trace((), (), (), error=str(hung))
    if ran.error is not None and target.torch().run(case).error is not None:
        return dataclasses.replace(ran, error=None)
    return ran


#: The value each keyword feature is probed with, in an open signature.
KEYWORD_PROBES = {"weight_decay": 0.1, "amsgrad": True, "maximize": True, "decoupled_weight_decay": True}


@dataclasses.dataclass(frozen=True)
class Note:
    """A probe the target refused or broke: which, and what it raised."""

    probe: str
    feature: str
    what: str
    raised: str

    def dropped(self) -> str:
        how = ", read by probing" if self.probe.startswith("keyword ") else ""
        return (f"{self.feature} dropped from the claims{how}: {self.what} raised {self.raised} "
                f"(--without {self.feature} silences this note)")

    def avoided(self) -> str:
        return f"rejects {self.what}, which torch accepts: {self.raised} (contract.accepts-valid fails)"

    def kept(self) -> str:
        return (f"{self.feature} kept in the claims: {self.what} broke the run, which is not a clean refusal: "
                f"{self.raised} (the checks judge it)")


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
    #: Probes the target broke rather than refused: their behaviours stay claimed.
    kept: tuple[Note, ...] = ()
    #: Keywords passed even at torch's defaults (`Implementation.explicit`), and why.
    explicit: dict = dataclasses.field(default_factory=dict)
    #: The spec read from the optimizer a plain function returns, and how ("" : not read).
    spec: str = ""
    spec_read: str = ""
    #: Keyword features an open signature was found, by probing, to take.
    probed: tuple[str, ...] = ()

    def apply(self, target: Target) -> Target:
        """`target` with the dropped claims disclaimed, the avoided behaviours avoided, the
        explicit keywords passed always, and the spec read (if one was)."""
        impl = dataclasses.replace(target.impl.without(n.feature for n in self.dropped),
                                   explicit=frozenset(self.explicit))
        return dataclasses.replace(target, impl=impl, avoid=target.avoid | {n.feature for n in self.avoided},
                                   spec=self.spec or target.spec)

    def check_timeout(self, profile: Profile) -> float:
        """The time limit of one check: the profile's, plus what the target's own slowness
        needs for the most runs a check makes (examples, covering rows and shrinking, each a
        construction and up to max_steps steps), so that a correct but slow target does not
        time out while a hang is still caught."""
        runs = RUNS_PER_EXAMPLE * (profile.examples + strategies.MAX_COVERING_ROWS)
        return profile.timeout + runs * (self.construct_s + profile.max_steps * self.step_s)

    def lines(self) -> list[str]:
        """Header lines: the spec read, the notes, the keywords always passed, then the cost."""
        out = [f"preflight: spec {self.spec} {self.spec_read}"] if self.spec else []
        out += [f"preflight: {n.dropped()}" for n in self.dropped] + [f"preflight: {n.avoided()}" for n in self.avoided]
        out += [f"preflight: {n.kept()}" for n in self.kept]
        if self.explicit:
            out.append("preflight: passed even at torch's default: " + "; ".join(
                f"{k} ({why})" for k, why in self.explicit.items()))
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
        for key in ("dropped", "avoided", "kept"):
            doc[key] = tuple(Note(**n) for n in doc.get(key, ()))
        doc["probed"] = tuple(doc.get("probed", ()))
        return cls(**doc)


#: Runs of the target per example a check may make, shrinking and explaining included (a generous bound).
RUNS_PER_EXAMPLE = 10


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2g} ms" if seconds < 1 else f"{seconds:.2g} s"


def run(target: Target, read_spec: bool = False) -> Preflight:
    """Probe `target` (see the module docstring). Raises PreflightError if it cannot be
    certified. With `read_spec` (no --spec given), a plain function's spec is read from the
    optimizer it returns."""
    start = time.perf_counter()
    spec, spec_read = _spec_of(target) if read_spec and target.impl.spec_from == "default" else ("", "")
    target = dataclasses.replace(target, spec=spec or target.spec)
    explicit = {} if target.impl.sharding else explicit_keywords(target)
    target = dataclasses.replace(target, impl=dataclasses.replace(target.impl, explicit=frozenset(explicit)))
    if target.impl.sharding is None:
        construct_s, step_s = _timed(target.impl.factory, target.impl.name, target.device,
                                     _given(target.spec, target.impl.explicit))
    else:
        construct_s, step_s = _timed_across(target)
    torch_construct_s, torch_step_s = _timed(reference.single_tensor(target.spec).factory, "torch", target.device)
    ran = _probed(target, PLAIN)
    if ran.error is not None:
        raise PreflightError(f"{target.impl.name} raised on the plainest case ({PLAIN.what}): {ran.error}")
    probed = _open_keywords(target)
    dropped = [n for n in map(lambda k: _keyword_refused(target, k), probed) if n]
    target = dataclasses.replace(target, impl=target.impl.without(n.feature for n in dropped))
    avoided, kept = [], []
    for probe in applicable(target):
        ran = _probed(target, probe)
        if ran.error is None:
            continue
        if not ran.refused:
            kept.append(Note(probe.name, probe.feature, probe.what, breakage(target, probe) or ran.error))
            continue
        note = Note(probe.name, probe.feature, probe.what, ran.error.split(": ", 1)[-1])
        (dropped if probe.feature in target.impl.assumed else avoided).append(note)
    return Preflight(tuple(dropped), tuple(avoided), construct_s, step_s, torch_construct_s, torch_step_s,
                     time.perf_counter() - start, kept=tuple(kept), explicit=explicit, spec=spec, spec_read=spec_read,
                     probed=tuple(k for k in probed if k not in {n.feature for n in dropped}))


def _given(spec: str, explicit, **extra) -> dict:
    """The constructor keywords a user gives at torch's defaults (plus `extra`)."""
    return passed(dict(DEFAULTS[spec], **extra), DEFAULTS[spec], explicit)


def _built(target: Target, **keywords):
    """The target's optimizer over one float32 tensor, given `keywords` (global state guarded)."""
    with guarded_global_state([], step=0):
        return target.impl.factory([torch.ones(3, device=target.device, requires_grad=True)], **keywords)


def _spec_of(target: Target) -> tuple[str, str]:
    """("adamw", how it was read) if the optimizer a plain function returns is torch's AdamW
    or a subclass, or keeps ``decoupled_weight_decay=True`` in its param group; else ("", "")."""
    try:
        opt = _built(target, **_given("adam", target.impl.explicit))
    except Exception:
        return "", ""
    names = [f"{c.__module__}.{c.__name__}" for c in type(opt).__mro__]
    if "torch.optim.adamw.AdamW" in names:
        return "adamw", (f"(read from the optimizer it returns, {type(opt).__qualname__}, a torch.optim.AdamW; "
                         "--spec adam overrides)")
    group = (getattr(opt, "param_groups", None) or [{}])[0]
    if isinstance(group, dict) and group.get("decoupled_weight_decay") is True:
        return "adamw", ("(read from the optimizer it returns: its param group has decoupled_weight_decay=True; "
                         "--spec adam overrides)")
    return "", ""


def explicit_keywords(target: Target) -> dict[str, str]:
    """The keywords the target must be given even at torch's defaults, and why: those its
    signature requires, those whose own default (in its signature, or in the param group
    it builds) differs from torch's."""
    defaults = DEFAULTS[target.spec]
    passable = [k for k in defaults if k in ("lr", "betas", "eps") or k in target.impl.claims]
    explicit = {}
    try:
        parameters = inspect.signature(target.impl.factory).parameters
    except (TypeError, ValueError):
        parameters = {}
    for k in passable:
        p = parameters.get(k)
        if p is not None and p.default is p.empty:
            explicit[k] = "required by its signature"
        elif p is not None and not _equal(p.default, defaults[k]):
            explicit[k] = f"its default is {p.default!r}, torch's {defaults[k]!r}"
    try:
        opt = _built(target, **{k: defaults[k] for k in explicit})
    except TypeError:
        for k in ("lr", "betas", "eps"):
            explicit.setdefault(k, "factory(params) raised TypeError")
        try:
            opt = _built(target, **{k: defaults[k] for k in explicit})
        except Exception:
            return explicit
    except Exception:
        return explicit
    group = (getattr(opt, "param_groups", None) or [{}])[0]
    for k in passable:
        if isinstance(group, dict) and k in group and k not in explicit and not _equal(group[k], defaults[k]):
            explicit[k] = f"its param group holds {group[k]!r} by default, torch's {defaults[k]!r}"
    return explicit


def _equal(value, default) -> bool:
    """A default equal to torch's (betas as a tuple or a list; never a tensor)."""
    if isinstance(default, tuple):
        return isinstance(value, (tuple, list)) and len(value) == len(default) and all(
            _equal(v, d) for v, d in zip(value, default))
    try:
        return not torch.is_tensor(value) and bool(value == default) and type(value) is not str
    except Exception:
        return False


def _open_keywords(target: Target) -> list[str]:
    """The keyword features claimed only because the signature is open (``**kwargs``)."""
    return [k for k in KEYWORD_FEATURES if k in target.impl.assumed and k in DEFAULTS[target.spec]]


def _keyword_refused(target: Target, keyword: str) -> Note | None:
    """A note if constructing with `keyword` raises an error that names it: not accepted (a
    TypeError), or, for a switch (amsgrad=True, ...), not supported (a ValueError or
    NotImplementedError: "does not support amsgrad=True"). A ValueError on a value torch
    takes (weight_decay=0.1) is no refusal: contract.accepts-valid judges it."""
    value = KEYWORD_PROBES[keyword]
    refusals = (TypeError, ValueError, NotImplementedError) if value is True else (TypeError,)
    try:
        _built(target, **_given(target.spec, target.impl.explicit, **{keyword: value}))
    except refusals as e:
        if keyword in str(e):
            return Note(f"keyword {keyword}", keyword, f"{keyword}={value!r}", f"{type(e).__name__}: {e}")
    except Exception:
        pass
    return None


def _timed_across(target: Target, repeats: int = 3) -> tuple[float, float]:
    """A distributed target's (construction, step) seconds on its ranks: a whole run of the
    plain one-step Case (construction, a step and the round trip to the ranks), and what a
    second step adds; the best of `repeats` after a first run (which starts the ranks)."""
    two = _case(target.spec)
    one = PLAIN.build(target.spec)
    best = {}
    for case in (one, one, *[one, two] * repeats):
        start = time.perf_counter()
        trace = target.run(case)
        if trace.error:
            raise PreflightError(f"{target.impl.name} raised on {target.world_size} process(es): {trace.error}")
        took = time.perf_counter() - start
        best[len(case.steps)] = min(best.get(len(case.steps), took), took)
    return best[1], max(best[2] - best[1], 1e-6)


def _timed(factory, name: str, device: str, given: dict | None = None, repeats: int = 3) -> tuple[float, float]:
    """(construction, step) seconds of `factory` (given `given`: torch's defaults as a user
    gives them) on a small problem, the best of `repeats`, a step timed after a first one
    (which may compile or load kernels). Checks the optimizer interface and that it can take
    one step; a later step that raises is for the checks to find."""
    constructions, steps = [], []
    for _ in range(repeats):
        params = [torch.ones(64, device=device, requires_grad=True)]
        with guarded_global_state([], step=0):
            start = time.perf_counter()
            try:
                opt = factory(params, **(given or {}))
            except Exception as e:
                raise PreflightError(f"{name} raised at construction with torch's defaults: "
                                     f"{type(e).__name__}: {e}") from None
            constructions.append(time.perf_counter() - start)
            missing = [m for m in INTERFACE
                       if not (hasattr(opt, m) if m == "param_groups" else callable(getattr(opt, m, None)))]
            if missing:
                raise PreflightError(f"{name}: its factory returned {type(opt).__name__}, which lacks "
                                     f"{', '.join(missing)}: not an optimizer with torch.optim.Optimizer's interface")
            for k in range(2):
                params[0].grad = torch.full_like(params[0], 0.5)
                start = time.perf_counter()
                try:
                    opt.step()
                except Exception as e:
                    if k:
                        break
                    raise PreflightError(f"{name} raised in step() with torch's defaults: "
                                         f"{type(e).__name__}: {e}") from None
                steps.append(time.perf_counter() - start)
    return min(constructions), min(steps[1::2] or steps)
