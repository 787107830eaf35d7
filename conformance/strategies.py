"""Hypothesis strategies for Adam Cases, to import and compose.

`cases()` draws whole optimization runs; the pieces it is built from (`shapes`,
`layouts`, `dtypes`, `hyperparameters`, `groups`, `schedules`) are public too. Every
strategy takes the features an implementation claims and never draws beyond them, and
every draw is bounded so that an example stays small and fast (a few parameters of at
most a few thousand elements, a dozen steps).

Values are not drawn element by element: each case draws a seed and its values come
from ``np.random.RandomState(seed)``, rounded to each parameter's dtype. Shrinking then
works on structure (shapes, steps, hyperparameters, magnitudes, the seed), which is
what makes a minimal Case readable.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from conformance import dtypes as dt
from conformance.case import Case, Group, Param, Step
from conformance.registry import FEATURES

#: Sides that are not multiples of any power of two above 1 (and 0, for empty tensors).
SIDES = (0, 1, 3, 5, 7, 13, 31, 33, 63, 127)
#: Large 1-d sizes that straddle the block sizes of typical kernels.
LARGE = (1025, 4097)
#: log10 bounds of the gradient scale per dtype: g² stays a normal number of the dtype
#: (no overflow to inf, no flush to zero), with room for 4-sigma draws.
MAGNITUDE_RANGE = {"float16": (-2, 1), "bfloat16": (-17, 17), "float32": (-17, 17), "float64": (-150, 150)}


def dtypes(claims=FEATURES) -> st.SearchStrategy[str]:
    """Parameter dtypes the claims allow: float32 always, the others when claimed."""
    pool = ["float32"] + [d for d in ("float64", "float16", "bfloat16") if d in claims]
    if "complex" in claims:
        pool += ["complex64"] + (["complex128"] if "float64" in claims else [])
    return st.sampled_from(pool)


def shapes(max_dims: int = 4, max_numel: int = 1024, large: bool = True) -> st.SearchStrategy[tuple[int, ...]]:
    """0-d to `max_dims`-d shapes of awkward sides, and now and then one large 1-d size."""
    small = st.integers(0, max_dims).flatmap(lambda n: st.tuples(*[st.sampled_from(SIDES)] * n)).filter(
        lambda s: int(np.prod(s, dtype=np.int64)) <= max_numel
    )
    if not large:
        return small
    return st.one_of(small, small, small, st.sampled_from(LARGE).map(lambda n: (n,)))


def layouts(shape: tuple[int, ...], claims=FEATURES) -> st.SearchStrategy[str]:
    """Memory layouts that fit `shape` (contiguous only, unless noncontiguous is claimed)."""
    options = ["contiguous"]
    if "noncontiguous" in claims:
        options += ["transposed"] * (len(shape) >= 2) + ["sliced"] * (len(shape) >= 1) + ["channels_last"] * (len(shape) == 4)
    return st.sampled_from(options)


def hyperparameters(claims=FEATURES, spec: str = "adam") -> st.SearchStrategy[dict]:
    """One group's hyperparameters over their whole valid range, within the claims."""
    # torch's defaults come first: a shrunk, minimal Case differs from them only where it must.
    lr = st.one_of(st.sampled_from([1e-3, 1e-2, 0.1, 1.0, 0.0]), st.floats(-8, 0).map(lambda e: float(10**e)))
    beta1 = st.one_of(st.sampled_from([0.9, 0.0, 0.5, 0.99]), st.floats(0.0, 0.999))
    beta2 = st.one_of(st.sampled_from([0.999, 0.0, 0.5, 0.9, 0.99, 0.9999]), st.floats(0.0, 0.9999))
    eps = st.sampled_from([1e-8, 0.0, 1e-12, 1e-6, 1e-3, 0.1, 1.0])
    decay = st.just(0.0)
    if "weight_decay" in claims:
        decay = st.one_of(st.just(0.0), st.sampled_from([1e-4, 1e-2, 0.1, 0.5, 1.0]), st.floats(0.0, 1.0))
    flag = lambda name: st.booleans() if name in claims else st.just(False)  # noqa: E731
    decoupled = flag("decoupled_weight_decay") if spec == "adam" else st.just(False)
    return st.fixed_dictionaries(dict(
        lr=lr, betas=st.tuples(beta1, beta2), eps=eps, weight_decay=decay, amsgrad=flag("amsgrad"),
        maximize=flag("maximize"), decoupled_weight_decay=decoupled, tensor_lr=flag("tensor_lr"),
    )).map(_float32_lr)


def _float32_lr(h: dict) -> dict:
    """A tensor lr is a float32 tensor: its value must be a float32 value."""
    if h["tensor_lr"]:
        h["lr"] = float(np.float32(h["lr"]))
    return h


