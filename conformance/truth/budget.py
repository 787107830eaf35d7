"""The error budget: how far from the truth an implementation may be, measured against torch.

Bitwise parity with torch is the wrong bar: a more accurate implementation must pass.
So every parity verdict compares two distances from the oracle (the exact trajectory):

* the implementation's, and
* torch's single-tensor ``torch.optim.Adam`` / ``AdamW`` on the same Case, the path
  torch itself treats as the reference,

each in units of the dtype's machine epsilon at the values' scale:

    error(x) = max over elements i of |x_i - o_i| / (eps_dtype · max(|o_i|, rms(o), tiny))

per tensor (parameter and each state tensor) and per recorded step, where o is the
oracle's value and rms(o) the root-mean-square of that tensor over the whole recorded
trajectory: rounding errors are proportional to the magnitudes that flow through the
computation, so an element that cancels to near zero (a first moment changing sign) is
judged on the tensor's typical size, and rounding noise does not become a huge
relative error.

The implementation passes iff, for every tensor and every recorded step t,

    error_impl(t) <= FACTOR · max over steps s <= t of error_torch(s) + FLOOR

so it may not stray further from the truth than torch has strayed so far (the running
maximum keeps a step where torch happens to round luckily from setting the bar).

* FACTOR = 4: an Adam step is about ten rounded operations (negation, decay, lerp,
  mul-add, sqrt, two divisions, eps, multiply-subtract). A correct implementation may
  order, fuse or widen them differently (lerp or mul-add, fma, fp32 registers for
  bf16 data), so its rounding errors are of the same order as torch's, not the same
  values: up to a few times larger where torch's happen to partly cancel.
* FLOOR = 4 eps: where torch's error is near zero (exact arithmetic, lr = 0, a single
  step), a correct implementation still rounds once or twice per operation on its
  own path.

A closed loop (gradients from a model) amplifies any rounding difference: a ReLU unit
that switches on one step earlier changes the trajectory for good. There torch's one
run is a lucky draw, not a yardstick, so the reference is torch's own spread: its run
on the Case and on `PERTURBED_RUNS` copies whose initial values are each moved by at
most one ulp, and the budget uses the largest of their errors.

Ill-conditioned Cases budget themselves: where v ≈ 0 with tiny eps torch's error is
large and the budget grows with it. An exact value beyond the range of the tensor's dtype
is the infinity that dtype holds (`held`): a float16 parameter cannot hold 1.4e7.
Non-finite values must match the oracle's pattern (NaN where NaN, the same infinities);
where torch itself deviates from that pattern the implementation may follow either, and
those elements are counted, not compared.
A target that declares a low-precision state (`conformance.truth.precision`: 8-bit or fp8
moments, stored in blocks) may be further from the oracle by what its format implies, a
bound per element carried through Adam's recursion (`oracle.allowance`): its distance less
that bound is judged as above, at the scale of the values that may flow there (|o| plus the
bound). Tensors too small to be stored in the format get no allowance, nor does torch.
One deviation is accepted in the moments (exp_avg, exp_avg_sq, max_exp_avg_sq) though
torch's path may not show it: NaN where the exact value is ±inf. A moving average has
two textbook forms, β·x + (1-β)·y and the lerp x + (1-β)(y - x); they agree on every
finite input and differ only at x = inf, y finite, where the lerp gives inf - inf = NaN.
torch itself uses the lerp for exp_avg and the other form for exp_avg_sq, so either form
of either moment is torch's arithmetic; the element's parameter is NaN either way, from
the inf step on.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from conformance import dtypes
from conformance.cases.case import Case
from conformance.cases.trace import Trace
from conformance.dtypes import components

FACTOR = 4.0
FLOOR = 4.0
PERTURBED_RUNS = 3


#: How far apart two runs of one implementation may be when an invariant says they are
#: equal, in eps at scale per step. They compute the same elementwise arithmetic on the
#: same values; they can differ only where the implementation's arithmetic depends on an
#: element's position or a tensor's grouping (a vector body and a scalar tail, fused
#: multiply-add or not, another kernel for another dtype mix), by a rounding or two per
#: operation: the budget's FLOOR per step bounds that.
INVARIANT_TOLERANCE = FLOOR




@dataclasses.dataclass(frozen=True)
class Parity:
    """A parity verdict with both figures at the worst place."""

    passed: bool
    error: float  # the implementation's error there, in eps at scale
    torch_error: float  # torch's worst error on that tensor up to that step
    budget: float  # FACTOR · (torch's worst error so far) + FLOOR
    where: str  # e.g. "param 1 exp_avg_sq after step 7"
    worst_error: float  # the implementation's largest error anywhere
    worst_torch_error: float  # torch's largest error anywhere
    torch_deviations: int  # elements where torch's non-finite pattern differs from the oracle's

    def __str__(self) -> str:
        head = "within budget" if self.passed else "OVER BUDGET"
        return (f"{head}: {fmt_eps(self.error)} eps vs budget {fmt_eps(self.budget)} eps "
                f"(torch {fmt_eps(self.torch_error)} eps) at {self.where}")


def fmt_eps(x: float | None) -> str:
    """An error figure as reports print it: three significant digits, or inf (None is inf)."""
    return "inf" if x is None or not np.isfinite(x) else f"{x:.3g}"


def reference_cases(case: Case) -> list[Case]:
    """The Cases torch's reference path runs to set the budget for `case` (see above)."""
    if case.objective is None:
        return [case]
    copies = []
    for seed in range(PERTURBED_RUNS):
        rs = np.random.RandomState(seed)
        params = tuple(
            dataclasses.replace(p, init=_moved(p, rs.randint(-1, 2, p.shape)))
            for p in case.params
        )
        copies.append(dataclasses.replace(case, params=params))
    return [case, *copies]


