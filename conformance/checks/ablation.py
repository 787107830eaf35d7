"""Why a check fails: the features of its minimal Case without which the failure vanishes.

A minimal Case shows *that* a property fails, not *what for*: a transposed float16
parameter in a second group may fail for any of those reasons, or for none of them.
Each ablation reverts one non-default feature of the Case (a layout to contiguous, a
gradient's strides to its parameter's, a dtype to float32, a flag off, the groups merged,
the hyperparameters to torch's defaults) and reruns the failed property on it (kept by
`checks.base.holds`). A feature whose reversion makes the failure vanish is necessary:
"fails only with a gradient whose strides differ from its parameter's". The steps are
cut too: the fewest steps that still show the failure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np

from conformance import dtypes
from conformance.cases.case import Case, CaseError, Param, Resume, Step
from conformance.checks.catalogue import CheckFailure, CheckSkipped, CheckTimeout
from conformance.run import distributed
from conformance.run.target import Target

#: Ablations stop after this long (a failure is reported with what was found by then).
SECONDS = 30.0


def _params(case: Case, change: Callable[[Param], Param]) -> Case | None:
    params = tuple(change(p) for p in case.params)
    if all(a is b for a, b in zip(params, case.params)):
        return None
    return dataclasses.replace(case, params=params)


def _laid_out(p: Param, **layouts) -> Param:
    """`p` with the given layouts (itself if it has them already)."""
    return p if all(getattr(p, k) == v for k, v in layouts.items()) else dataclasses.replace(p, **layouts)


def _groups(case: Case, **values) -> Case | None:
    """Every group with `values`, and no change of those keys between steps (None if nothing changes)."""
    if all(getattr(g, k) == v for g in case.groups for k, v in values.items()) and not any(
            c[1] in values for s in case.steps for c in s.set):
        return None
    steps = tuple(dataclasses.replace(s, set=tuple(c for c in s.set if c[1] not in values)) for s in case.steps)
    resume = case.resume
    if resume is not None and values.get("amsgrad") is False:  # no running max to resume from
        resume = Resume(resume.step, tuple({k: a for k, a in m.items() if k != "max_exp_avg_sq"}
                                           for m in resume.moments))
    return dataclasses.replace(case, groups=tuple(dataclasses.replace(g, **values) for g in case.groups), steps=steps,
                               resume=resume)


def _steps(case: Case, change: Callable[[Step], Step]) -> Case | None:
    steps = tuple(change(s) for s in case.steps)
    if all(a is b for a, b in zip(steps, case.steps)):
        return None
    return dataclasses.replace(case, steps=steps)


def _retyped(case: Case, kinds: tuple[str, ...], to: Callable[[str], str]) -> Case | None:
    """Parameters of `kinds` (and their gradients) in dtype `to(kind)`; None if a value overflows."""
    changed = [i for i, p in enumerate(case.params) if p.dtype in kinds]
    if not changed:
        return None

    def retype(a: np.ndarray, dtype: str) -> np.ndarray:
        with np.errstate(over="ignore"):
            out = dtypes.round_to(a, dtype)
        if np.any(np.isfinite(a) & ~np.isfinite(out)):
            raise CaseError("a value overflows")
        return out

    params = list(case.params)
    for i in changed:
        dtype = to(params[i].dtype)
        params[i] = dataclasses.replace(params[i], init=retype(params[i].init, dtype), dtype=dtype)
    steps = tuple(dataclasses.replace(s, grads=tuple(g if g is None or i not in changed else retype(g, params[i].dtype)
                                                     for i, g in enumerate(s.grads))) for s in case.steps)
    resume = case.resume and Resume(case.resume.step, tuple(
        {k: retype(a, params[i].dtype) for k, a in m.items()} if i in changed else m
        for i, m in enumerate(case.resume.moments)))
    return dataclasses.replace(case, params=tuple(params), steps=steps, resume=resume)


def _as_real_pairs(case: Case) -> Case | None:
    """Complex parameters as real ones with a trailing (re, im) axis: torch's view_as_real."""
    changed = [i for i, p in enumerate(case.params) if dtypes.is_complex(p.dtype)]
    if not changed:
        return None
    params = list(case.params)
    for i in changed:
        p = params[i]
        fits = p.layout if p.layout in ("contiguous", "transposed", "sliced") else "contiguous"
        grad_fits = p.grad_layout if p.grad_layout in ("contiguous", "transposed", "sliced") else "contiguous"
        params[i] = Param(dtypes.components(p.init), dtypes.real(p.dtype), fits, grad_fits)
    steps = tuple(dataclasses.replace(s, grads=tuple(g if g is None or i not in changed else dtypes.components(g)
                                                     for i, g in enumerate(s.grads))) for s in case.steps)
    return dataclasses.replace(case, params=tuple(params), steps=steps)