@st.composite
def groups(draw, n_params: int, claims=FEATURES, spec: str = "adam", max_groups: int = 3, late_joins: int = 0) -> tuple[Group, ...]:
    """Param groups partitioning range(n_params), each with its own hyperparameters.

    With `late_joins` > 0, a group other than the first may join through
    add_param_group before a step in 2..late_joins.
    """
    n = draw(st.integers(1, min(max_groups, n_params)))
    owner = [0] + draw(st.lists(st.integers(0, n - 1), min_size=n_params - 1, max_size=n_params - 1))
    owner[: n] = range(n)  # every group gets a parameter
    out = []
    for j in range(n):
        h = draw(hyperparameters(claims, spec))
        joins = 1 if j == 0 or late_joins < 2 else draw(st.sampled_from([1, 1, *range(2, late_joins + 1)]))
        out.append(Group(tuple(i for i, o in enumerate(owner) if o == j), added_at=joins, **h))
    return tuple(out)


@st.composite
def schedules(draw, params: tuple[Param, ...], group_list: tuple[Group, ...], n: int, *,
              claims=FEATURES, non_finite: bool = False, events: bool = True) -> tuple[Step, ...]:
    """`n` steps of gradients: None on some steps, all-zero steps, shrinking or growing
    scales, huge and tiny magnitudes, optionally non-finite values; lr changes and events."""
    magnitude = draw(st.one_of(st.just(0), st.integers(-3, 3), st.integers(-40, 40)))
    rate = draw(st.sampled_from([1.0, 1.0, 0.5, 0.1, 2.0, 10.0]))
    zero_steps = draw(st.sets(st.integers(1, n), max_size=2)) if draw(st.booleans()) else set()
    absent = draw(st.sets(st.tuples(st.integers(1, n), st.integers(0, len(params) - 1)), max_size=n))
    rs = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    joined = {i: g.added_at for g in group_list for i in g.params}
    steps = []
    for t in range(1, n + 1):
        grads = []
        for i, p in enumerate(params):
            if (t, i) in absent or t < joined[i]:
                grads.append(None)
                continue
            low, high = MAGNITUDE_RANGE[dt.real(p.dtype)]
            scale = 10.0 ** np.clip(magnitude + (t - 1) * np.log10(rate), low, high) * (t not in zero_steps)
            grads.append(_values(rs, p.shape, p.dtype, scale))
        changes = []
        if t > 1 and draw(st.integers(0, 4)) == 4:  # (shrinks towards no change)
            joined_groups = [j for j, g in enumerate(group_list) if g.added_at <= t]
            changes.append((draw(st.sampled_from(joined_groups)), "lr", _lr_for(draw(st.floats(-6, 0)), group_list)))
        step_events = ()
        if events and t > 1:
            step_events = draw(st.sampled_from([(), (), (), (), ("reload",), ("reload_file",), ("zero_grad",)]))
        closure = "closure" in claims and draw(st.integers(0, 3)) == 3
        steps.append(Step(tuple(grads), tuple(changes), step_events, closure))
    if non_finite:
        t = draw(st.integers(1, n))
        candidates = [i for i, g in enumerate(steps[t - 1].grads) if g is not None and g.size]
        if candidates:
            i = draw(st.sampled_from(candidates))
            g = steps[t - 1].grads[i].copy()
            flat = g.reshape(-1)
            flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.inf, -np.inf, np.nan]))
            grads = list(steps[t - 1].grads)
            grads[i] = g
            steps[t - 1] = Step(tuple(grads), steps[t - 1].set, steps[t - 1].events, steps[t - 1].closure)
    return tuple(steps)


def _lr_for(exponent: float, group_list) -> float:
    lr = float(10**exponent)
    return float(np.float32(lr)) if any(g.tensor_lr for g in group_list) else lr


def _values(rs: np.random.RandomState, shape, dtype: str, scale: float = 1.0) -> np.ndarray:
    """Normal values times `scale`, exact in `dtype` (float64 / complex128 storage)."""
    draw = lambda: rs.standard_normal(shape) * scale  # noqa: E731
    values = dt.complex_from(draw(), draw()) if dt.is_complex(dtype) else draw()
    with np.errstate(over="ignore"):
        return dt.round_to(values, dtype)


@st.composite
def cases(draw, *, spec: str = "adam", claims=FEATURES, max_params: int = 4, max_steps: int = 8,
          max_groups: int = 3, max_numel: int = 1024, large: bool = True, non_finite: bool = False,
          events: bool = True, late_joins: bool = True) -> Case:
    """Whole Cases for `spec` within `claims`. See the module docstring for the bounds."""
    n_params = draw(st.integers(1, max_params))
    params = []
    for i in range(n_params):
        dtype = draw(dtypes(claims))
        shape = draw(shapes(max_numel=max_numel, large=large))
        layout = draw(layouts(shape, claims))
        grad_layout = draw(layouts(shape, claims))
        init = _values(np.random.RandomState(draw(st.integers(0, 2**32 - 1))), shape, dtype)
        params.append(Param(init, dtype, layout, grad_layout))
    n_steps = draw(st.integers(1, max_steps))
    group_list = draw(groups(n_params, claims, spec, max_groups, late_joins=n_steps if late_joins else 0))
    steps = draw(schedules(tuple(params), group_list, n_steps, claims=claims, non_finite=non_finite, events=events))
    return Case(spec, tuple(params), group_list, steps)
