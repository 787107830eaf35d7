"""Metamorphic transformations: a Case changed in a way whose effect on the Trace is known.

Each transformation returns the new Case and a function mapping the new Case's Trace
back onto the original's, so an invariant reads: ``back(run(new)) == run(case)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from conformance.cases.case import Case, Param, Step
from conformance.cases.trace import Trace
from conformance.dtypes import complex_from

Back = Callable[[Trace], Trace]


def _map_arrays(trace: Trace, param: Callable[[int, str, np.ndarray], np.ndarray]) -> Trace:
    params = tuple(param(i, "param", a) for i, a in enumerate(trace.params))
    state = tuple({k: param(i, k, a) for k, a in s.items()} for i, s in enumerate(trace.state))
    return dataclasses.replace(trace, params=params, state=state)


def _with_steps(case: Case, grads: Callable[[Step], tuple], **changes) -> Case:
    steps = tuple(dataclasses.replace(s, grads=grads(s)) for s in case.steps)
    return dataclasses.replace(case, steps=steps, **changes)


def permute_elements(case: Case, seed: int) -> tuple[Case, Back]:
    """Shuffle the elements of every parameter (and its gradients) the same way each step."""
    rs = np.random.RandomState(seed)
    perms = [rs.permutation(p.init.size) for p in case.params]
    shuffle = lambda a, i: a.reshape(-1)[perms[i]].reshape(a.shape)
    params = tuple(dataclasses.replace(p, init=shuffle(p.init, i)) for i, p in enumerate(case.params))
    new = _with_steps(case, lambda s: tuple(None if g is None else shuffle(g, i) for i, g in enumerate(s.grads)),
                      params=params)

    def back(trace: Trace) -> Trace:
        def unshuffle(i, key, a):
            if key == "step":
                return a
            out = np.empty_like(a.reshape(len(a), -1))
            out[:, perms[i]] = a.reshape(len(a), -1)
            return out.reshape(a.shape)
        return _map_arrays(trace, unshuffle)

    return new, back


def reorder_params(case: Case, order: list[int]) -> tuple[Case, Back]:
    """List the parameters in another order (so dtypes and sizes interleave differently)."""
    where = {old: new for new, old in enumerate(order)}
    params = tuple(case.params[i] for i in order)
    groups = tuple(dataclasses.replace(g, params=tuple(sorted(where[i] for i in g.params))) for g in case.groups)
    new = _with_steps(case, lambda s: tuple(s.grads[i] for i in order), params=params, groups=groups)

    def back(trace: Trace) -> Trace:
        return dataclasses.replace(trace, params=tuple(trace.params[where[i]] for i in range(len(order))),
                                   state=tuple(trace.state[where[i]] for i in range(len(order))))

    return new, back


def split_param(case: Case, i: int, at: int) -> tuple[Case, Back]:
    """Replace parameter i by two 1-d parameters: its first `at` elements (in logical
    order) and the rest, in the same group."""
    p = case.params[i]

    def cut(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = a.reshape(-1)
        return flat[:at].copy(), flat[at:].copy()

    params = case.params[:i] + tuple(Param(half, p.dtype) for half in cut(p.init)) + case.params[i + 1:]
    renumber = lambda k: k + 1 if k > i else k
    members = lambda g: {renumber(k) for k in g.params} | ({i + 1} if i in g.params else set())
    groups = tuple(dataclasses.replace(g, params=tuple(sorted(members(g)))) for g in case.groups)
    halves = lambda g: (None, None) if g is None else cut(g)
    new = _with_steps(case, lambda s: s.grads[:i] + halves(s.grads[i]) + s.grads[i + 1:], params=params, groups=groups)

    def join(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.concatenate([a.reshape(len(a), -1), b.reshape(len(b), -1)], axis=1).reshape(len(a), *p.shape)

    def back(trace: Trace) -> Trace:
        first, second = trace.state[i], trace.state[i + 1]
        state = {k: first[k] if k == "step" else join(first[k], second[k]) for k in first if k in second}
        joined = join(trace.params[i], trace.params[i + 1])
        return dataclasses.replace(trace, params=trace.params[:i] + (joined,) + trace.params[i + 2:],
                                   state=trace.state[:i] + (state,) + trace.state[i + 2:])

    return new, back


def regroup(case: Case) -> tuple[Case, Back]:
    """Give every parameter a group of its own, with its group's hyperparameters."""
    groups, home = [], {}
    for j, g in enumerate(case.groups):
        for i in g.params:
            home.setdefault(j, []).append(len(groups))
            groups.append(dataclasses.replace(g, params=(i,)))
    steps = tuple(dataclasses.replace(s, set=tuple((k, key, v) for j, key, v in s.set for k in home[j]))
                  for s in case.steps)
    new = dataclasses.replace(case, groups=tuple(groups), steps=steps)
    return new, lambda trace: trace


def negate_for_maximize(case: Case) -> tuple[Case, Back]:
    """Flip every group's maximize flag and negate every gradient: the same trajectory."""
    groups = tuple(dataclasses.replace(g, maximize=not g.maximize) for g in case.groups)
    steps = tuple(dataclasses.replace(s, set=tuple((j, k, (not v) if k == "maximize" else v) for j, k, v in s.set))
                  for s in case.steps)
    negated = lambda s: tuple(None if g is None else -g for g in s.grads)
    new = _with_steps(dataclasses.replace(case, steps=steps), negated, groups=groups)
    return new, lambda trace: trace


def scale_gradients(case: Case, k: int) -> tuple[Case, Back]:
    """Multiply every gradient by 2**k. With eps = 0 and no decay the parameters follow the
    same trajectory exactly; m scales by 2**k and v by 4**k."""
    new = _with_steps(case, lambda s: tuple(None if g is None else g * 2.0**k for g in s.grads))
    factors = {"exp_avg": 2.0**-k, "exp_avg_sq": 4.0**-k, "max_exp_avg_sq": 4.0**-k}

    def rescale(i: int, key: str, a: np.ndarray) -> np.ndarray:
        if key not in factors:
            return a
        if np.iscomplexobj(a):  # part by part: a complex product turns inf into NaN
            return complex_from(a.real * factors[key], a.imag * factors[key])
        return a * factors[key]

    return new, lambda trace: _map_arrays(trace, rescale)
