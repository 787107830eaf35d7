r"""The truth: Adam and AdamW in numpy extended precision, independent of torch.

Written from the papers and torch's documented algorithm, not from torch's code, and
computed in ``np.longdouble`` (64-bit significand on x86; quad on some platforms) so
that its own rounding is far below any implementation's. No torch is imported here.

For each parameter θ that has a gradient at step t (t counts that parameter's own
steps, starting at 1), with learning rate γ, betas β₁ β₂, ε and weight decay λ:

    g  ← -∇f(θ) if maximize else ∇f(θ)
    adam  (coupled L2):  g ← g + λθ                 torch.optim.Adam
    adamw (decoupled):   θ ← θ(1 - γλ)               torch.optim.AdamW (arXiv 1711.05101,
                                                     with the decay scaled by γ as torch does)
    m  ← β₁m + (1 - β₁)g                             (Kingma & Ba, arXiv 1412.6980, Alg. 1)
    v  ← β₂v + (1 - β₂)g²
    v̄  ← max(v̄, v) if amsgrad else v                 (max of the raw v, as torch; Reddi et al.)
    θ  ← θ - γ/(1 - β₁ᵗ) · m / (√v̄ / √(1 - β₂ᵗ) + ε)    (ε added after bias correction)

Parameters without a gradient at a step are skipped: no decay, no moment update, no
step count. A resumed Case starts from its state_dict's step count and moments.
Complex parameters are pairs of independent reals (torch's view_as_real):
g² is taken per component, never g·g complex. Hyperparameters are read from each
group at each step, so lr schedules apply from the step they are set before.
A closed-loop Case (the seed notebook's MLP) computes its gradients here too, by
backpropagation in the same precision. Division by zero and overflow follow IEEE
rules. One place where torch's arithmetic differs on non-finite values: torch forms
the first moment with lerp, m + (1-β₁)(g - m), which turns m = inf into NaN at the next
finite gradient, where β₁m + (1-β₁)g stays inf. The oracle keeps the formula above;
the budget lets an implementation follow either where torch departs from it.

`run` also computes the known variants of `conformance.spec.POINTS` (eps inside the
square root, decay not scaled by γ, a global step count, ...), each a one-line change
at its point of the algorithm above, so that `conformance.diagnose` can say which one
an implementation follows.
"""

from __future__ import annotations

import numpy as np

from conformance.cases.case import Case
from conformance.cases.trace import Trace
from conformance.dtypes import complex_from, components
from conformance.spec import BY_NAME, Spec
from conformance.truth.precision import StatePrecision

X = np.longdouble


def run(case: Case, spec: Spec | None = None) -> Trace:
    """The exact trajectory of `case` under `spec` (default: the case's own spec).

    Another Spec computes a known variant (see conformance.spec.POINTS) instead.
    """
    return _run(case, spec or BY_NAME[case.spec])[0]


def allowance(case: Case, declared: StatePrecision) -> Trace:
    """How far a target that keeps its moments in the `declared` format may be from the
    exact trajectory of `case`, element by element: a Trace of bounds on the parameters'
    and moments' distances (`conformance.truth.precision`; zero for tensors too small to be
    stored in the format)."""
    return _run(case, BY_NAME[case.spec], declared)[1]


def _run(case: Case, spec: Spec, declared: StatePrecision | None = None) -> tuple[Trace, Trace | None]:
    """The exact trajectory and, for a `declared` state format, the bounds of `allowance`."""
    theta, m, v, v_max, bounds = _start(case, declared)
    before = case.resume.step if case.resume else 0
    count = [before] * len(theta)
    hyper = [dict(lr=g.lr, betas=g.betas, eps=g.eps, weight_decay=g.weight_decay, maximize=g.maximize)
             for g in case.groups]
    record = set(case.recorded)
    steps, snapshots, widths, losses = [], [], [], []
    group_steps, group_calls, calls = [before] * len(case.groups), [before] * len(case.groups), before

    with np.errstate(all="ignore"):  # IEEE semantics: inf and NaN propagate silently
        for t, step in enumerate(case.steps, start=1):
            calls += 1
            for j, key, value in step.set:
                hyper[j][key] = value
            if case.objective is None:
                grads = [None if g is None else _real_view(g) for g in step.grads]
            else:
                loss, grads = _mlp_mse(theta, case.objective.inputs, case.objective.targets)
                losses.append(loss)
            if spec.missing_grad == "zero":
                grads = [np.zeros_like(theta[i]) if g is None else g for i, g in enumerate(grads)]
            for j, group in enumerate(case.groups):
                if group.added_at > t:
                    continue
                group_steps[j] += any(grads[i] is not None for i in group.params)
                group_calls[j] += 1
                for i in group.params:
                    if grads[i] is None:
                        continue
                    count[i] += 1
                    t_i = _count(spec, count, i, group, group_steps[j], group_calls[j], calls)
                    decay = spec.decay_mode(group.decoupled_weight_decay)
                    if bounds[i]:
                        bounds[i].carry(grads[i], theta[i], hyper[j], decay)
                    theta[i], m[i], v[i], v_max[i] = _adam_step(
                        theta[i], grads[i], m[i], v[i], v_max[i], t_i, hyper[j], group.amsgrad, decay, spec)
                    if bounds[i]:
                        bounds[i].stored(m[i], v[i], v_max[i], t_i, hyper[j], group.amsgrad)
            if t in record:
                steps.append(t)
                snapshots.append([(x.copy(), a.copy(), b.copy(), c.copy(), count[i])
                                  for i, (x, a, b, c) in enumerate(zip(theta, m, v, v_max))])
                widths.append([b.snapshot() if b else (z := np.zeros_like(x), z, z, z, 0)
                               for x, b in zip(theta, bounds)])

    return _trace(case, steps, snapshots, losses), _trace(case, steps, widths, losses) if declared else None