def _reshaped(case: Case, which: Callable[[Param], bool]) -> Case | None:
    """Parameters `which` picks (0-d or empty) as (1,) tensors, with values of their own."""
    changed = [i for i, p in enumerate(case.params) if which(p)]
    if not changed:
        return None
    rs = np.random.RandomState(0)
    def fresh(p: Param) -> np.ndarray:
        value = rs.standard_normal(1)
        if dtypes.is_complex(p.dtype):
            value = dtypes.complex_from(value, rs.standard_normal(1))
        return dtypes.round_to(value, p.dtype)

    params = list(case.params)
    for i in changed:
        params[i] = Param(fresh(params[i]), params[i].dtype)
    steps = tuple(dataclasses.replace(s, grads=tuple(g if g is None or i not in changed else fresh(params[i])
                                                     for i, g in enumerate(s.grads))) for s in case.steps)
    return dataclasses.replace(case, params=tuple(params), steps=steps)


def _dropped(case: Case, i: int) -> Case | None:
    """`case` without parameter i (and a group left empty); None where that cannot be."""
    if len(case.params) == 1 or case.objective is not None:
        return None
    number = {old: new for new, old in enumerate(k for k in range(len(case.params)) if k != i)}
    groups, moved = [], {}
    for j, g in enumerate(case.groups):
        kept = tuple(number[k] for k in g.params if k != i)
        if kept:
            moved[j] = len(groups)
            groups.append(dataclasses.replace(g, params=kept))
    if groups[0].added_at != 1:
        return None
    steps = tuple(dataclasses.replace(s, grads=s.grads[:i] + s.grads[i + 1:],
                                      set=tuple((moved[j], k, v) for j, k, v in s.set if j in moved))
                  for s in case.steps)
    resume = case.resume and Resume(case.resume.step, tuple(case.resume.moments[k] for k in number))
    return dataclasses.replace(case, params=tuple(case.params[k] for k in number), groups=tuple(groups), steps=steps,
                               resume=resume)


def _merged_groups(case: Case) -> Case | None:
    if len(case.groups) == 1:
        return None
    first = case.groups[0]
    steps = tuple(dataclasses.replace(s, set=tuple(c for c in s.set if c[0] == 0)) for s in case.steps)
    return dataclasses.replace(case, groups=(dataclasses.replace(first, params=tuple(range(len(case.params)))),),
                               steps=steps)


def _joined_at_start(case: Case) -> Case | None:
    if all(g.added_at == 1 for g in case.groups):
        return None
    return dataclasses.replace(case, groups=tuple(dataclasses.replace(g, added_at=1) for g in case.groups))


def _filled(case: Case, missing: Callable[[np.ndarray | None], bool]) -> Case | None:
    """Gradients `missing` picks (None, or non-finite) replaced by finite values of their own."""
    rs = np.random.RandomState(1)

    def fill(g, p: Param):
        values = rs.standard_normal(p.shape) + (1j * rs.standard_normal(p.shape) if dtypes.is_complex(p.dtype) else 0)
        values = dtypes.round_to(values, p.dtype)
        return values if g is None else np.where(np.isfinite(g), g, values)

    return _steps(case, lambda s: s if not any(missing(g) for g in s.grads) else dataclasses.replace(
        s, grads=tuple(fill(g, case.params[i]) if missing(g) else g for i, g in enumerate(s.grads))))


@dataclasses.dataclass(frozen=True)
class Ablation:
    """A feature of a Case, as the report names it, and how to revert it (None: absent)."""

    feature: str
    revert: Callable[[Case], Case | None]


ABLATIONS = (
    Ablation("a gradient whose strides differ from its parameter's",
             lambda c: _params(c, lambda p: _laid_out(p, grad_layout=p.layout))),
    Ablation("a non-contiguous parameter", lambda c: _params(c, lambda p: _laid_out(p, layout="contiguous"))),
    Ablation("a non-contiguous gradient", lambda c: _params(c, lambda p: _laid_out(p, grad_layout="contiguous"))),
    Ablation("a float16 or bfloat16 parameter", lambda c: _retyped(c, ("float16", "bfloat16"), lambda d: "float32")),
    Ablation("a float64 parameter", lambda c: _retyped(c, ("float64", "complex128"),
                                                        lambda d: "float32" if d == "float64" else "complex64")),
    Ablation("a complex parameter", _as_real_pairs),
    Ablation("a 0-d parameter", lambda c: _reshaped(c, lambda p: p.shape == ())),
    Ablation("an empty parameter", lambda c: _reshaped(c, lambda p: p.init.size == 0)),
    Ablation("AMSGrad", lambda c: _groups(c, amsgrad=False)),
    Ablation("maximize=True", lambda c: _groups(c, maximize=False)),
    Ablation("lr given as a Tensor", lambda c: _groups(c, tensor_lr=False)),
    Ablation("weight decay", lambda c: _groups(c, weight_decay=0.0, decoupled_weight_decay=False)),
    Ablation("decoupled_weight_decay=True", lambda c: _groups(c, decoupled_weight_decay=False)),
    Ablation("several param groups", _merged_groups),
    Ablation("a param group added after the first step", _joined_at_start),
    Ablation("a parameter without a gradient at some step", lambda c: _filled(c, lambda g: g is None)),
    Ablation("a NaN or inf gradient", lambda c: _filled(c, lambda g: g is not None and not np.all(np.isfinite(g)))),
    Ablation("step(closure)", lambda c: _steps(c, lambda s: dataclasses.replace(s, closure=False) if s.closure else s)),
    Ablation("a run resumed from a state_dict saved late in training",
             lambda c: None if c.resume is None else dataclasses.replace(c, resume=None)),
    Ablation("a state_dict round trip or zero_grad between steps",
             lambda c: _steps(c, lambda s: dataclasses.replace(s, events=()) if s.events else s)),
    Ablation("lr changed between steps", lambda c: _steps(c, lambda s: dataclasses.replace(s, set=()) if s.set else s)),
    Ablation("eps other than 1e-8", lambda c: _groups(c, eps=1e-8)),
    Ablation("betas other than (0.9, 0.999)", lambda c: _groups(c, betas=(0.9, 0.999))),
    Ablation("lr other than 1e-3", lambda c: _groups(c, lr=1e-3)),
)


