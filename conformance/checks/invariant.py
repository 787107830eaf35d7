"""Invariants: properties that need no reference, from the structure of Adam itself."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from conformance import dtypes
from conformance.cases import transforms
from conformance.cases.case import Case, Step
from conformance.cases.strategies import MAGNITUDE_RANGE
from conformance.checks.assertions import assert_same_trajectory, completed, holds
from conformance.checks.catalogue import CheckFailure, CheckSkipped, Evidence, check
from conformance.dtypes import components
from conformance.run.target import Target

#: Roundings in one Adam step of one element (negation, decay, two moment updates,
#: sqrt, two divisions, eps, the final multiply-subtract): a closed form computed exactly
#: may differ from a correct implementation by this many eps at the scale of the terms.
STEP_ROUNDINGS = 8


def with_groups(case: Case, **hyper) -> Case:
    """`case` with the given hyperparameters in every group (and no changes to them between steps)."""
    groups = tuple(dataclasses.replace(g, **hyper) for g in case.groups)
    steps = tuple(dataclasses.replace(s, set=tuple(c for c in s.set if c[1] not in hyper)) for s in case.steps)
    return dataclasses.replace(case, groups=groups, steps=steps)


def _group_of(case: Case) -> dict[int, int]:
    return {i: j for j, g in enumerate(case.groups) for i in g.params}


@check(
    "invariant.first-step",
    "One step from fresh state moves each element by exactly -lr·g/(|g| + eps) (g negated under "
    "maximize), Adam's closed form when m̂ = g and v̂ = g².",
)
def first_step(target: Target, evidence: Evidence, data) -> None:
    drawn = data.draw(target.cases(max_steps=1, events=False, late_joins=False), label="case")
    case = with_groups(drawn, weight_decay=0.0)
    holds(target, evidence, _first_step_closed_form, case)


def _first_step_closed_form(target: Target, case: Case) -> None:
    trace, allowance = completed(target, case), target.allowance(case)
    group = _group_of(case)
    for i, p in enumerate(case.params):
        g = case.steps[0].grads[i]
        if g is None:
            continue
        h = case.groups[group[i]]
        theta0, g = components(p.init).astype(np.longdouble), components(g).astype(np.longdouble)
        g = -g if h.maximize else g
        with np.errstate(all="ignore"):
            step = np.longdouble(h.lr) * g / (np.abs(g) + np.longdouble(h.eps))
            want = (theta0 - step).astype(np.float64)
            got = components(trace.params[i][0])
            allowed = STEP_ROUNDINGS * dtypes.eps(p.dtype) * (np.abs(theta0) + np.abs(step)).astype(np.float64)
            if allowance is not None:  # what a declared state format allows (`Target.allowance`); none promised: inf
                allowed = allowed + np.nan_to_num(components(allowance.params[i][0]), nan=np.inf)
            bad = ~((np.abs(got - want) <= allowed) | (np.isnan(got) & np.isnan(want)))
        if bad.any():
            k = tuple(int(x) for x in np.argwhere(bad)[0])
            raise CheckFailure(f"param {i} element {k}: moved to {float(got[k])!r}, the closed form gives "
                               f"{float(want[k])!r} (±{allowed[k]:.3g}) from θ={float(theta0[k])!r}, g={float(g[k])!r}",
                               [case])


def _same_after(target: Target, case: Case, new: Case, back: transforms.Back, what: str) -> None:
    """The run of `new`, mapped back, is the run of `case`."""
    transformed = completed(target, new)
    assert_same_trajectory(back(transformed), completed(target, case), case, what, [case, new],
                           target.allowance(case, runs=2))


def _shuffled(target: Target, case: Case, seed: int) -> None:
    _same_after(target, case, *transforms.permute_elements(case, seed), "shuffled elements")


@check(
    "invariant.permutation",
    "Shuffling the elements of every parameter and its gradients shuffles the result the same "
    "way: the update is elementwise.",
)
def permutation(target: Target, evidence: Evidence, data) -> None:
    case = data.draw(target.cases(), label="case")
    holds(target, evidence, _shuffled, case, data.draw(st.integers(0, 2**32 - 1), label="permutation seed"))


@check(
    "invariant.partition",
    "Splitting a tensor in two, listing parameters in another order (interleaving dtypes), or giving "
    "each parameter a group of its own with the same hyperparameters gives the same result.",
)
def partition(target: Target, evidence: Evidence, data) -> None:
    case = data.draw(target.cases(), label="case")
    regroups = "param_groups" in target.claims and any(len(g.params) > 1 for g in case.groups)  # a group each
    options = ["regroup"] * regroups + ["reorder"] * (len(case.params) > 1)
    options += ["split"] * any(p.init.size > 1 for p in case.params)
    assume(options)
    how = data.draw(st.sampled_from(options), label="partition")
    if how == "split":
        i = data.draw(st.sampled_from([k for k, p in enumerate(case.params) if p.init.size > 1]), label="param split")
        way = (i, data.draw(st.integers(1, case.params[i].init.size - 1), label="at"))
    elif how == "reorder":
        way = tuple(data.draw(st.permutations(range(len(case.params))), label="order"))
    else:
        way = ()
    holds(target, evidence, _partitioned, case, how, way)


def _partitioned(target: Target, case: Case, how: str, way: tuple) -> None:
    if how == "split":
        new, back = transforms.split_param(case, *way)
    elif how == "reorder":
        new, back = transforms.reorder_params(case, list(way))
    else:
        new, back = transforms.regroup(case)
    _same_after(target, case, new, back, f"partition ({how})")


@check(
    "invariant.maximize",
    "maximize=True with gradient g follows the same trajectory as maximize=False with -g.",
    needs=["maximize"],
)
def maximize(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _mirrored, data.draw(target.cases(), label="case"))


def _mirrored(target: Target, case: Case) -> None:
    _same_after(target, case, *transforms.negate_for_maximize(case), "maximize(g) vs minimize(-g)")


@check(
    "invariant.scale",
    "With eps = 0 and no decay, multiplying every gradient by a power of two leaves the parameters' "
    "trajectory unchanged (Adam is invariant to gradient scale as eps -> 0).",
    needs=["eps=0"],
)
def scale(target: Target, evidence: Evidence, data) -> None:
    case = with_groups(data.draw(target.cases(), label="case"), eps=0.0, weight_decay=0.0)
    room_up, room_down = 8, 8  # powers of two the gradients can be scaled by and stay in range
    for i, p in enumerate(case.params):
        given = [components(s.grads[i]).ravel() for s in case.steps if s.grads[i] is not None]
        values = np.abs(np.concatenate(given + [np.zeros(0)]))
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            low, high = MAGNITUDE_RANGE[dtypes.real(p.dtype)]
            room_up = min(room_up, int(np.floor(np.log2(10.0**high / values.max()))))
            room_down = min(room_down, int(np.floor(np.log2(values.min() / 10.0**low))))
    room_up, room_down = max(room_up, 0), max(room_down, 0)
    assume(room_up + room_down >= 1)
    k = data.draw(st.integers(-room_down, room_up).filter(lambda k: k != 0), label="log2 scale")
    holds(target, evidence, _scaled, case, k)


def _scaled(target: Target, case: Case, k: int) -> None:
    _same_after(target, case, *transforms.scale_gradients(case, k), f"gradients times 2**{k}")


def adam_step_bound(lr: float, beta1: float, beta2: float, t: int) -> float:
    """The largest |Δθ| of one Adam step at step t (no decay), for any gradients.

    |m_t| ≤ Σ (1-β₁)β₁^(t-i)|g_i| and v_t = Σ (1-β₂)β₂^(t-i) g_i², so by Cauchy-Schwarz
    |m_t|/√v_t ≤ (1-β₁)/√(1-β₂) · √(Σ_{k<t} (β₁²/β₂)^k), which with the bias corrections
    gives |Δθ| ≤ lr · √(1-β₂ᵗ)/(1-β₁ᵗ) · that (eps and AMSGrad only shrink the step).
    For t = 1 this is lr, the paper's bound (Kingma & Ba, section 2.1).
    """
    r = beta1**2 / beta2
    geometric = t if r == 1 else (1 - r**t) / (1 - r)
    return lr * np.sqrt(1 - beta2**t) / (1 - beta1**t) * (1 - beta1) / np.sqrt(1 - beta2) * np.sqrt(geometric)


@check(
    "invariant.step-bound",
    "Without decay, no step moves an element further than lr·√(1-β₂ᵗ)/(1-β₁ᵗ)·(1-β₁)/√(1-β₂)·"
    "√(Σ_{k<t}(β₁²/β₂)ᵏ), the Cauchy-Schwarz form of the Adam paper's step-size bound.",
)
def step_bound(target: Target, evidence: Evidence, data) -> None:
    case = with_groups(data.draw(target.cases(), label="case"), weight_decay=0.0)
    assume(all(g.betas[0] ** 2 < g.betas[1] for g in case.groups))
    holds(target, evidence, _within_step_bound, case)


def _within_step_bound(target: Target, case: Case) -> None:
    """(A declared state format may move each end of a step by its allowance, `Target.allowance`.)"""
    trace, allowance = completed(target, case), target.allowance(case)
    group, lr = _group_of(case), [g.lr for g in case.groups]
    count = [0] * len(case.params)
    for t, s in enumerate(case.steps, start=1):
        for j, key, value in s.set:
            if key == "lr":
                lr[j] = value
        for i, p in enumerate(case.params):
            if s.grads[i] is None:
                continue
            count[i] += 1
            h = case.groups[group[i]]
            bound = adam_step_bound(lr[group[i]], *h.betas, count[i])
            before = components(p.init if t == 1 else trace.params[i][t - 2])
            after = components(trace.params[i][t - 1])
            with np.errstate(all="ignore"):
                largest = np.maximum(np.abs(before), np.abs(after))
                slack = bound * STEP_ROUNDINGS * dtypes.eps(p.dtype) + dtypes.ulp(largest, dtypes.real(p.dtype))
                if allowance is not None:
                    ends = components(allowance.params[i])
                    slack = slack + ends[t - 1] + (ends[t - 2] if t > 1 else 0)
                moved = np.abs(after - before)
                bad = np.isfinite(before) & np.isfinite(after) & np.isfinite(slack) & (moved > bound + slack)
            if bad.any():
                k = tuple(int(x) for x in np.argwhere(bad)[0])
                raise CheckFailure(f"step {t}, param {i} element {k} moved by {moved[k]:.6g}, more than the bound "
                                   f"{bound:.6g} (lr={lr[group[i]]}, betas={h.betas}, its step {count[i]})", [case])


@check(
    "invariant.amsgrad-monotone",
    "With AMSGrad, max_exp_avg_sq never decreases and never falls below exp_avg_sq, element by element.",
    needs=["amsgrad"],
)
def amsgrad_monotone(target: Target, evidence: Evidence, data) -> None:
    case = with_groups(data.draw(target.cases(), label="case"), amsgrad=True)
    holds(target, evidence, _amsgrad_monotone, case)


def _amsgrad_monotone(target: Target, case: Case) -> None:
    trace = completed(target, case)
    stepped = [i for i in range(len(case.params)) if any(s.grads[i] is not None for s in case.steps)]
    observed = [i for i in stepped if "max_exp_avg_sq" in trace.state[i]]
    missing = [o for o in trace.observations if o.kind == "state-missing" and "max_exp_avg_sq" in o.detail]
    if missing:  # some ranks hold it, others not: missing, not absent
        raise CheckFailure(f"param {missing[0].param}: max_exp_avg_sq is missing: {missing[0].detail}", [case],
                           severity="state")
    if stepped and not observed:
        raise CheckSkipped(f"{target.impl.name} keeps no max_exp_avg_sq state to observe")
    for i in observed:
        state = trace.state[i]
        v_max = components(state["max_exp_avg_sq"])
        with np.errstate(invalid="ignore"):
            fell = np.diff(v_max, axis=0) < 0
            below = v_max < components(state["exp_avg_sq"]) if "exp_avg_sq" in state else np.zeros_like(v_max, bool)
        for what, bad, offset in (("decreased", fell, 1), ("fell below exp_avg_sq", below, 0)):
            if bad.any():
                k = np.argwhere(bad)[0]
                raise CheckFailure(f"param {i}: max_exp_avg_sq {what} after step {trace.steps[k[0] + offset]} "
                                   f"at element {tuple(int(x) for x in k[1:])}", [case], severity="state")


@check(
    "invariant.decay-on-zero-grad",
    "On zero gradients from fresh state, AdamW shrinks every weight by exactly 1 - lr·wd per step, "
    "and Adam moves it by its L2 gradient: -lr·wd·θ/(|wd·θ| + eps).",
    needs=["weight_decay"],
)
def decay_on_zero_grad(target: Target, evidence: Evidence, data) -> None:
    case = data.draw(target.cases(max_steps=3, events=False, late_joins=False), label="case")
    decays = [d for d in (0.1, 0.5, 1.0, 1e-2) if d != 1.0 or "weight_decay=1" not in target.avoid]
    decay = data.draw(st.sampled_from(decays), label="weight decay")
    case = with_groups(case, weight_decay=decay)
    case = dataclasses.replace(case, groups=tuple(dataclasses.replace(g, eps=g.eps or 1e-8) for g in case.groups))
    decoupled = [case.spec == "adamw" or g.decoupled_weight_decay for g in case.groups]
    steps = case.steps if all(decoupled) else case.steps[:1]  # Adam: m ≠ 0 after one step
    steps = tuple(Step(tuple(None if g is None else np.zeros_like(g) for g in s.grads)) for s in steps)
    case = dataclasses.replace(case, steps=steps)
    holds(target, evidence, _decay_on_zero_grad, case)


def _decay_on_zero_grad(target: Target, case: Case) -> None:
    trace = completed(target, case)
    group = _group_of(case)
    for i, p in enumerate(case.params):
        h = case.groups[group[i]]
        decoupled = case.spec == "adamw" or h.decoupled_weight_decay
        theta = components(p.init)
        for t, s in enumerate(case.steps, start=1):
            if s.grads[i] is None:
                continue
            got = components(trace.params[i][t - 1])
            with np.errstate(all="ignore"):
                if decoupled:
                    want = theta * (1 - h.lr * h.weight_decay)
                    allowed = 2 * dtypes.ulp(want, dtypes.real(p.dtype))
                else:
                    g = h.weight_decay * theta
                    step = h.lr * g / (np.abs(g) + h.eps)
                    want = theta - step
                    allowed = STEP_ROUNDINGS * dtypes.eps(p.dtype) * (np.abs(theta) + np.abs(step))
                bad = ~(np.abs(got - want) <= allowed)
            if bad.any():
                k = tuple(int(x) for x in np.argwhere(bad)[0])
                kind = "decoupled (AdamW)" if decoupled else "coupled L2 (Adam)"
                raise CheckFailure(f"step {t}, param {i} element {k}: {float(got[k])!r}, but {kind} decay on a zero "
                                   f"gradient gives {float(want[k])!r} from {float(theta[k])!r} (lr={h.lr}, "
                                   f"wd={h.weight_decay})", [case])
            theta = got