def _start(case: Case, declared: StatePrecision | None) -> tuple[list, list, list, list, list]:
    """Before the first step: θ, m, v and v̄ by parameter (resumed, else zero), and the bounds
    carried for a parameter stored in the `declared` format (else None)."""
    theta = [_real_view(p.init) for p in case.params]
    start = case.resume.moments if case.resume else [{}] * len(theta)
    m, v, v_max = ([_real_view(s[key]) if key in s else np.zeros_like(x) for x, s in zip(theta, start)]
                   for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"))
    bounds = [_Bound(declared, x, m[i], v[i], v_max[i], p.layout == "contiguous")
              if declared and p.init.size >= declared.from_elements else None
              for i, (x, p) in enumerate(zip(theta, case.params))]
    return theta, m, v, v_max, bounds


def _count(spec: Spec, count: list[int], i: int, group, group_step: int, group_call: int, calls: int) -> int:
    """The t of parameter `i`'s step under the spec's step count: its own steps, its group's
    steps, every step() call, every call since its group joined (so too for debiased betas,
    which `_adam_step` applies), or its group's first parameter's steps (a bucket's count
    kept on one tensor)."""
    return {"per_param": count[i], "per_group": group_step, "global": calls, "per_group_call": group_call,
            "first_param": max(count[group.params[0]], 1), "debiased": group_call}[spec.step_count]


def _adam_step(theta, g, m, v, v_max, t, h, amsgrad, decay, spec):
    """One step of one parameter (all arrays real, longdouble). Returns θ, m, v, v̄."""
    lr, (beta1, beta2), eps, wd = X(h["lr"]), map(X, h["betas"]), X(h["eps"]), X(h["weight_decay"])
    if h["maximize"]:
        if spec.maximize == "negate_grad":
            g = -g
        elif spec.maximize == "negate_lr":
            lr = -lr
    if wd != 0:
        if decay == "decoupled":
            theta = theta * (1 - lr * wd)
        elif decay == "decoupled_unscaled":
            theta = theta * (1 - wd)
        elif decay == "coupled":
            g = g + wd * theta
    if h["maximize"] and spec.maximize == "negate_after_decay":
        g = -g
    debiased = spec.step_count == "debiased"  # the moments kept debiased, by betas 1 - (1-β)/(1-βᵗ)
    if debiased:
        beta1, beta2 = (1 - (1 - b) / (1 - _power(b, t)) for b in (beta1, beta2))
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    bias1 = 1 - _power(beta1, t) if spec.bias_correction in ("both", "first") and not debiased else X(1)
    bias2 = 1 - _power(beta2, t) if spec.bias_correction in ("both", "second") and not debiased else X(1)
    second = v
    if amsgrad and spec.amsgrad == "raw_max":
        v_max = second = np.maximum(v_max, v)
    elif amsgrad and spec.amsgrad == "corrected_max":  # the max of v̂, kept corrected
        v_max = np.maximum(v_max, v / bias2)
        second = v_max * bias2
    if spec.eps == "after_bias_correction":
        denom = np.sqrt(second) / np.sqrt(bias2) + eps
    elif spec.eps == "before_bias_correction":
        denom = (np.sqrt(second) + eps) / np.sqrt(bias2)
    elif spec.eps == "inside_sqrt":
        denom = np.sqrt(second / bias2 + eps)
    else:  # floor
        denom = np.maximum(np.sqrt(second) / np.sqrt(bias2), eps)
    theta = theta - lr / bias1 * m / denom
    if wd != 0 and decay == "decoupled_after":
        theta = theta * (1 - lr * wd)
    return theta, m, v, v_max


class _Bound:
    """The bounds of `allowance` for one parameter stored in a declared format, carried beside
    the exact recursion (the formulas are in `conformance.truth.precision`)."""

    def __init__(self, declared: StatePrecision, theta, m, v, v_max, row_major: bool):
        self.declared, self.row_major, self.theta = declared, row_major, np.zeros_like(theta)
        self.m = declared.first_rounding(m, 0, self._largest(m))  # resumed moments are stored once
        self.v, self.v_max = (declared.second_rounding(x, 0, self._largest(x)) for x in (v, v_max))

    def _largest(self, x):
        return self.declared.largest(x, self.row_major)

    def carry(self, g, theta, h, decay):
        """Before a step: the carried bounds, through decay and the moving averages."""
        lr, (beta1, beta2), wd = X(h["lr"]), map(X, h["betas"]), X(h["weight_decay"])
        e_g = wd * self.theta if decay == "coupled" else X(0)
        if decay == "decoupled":
            self.theta = abs(1 - lr * wd) * self.theta
        used = np.abs(g) + (wd * np.abs(theta) if decay == "coupled" else 0)
        self.m = beta1 * self.m + (1 - beta1) * e_g
        self.v = beta2 * self.v + (1 - beta2) * (2 * used * e_g + e_g * e_g)

    def stored(self, m, v, v_max, t, h, amsgrad):
        """After a step (`m`, `v`, `v_max` exact): the moments' roundings, and what they do to θ."""
        lr, (beta1, beta2), eps = X(h["lr"]), map(X, h["betas"]), X(h["eps"])
        self.m = self.m + self.declared.first_rounding(m, self.m, self._largest(np.abs(m) + self.m))
        self.v = self.v + self.declared.second_rounding(v, self.v, self._largest(v + self.v))
        second, e = v, self.v
        if amsgrad:
            e = np.maximum(self.v_max, self.v)
            self.v_max = e = e + self.declared.second_rounding(v_max, e, self._largest(v_max + e))
            second = v_max
        bias1, root2 = 1 - _power(beta1, t), np.sqrt(1 - _power(beta2, t))
        exact = m / (np.sqrt(second) / root2 + eps)
        apart = [np.abs(mm / (np.sqrt(vv) / root2 + eps) - exact)
                 for mm in (m - self.m, m + self.m) for vv in (np.maximum(second - e, 0), second + e)]
        self.theta = self.theta + np.abs(lr) / bias1 * np.max(apart, axis=0)

    def snapshot(self):
        return self.theta.copy(), self.m.copy(), self.v.copy(), self.v_max.copy(), 0


def _mlp_mse(theta, inputs, targets):
    """Loss Σ(relu(x W1ᵀ + b1) W2ᵀ + b2 - y)² and its gradients, by backpropagation."""
    w1, b1, w2, b2 = theta
    x, y = inputs.astype(X), targets.astype(X)
    pre = x @ w1.T + b1
    hidden = np.maximum(pre, 0)
    residual = hidden @ w2.T + b2 - y
    d_out = 2 * residual
    d_pre = (d_out @ w2) * (pre > 0)  # relu'(0) = 0, as torch
    grads = [d_pre.T @ x, d_pre.sum(axis=0), d_out.T @ hidden, d_out.sum(axis=0)]
    return float(np.sum(residual * residual)), grads


def _power(base, n: int):
    """base**n by repeated squaring: multiplications only, which IEEE rounds alike everywhere.

    libm's powl is not correctly rounded (1 ulp off for one β^t in ten here) and takes
    its last bits from x87 instructions (fyl2x, f2xm1) that no standard pins down: golden
    traces made with it on one machine did not regenerate bit for bit on another.
    About 2·log2(n) roundings of longdouble: under 2e-18 relative at n = 1000.
    """
    result, square = X(1), X(base)
    while n:
        if n & 1:
            result *= square
        square *= square
        n >>= 1
    return result


def _real_view(a: np.ndarray) -> np.ndarray:
    """Longdouble copy; complex as a trailing (re, im) axis of independent reals."""
    return components(a).astype(X)


def _stored(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Back from longdouble to the case's storage (float64 / complex128), rounded once."""
    if np.iscomplexobj(like):
        return complex_from(x[..., 0].astype(np.float64), x[..., 1].astype(np.float64))
    return x.astype(np.float64)


def _series(series: list, k: int, p) -> np.ndarray:
    """Item k of every snapshot of parameter `p`, stacked, in the case's storage."""
    return np.stack([_stored(s[k], p.init) for s in series]) if series else np.zeros((0, *p.shape), p.init.dtype)


def _trace(case: Case, steps, snapshots, losses) -> Trace:
    params, state = [], []
    for i, p in enumerate(case.params):
        amsgrad = any(g.amsgrad for g in case.groups if i in g.params)
        series = [s[i] for s in snapshots]
        params.append(_series(series, 0, p))
        entry = {"exp_avg": _series(series, 1, p), "exp_avg_sq": _series(series, 2, p),
                 "step": np.array([float(s[4]) for s in series], dtype=np.float64)}
        if amsgrad:
            entry["max_exp_avg_sq"] = _series(series, 3, p)
        state.append(entry)
    return Trace(
        steps=tuple(steps),
        params=tuple(params),
        state=tuple(state),
        losses=np.array(losses, dtype=np.float64) if case.objective is not None else None,
    )