def _moved(p, ulps: np.ndarray) -> np.ndarray:
    """The initial values of parameter `p` moved by `ulps` units in the last place."""
    return dtypes.round_to(p.init + ulps * dtypes.ulp(p.init, p.dtype), p.dtype)


def judge(impl: Trace, references: list[Trace], oracle: Trace, case: Case, state: bool = True,
          allowance: Trace | None = None) -> Parity:
    """Compare `impl` with the oracle within the budget set by torch's runs of
    `reference_cases`: every parameter and (unless `state` is False) every state tensor.
    `allowance` (`oracle.allowance` of a declared state precision) is taken off the
    implementation's distance, element by element, before it is judged."""
    for trace in (impl, *references):
        if trace.error:
            raise ValueError(f"cannot judge a run that stopped: {trace.error}")
    worst, worst_impl, worst_torch, deviations = (0.0, 0.0, 0.0, FLOOR, "nothing recorded"), 0.0, 0.0, 0
    for series in _series(impl, references, oracle, case, state, allowance):
        torch_so_far = 0.0
        for where, e_impl, e_torch, dev in series:
            deviations += dev
            worst_impl, worst_torch = max(worst_impl, e_impl), max(worst_torch, e_torch)
            torch_so_far = max(torch_so_far, e_torch)
            budget = FACTOR * torch_so_far + FLOOR
            if e_impl / budget > worst[0]:
                worst = (e_impl / budget, e_impl, torch_so_far, budget, where)
    ratio, e_impl, e_torch, budget, where = worst
    return Parity(ratio <= 1.0, e_impl, e_torch, budget, where, worst_impl, worst_torch, deviations)


def distance(trace: Trace, oracle: Trace, case: Case, state: bool = True,
             allowance: Trace | None = None) -> tuple[float, int]:
    """(largest error of `trace` from the oracle in eps at scale, less `allowance` as in `judge`;
    elements whose non-finite pattern differs from the oracle's, which are not compared), over
    the parameters and, unless `state` is False, the state tensors."""
    errors = [(e, dev) for series in _series(trace, [trace], oracle, case, state, allowance)
              for _, e, _, dev in series]
    return max((e for e, _ in errors), default=0.0), sum(dev for _, dev in errors)


def _series(impl: Trace, references: list[Trace], oracle: Trace, case: Case, state: bool = True,
            allowance: Trace | None = None):
    """Per tensor, a list of (where, impl error, torch error, torch deviations) per recorded step."""
    index = {t: k for k, t in enumerate(oracle.steps)}
    for i, p in enumerate(case.params):
        keys = [k for k in sorted(oracle.state[i]) if k in impl.state[i]] if state else []
        for key in ["param", *keys]:
            x, o = _tensor(impl, i, key), _tensor(oracle, i, key)
            refs = [_tensor(r, i, key) for r in references]
            if any(r is None for r in refs):  # torch keeps no such state: nothing to budget against
                continue
            scale = _rms(o)
            moment = key not in ("param", "step")
            slack = None if allowance is None else _tensor(allowance, i, key)
            yield [(f"param {i} {key} after step {t}",
                    *tensor_error(x[k], [r[k] for r in refs], o[index[t]], p.dtype, scale, moment,
                                  None if slack is None else slack[index[t]]))
                   for k, t in enumerate(impl.steps) if t in index]