def explain(target: Target, failure: CheckFailure, seconds: float = SECONDS) -> CheckFailure:
    """The failure rerun on the simplest form of its Case, with what that Case needs.

    Greedily, each ablation whose reverted Case still fails is kept (the feature was not
    needed: the Case gets simpler); the others are necessary, checked once more on the
    final Case. Then the steps are cut to the fewest that still fail. The result is the
    property's own failure on that Case, its `necessary` list filled in. A failure that
    cannot be rerun on a Case comes back as it is.
    """
    prop, args = failure.retest
    if not args or not isinstance(args[0], Case):
        return failure
    case, rest = args[0], args[1:]
    deadline = time.monotonic() + seconds
    try:
        for i in reversed(range(len(case.params))):  # parameters the failure does without
            fewer = _reverted(Ablation("", lambda c, i=i: _dropped(c, i)), case)
            if fewer is not None and time.monotonic() < deadline and _outcome(target, prop, fewer, rest) == "fails":
                case = fewer
        for ablation in ABLATIONS:
            if time.monotonic() > deadline:
                break
            ablated = _reverted(ablation, case)
            if ablated is not None and _outcome(target, prop, ablated, rest) == "fails":
                case = ablated
        case, fewest = _cut(target, prop, case, rest, deadline)
        needed = [a.feature for a in ABLATIONS if (ablated := _reverted(a, case)) is not None
                  and time.monotonic() < deadline and _outcome(target, prop, ablated, rest) == "holds"]
        if fewest:
            needed.append(f"{len(case.steps)} steps (with fewer it passes)")
        simplest = _failure(target, prop, case, rest)
    except CheckTimeout:  # the check's own limit: report the failure as it was found
        return failure
    if simplest is None:  # it did not fail again (a nondeterministic target): as it was found
        return failure
    simplest.retest = (prop, (case, *rest))
    simplest.necessary = needed
    return simplest


def _reverted(ablation: Ablation, case: Case) -> Case | None:
    try:
        return ablation.revert(case)
    except (CaseError, ValueError):
        return None


def _failure(target: Target, prop, case: Case, rest: tuple) -> CheckFailure | None:
    try:
        prop(target, case, *rest)
    except CheckFailure as failure:
        return failure
    except distributed.Hung as hung:
        return CheckFailure(str(hung), [hung.case], severity="api")
    except Exception:
        return None
    return None


def _outcome(target: Target, prop, case: Case, rest: tuple) -> str:
    """"holds", "fails" (for the target, not for torch: an ablation may break the check's
    premise, eps = 0 say, and then torch fails too), or "unknown" (the Case leaves the
    target's claims, the property cannot be evaluated on it, or the check skips it)."""
    if not target.accepts(case):
        return "unknown"
    try:
        prop(target, case, *rest)
    except (CheckFailure, distributed.Hung):
        return "unknown" if _failure(target.torch(), prop, case, rest) else "fails"
    except (CheckSkipped, Exception):
        return "unknown"
    return "holds"


def _cut(target: Target, prop, case: Case, rest: tuple, deadline: float) -> tuple[Case, bool]:
    """`case` cut to its fewest leading steps that still fail (no fewer than it takes for
    every group to join), and whether one step fewer passes."""
    seen: dict[int, str] = {}
    for n in range(max(g.added_at for g in case.groups), len(case.steps)):
        if time.monotonic() > deadline:
            break
        seen[n] = _outcome(target, prop, _first_steps(case, n), rest)
        if seen[n] == "fails":
            return _first_steps(case, n), seen.get(n - 1) == "holds"
    return case, seen.get(len(case.steps) - 1) == "holds"


def _first_steps(case: Case, n: int) -> Case:
    record = None if case.record is None else tuple(t for t in case.record if t <= n) or None
    return dataclasses.replace(case, steps=case.steps[:n], record=record)