def _tensor(trace: Trace, i: int, key: str) -> np.ndarray | None:
    return trace.params[i] if key == "param" else trace.state[i].get(key)


def tensor_error(x: np.ndarray, refs: list[np.ndarray], o: np.ndarray, dtype: str, scale: float,
                 moment: bool = False, slack: np.ndarray | None = None) -> tuple[float, float, int]:
    """(implementation error, largest torch error, torch deviations) of one tensor snapshot.

    `refs` are torch's values in its reference runs, `scale` the tensor's typical
    magnitude (`_rms` of its oracle trajectory). A `moment` may be NaN where the oracle
    has ±inf (the lerp form of its moving average; see the module docstring). `slack` is
    taken off the implementation's distance per element, whose rounding is then measured at
    the scale of |o| + slack, the values that may flow there; where it is not finite (or
    would not be in the dtype), the element is not compared.
    """
    x, o = components(x), held(components(o), dtypes.real(dtype))
    size = np.abs(o)
    if slack is not None:  # moved toward the truth by what the declared format allows
        slack = components(slack)
        with np.errstate(invalid="ignore", over="ignore"):
            promised = np.isfinite(slack) & np.isfinite(held(size + slack, dtypes.real(dtype)))
            x = np.where(promised, x - np.clip(x - o, -slack, slack), o)  # none promised (even to stay finite)
            size = np.where(promised, size + slack, size)
    e_impl = e_torch = 0.0
    deviations = 0
    for r in map(components, refs):
        torch_off = _pattern_differs(r, o)
        impl_off = _pattern_differs(x, o) & (~torch_off | _pattern_differs(x, r))
        if moment:
            impl_off &= ~(np.isnan(x) & np.isinf(o))
        compare = np.isfinite(o) & ~torch_off
        e_torch = max(e_torch, _error(r, o, compare, dtype, scale))
        e_impl = max(e_impl, np.inf if impl_off.any() else _error(x, o, compare, dtype, scale, size))
        deviations = max(deviations, int(torch_off.sum()))
    return e_impl, e_torch, deviations


def held(o: np.ndarray, dtype: str) -> np.ndarray:
    """The oracle's (real) values as a tensor of `dtype` holds them: beyond its range, ±inf.
    A float16 parameter cannot hold 1.4e7, exact as it is; every implementation, torch's
    first, has inf there, and what follows from inf is no longer a rounding question."""
    with np.errstate(over="ignore"):
        rounded = dtypes.round_to(o, dtype)
    return np.where(np.isinf(rounded) & np.isfinite(o), rounded, o)


def _error(x: np.ndarray, o: np.ndarray, where: np.ndarray, dtype: str, scale: float,
           size: np.ndarray | None = None) -> float:
    """max |x - o| / (eps · max(size, scale)) over `where`; `size` is |o| unless given."""
    if not where.any():
        return 0.0
    x, o, size = x[where], o[where], np.abs(o if size is None else size)[where]
    floor = max(scale, dtypes.TINY[dtypes.real(dtype)])
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.abs(x - o) / (dtypes.eps(dtype) * np.maximum(size, floor))
    return float(np.max(np.where(np.isnan(e), np.inf, e)))


def _rms(series: np.ndarray) -> float:
    """Root-mean-square of the finite values of a tensor's trajectory (max |o| if that overflows)."""
    values = np.abs(components(series))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0
    with np.errstate(over="ignore"):
        rms = float(np.sqrt(np.mean(values * values)))
    return rms if np.isfinite(rms) else float(values.max())


def _pattern_differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elements whose class differs: finite vs not, NaN vs not, +inf vs -inf."""
    return (np.isfinite(a) != np.isfinite(b)) | (np.isnan(a) != np.isnan(b)) | (np.isinf(a) & np.isinf(b) & (a != b))

