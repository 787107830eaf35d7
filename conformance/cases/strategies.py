"""Hypothesis strategies for Adam Cases, to import and compose.

`cases()` draws whole optimization runs; the pieces it is built from (`shapes`,
`layouts`, `dtypes`, `hyperparameters`, `groups`, `schedules`) are public too. Every
strategy takes the features an implementation claims and never draws beyond them, nor
onto the edges of the valid range it rejects (`avoid`, names from `registry.EDGES`), and
every draw is bounded so that an example stays small and fast (a few parameters of at
most a few thousand elements, a dozen steps).

Values are not drawn element by element: each case draws a seed and its values come
from ``np.random.RandomState(seed)``, rounded to each parameter's dtype. Shrinking then
works on structure (shapes, steps, hyperparameters, magnitudes, the seed), which is
what makes a minimal Case readable.

A `Plan` forces the branches an example takes (a dtype, a layout, AMSGrad on or off,
several groups, ...). `covering_plans` gives the explicit examples that run before the
random ones, so that every branch a target claims is taken at least once per run, at
every profile.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from conformance import dtypes as dt
from conformance.cases.case import LAYOUTS, Case, Group, Objective, Param, Resume, Step
from conformance.vocabulary import EDGES, FEATURES, SPECS

#: Sides that are not multiples of any power of two above 1 (and 0, for empty tensors).
SIDES = (0, 1, 3, 5, 7, 13, 31, 33, 63, 127)
#: Large 1-d sizes that straddle the block sizes of typical kernels.
LARGE = (1025, 4097)
#: log10 bounds of the gradient scale per dtype: g² stays a normal number of the dtype
#: (no overflow to inf, no flush to zero), with room for 4-sigma draws.
MAGNITUDE_RANGE = {"float16": (-2, 1), "bfloat16": (-17, 17), "float32": (-17, 17), "float64": (-150, 150)}
#: The dimensions a layout needs: at least this many (channels_last: exactly 4).
LAYOUT_DIMS = {"contiguous": 0, "transposed": 2, "sliced": 1, "channels_last": 4}
#: The least nonzero weight decay drawn (see `hyperparameters`).
MIN_DECAY = 1e-6
#: Parameter dtypes, float32 (always claimed) first.
DTYPES = ("float32", "float64", "float16", "bfloat16", "complex64", "complex128")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The branches one example must take; None leaves a choice to the draw.

    The dtype and layouts are parameter 0's; ``lr``, ``decay`` (``none``, ``coupled`` or
    ``decoupled``) and the flags are group 0's; ``zero_dim`` and ``empty`` add such a
    parameter, ``groups`` a second group, ``late_group`` one that joins through
    add_param_group before step 2, ``missing_grad`` a step where a parameter has no
    gradient, ``closure`` a step through step(closure). False forbids what True forces.
    """

    dtype: str | None = None
    layout: str | None = None
    grad_layout: str | None = None
    lr: float | None = None
    decay: str | None = None
    amsgrad: bool | None = None
    maximize: bool | None = None
    tensor_lr: bool | None = None
    closure: bool | None = None
    groups: bool | None = None
    late_group: bool | None = None
    missing_grad: bool | None = None
    zero_dim: bool | None = None
    empty: bool | None = None

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self).items() if v is not None) or "free"


FREE = Plan()
#: The most rows `covering_plans` gives (a three-valued decay factor: `pairwise`).
MAX_COVERING_ROWS = 8
#: Boolean plan flags and the claim each needs.
FLAGS = {"amsgrad": "amsgrad", "maximize": "maximize", "tensor_lr": "tensor_lr", "closure": "closure",
         "groups": "param_groups", "late_group": "param_groups", "missing_grad": None, "zero_dim": "zero_dim",
         "empty": "empty"}


def claimed_dtypes(claims=FEATURES) -> list[str]:
    """The parameter dtypes the claims allow: float32 always, the others when claimed."""
    allowed = {"float32", *(d for d in ("float64", "float16", "bfloat16") if d in claims)}
    if "complex" in claims:
        allowed |= {"complex64"} | ({"complex128"} if "float64" in claims else set())
    return [d for d in DTYPES if d in allowed]


def claimed_layouts(claims=FEATURES) -> list[str]:
    return list(LAYOUTS) if "noncontiguous" in claims else ["contiguous"]


def claimed_decays(claims=FEATURES, spec: str = "adam") -> list[str]:
    """The weight-decay branches the claims allow: none, coupled L2 (Adam), decoupled (AdamW,
    or Adam with decoupled_weight_decay=True)."""
    if "weight_decay" not in claims:
        return ["none"]
    if spec == "adamw":
        return ["none", "decoupled"]
    return ["none", "coupled"] + (["decoupled"] if "decoupled_weight_decay" in claims else [])


def covering_plans(claims=FEATURES, spec: str = "adam") -> list[Plan]:
    """Explicit examples that, between them, take every branch the claims allow: each
    dtype, each parameter layout and each gradient layout in some row, and every pair of
    values of the flags (the decay mode, AMSGrad, maximize, tensor lr, closure, several
    groups, ...) in some row. Row 0 is the plainest example: float32, contiguous, flags off.
    Every row takes lr = 0.1, so that a wrong step shows even in bfloat16, where a step of
    torch's default lr = 1e-3 can be below the parameters' resolution."""
    flags = [f for f, needs in FLAGS.items() if needs is None or needs in claims]
    decays = claimed_decays(claims, spec)
    table = pairwise(len(decays), len(flags))
    kinds, layouts = claimed_dtypes(claims), claimed_layouts(claims)
    rows = max(len(table), len(kinds), len(layouts))
    return [Plan(dtype=kinds[r % len(kinds)], layout=layouts[r % len(layouts)],
                 grad_layout=layouts[(r + 1) % len(layouts)] if r else "contiguous", lr=0.1,
                 decay=decays[table[r % len(table)][0]],
                 **{f: bool(v) for f, v in zip(flags, table[r % len(table)][1:])})
            for r in range(rows)]


def pairwise(levels: int, k: int) -> list[tuple[int, ...]]:
    """Rows of a covering array of strength 2 over one factor of `levels` values (1 to 3)
    and k binary ones: for every two factors, every pair of their values is in some row.
    Each row is (the first factor's value, the k binary values); row 0 is all zeros.

    The binary columns are distinct words of length N that start with 0 and have
    w = ⌈N/2⌉ ones: row 0 gives (0, 0); two distinct words of one weight each have a 1
    where the other has a 0; and 2w > N - 1 ones in N - 1 places must overlap, giving
    (1, 1). N is the least with C(N-1, w) ≥ k: 6 rows for up to 10 binary factors, 7 for
    up to 15. A two-valued first factor is one more such column. A three-valued one is
    D = (0, 0, 0, 1, 1, 1, 2, 2) over N = 8 rows, with the words whose ones and whose
    zeros each meet all three values of D: 18 of the 35 words qualify.
    """
    if levels == 3:
        first = (0, 0, 0, 1, 1, 1, 2, 2)
        words = [w for w in itertools.combinations(range(1, 8), 4)
                 if {first[r] for r in w} == {first[r] for r in range(8) if r not in w} == {0, 1, 2}][:k]
        if len(words) < k:
            raise ValueError(f"pairwise: at most 18 binary factors beside a three-valued one, not {k}")
        return [(first[r], *(int(r in w) for w in words)) for r in range(8)]
    columns = k + (levels == 2)
    n = 1
    while math.comb(n - 1, (n + 1) // 2) < columns:
        n += 1
    words = list(itertools.combinations(range(1, n), (n + 1) // 2))[:columns]
    rows = [tuple(int(r in w) for w in words) for r in range(n)]
    return rows if levels == 2 else [(0, *row) for row in rows]


@functools.cache
def dtypes(claims=FEATURES) -> st.SearchStrategy[str]:
    """Parameter dtypes the claims allow: float32 always, the others when claimed."""
    return st.sampled_from(claimed_dtypes(claims))


@functools.cache
def shapes(max_dims: int = 4, max_numel: int = 1024, large: bool = True, *, min_dims: int = 0,
           empty: bool = True) -> st.SearchStrategy[tuple[int, ...]]:
    """`min_dims`-d to `max_dims`-d shapes of awkward sides (with a 0 among them unless
    `empty` is False), and now and then one large 1-d size."""
    sides = SIDES if empty else SIDES[1:]
    small = st.integers(min_dims, max_dims).flatmap(lambda n: st.tuples(*[st.sampled_from(sides)] * n)).filter(
        lambda s: int(np.prod(s, dtype=np.int64)) <= max_numel
    )
    if not large or not min_dims <= 1 <= max_dims:
        return small
    return st.one_of(small, small, small, st.sampled_from(LARGE).map(lambda n: (n,)))


@functools.cache
def layouts(shape: tuple[int, ...], claims=FEATURES) -> st.SearchStrategy[str]:
    """Memory layouts that fit `shape` (contiguous only, unless noncontiguous is claimed)."""
    options = ["contiguous"]
    if "noncontiguous" in claims:
        options += [layout for layout in LAYOUTS[1:] if LAYOUT_DIMS[layout] <= len(shape)
                    and (layout != "channels_last" or len(shape) == 4)]
    return st.sampled_from(options)


def _without(values: list[float], edge: str, avoid) -> list[float]:
    return [v for v in values if not (edge in avoid and v == EDGES[edge][1])]


@functools.cache
def hyperparameters(claims=FEATURES, spec: str = "adam", avoid=(), plan: Plan = FREE) -> st.SearchStrategy[dict]:
    """One group's hyperparameters over their whole valid range, within the claims, off the
    edges in `avoid`, taking the branches `plan` forces."""
    # torch's defaults come first: a shrunk, minimal Case differs from them only where it must.
    lr = st.one_of(st.sampled_from(_without([1e-3, 1e-2, 0.1, 1.0, 0.0], "lr=0", avoid)),
                   st.floats(-8, 0).map(lambda e: float(10**e))) if plan.lr is None else st.just(plan.lr)
    beta1 = st.one_of(st.sampled_from(_without([0.9, 0.0, 0.5, 0.99], "beta1=0", avoid)),
                      st.floats(0.0, 0.999, exclude_min="beta1=0" in avoid))
    beta2 = st.one_of(st.sampled_from(_without([0.999, 0.0, 0.5, 0.9, 0.99, 0.9999], "beta2=0", avoid)),
                      st.floats(0.0, 0.9999, exclude_min="beta2=0" in avoid))
    eps = st.sampled_from(_without([1e-8, 0.0, 1e-12, 1e-6, 1e-3, 0.1, 1.0], "eps=0", avoid))
    # A decay far below any in use (1e-38, say) makes wd·θ underflow in float16 and its square
    # in float32: with eps = 0 the step is then 0/0 or x/0 by precision alone, torch's too, and
    # each implementation's precision picks its own non-finite value. MIN_DECAY keeps draws real.
    some_decay = st.one_of(st.sampled_from(_without([1e-4, 1e-2, 0.1, 0.5, 1.0], "weight_decay=1", avoid)),
                           st.floats(MIN_DECAY, 1.0, exclude_max="weight_decay=1" in avoid))
    decay = st.just(0.0)
    if "weight_decay" in claims:
        decay = st.one_of(st.just(0.0), some_decay) if plan.decay is None else (
            st.just(0.0) if plan.decay == "none" else some_decay)

    def flag(name: str, forced: bool | None) -> st.SearchStrategy[bool]:
        if name not in claims:
            return st.just(False)
        return st.booleans() if forced is None else st.just(forced)

    forced = None if plan.decay is None else plan.decay == "decoupled"
    decoupled = flag("decoupled_weight_decay", forced) if spec == "adam" else st.just(False)
    return st.fixed_dictionaries(dict(
        lr=lr, betas=st.tuples(beta1, beta2), eps=eps, weight_decay=decay, amsgrad=flag("amsgrad", plan.amsgrad),
        maximize=flag("maximize", plan.maximize), decoupled_weight_decay=decoupled,
        tensor_lr=flag("tensor_lr", plan.tensor_lr),
    )).map(_float32_lr)


def _float32_lr(h: dict) -> dict:
    """A tensor lr is a float32 tensor: its value must be a float32 value."""
    if h["tensor_lr"]:
        h["lr"] = float(np.float32(h["lr"]))
    return h


@functools.cache
@st.composite
def groups(draw, n_params: int, claims=FEATURES, spec: str = "adam", max_groups: int = 3, late_joins: int = 0,
           avoid=(), plan: Plan = FREE) -> tuple[Group, ...]:
    """Param groups partitioning range(n_params), each with its own hyperparameters (the
    first taking `plan`'s branches). One group unless ``param_groups`` is claimed.

    With `late_joins` > 0, a group other than the first may join through
    add_param_group before a step in 2..late_joins.
    """
    most = min(max_groups, n_params) if "param_groups" in claims else 1
    if plan.groups is False:  # one group at construction, and one that joins late if the plan says so
        most = min(most, 2 if plan.late_group else 1)
    least = 2 if (plan.groups or plan.late_group) and most >= 2 else 1
    n = draw(st.integers(least, most))
    owner = [0] + draw(st.lists(st.integers(0, n - 1), min_size=n_params - 1, max_size=n_params - 1))
    owner[: n] = range(n)  # every group gets a parameter
    out = []
    for j in range(n):
        h = draw(hyperparameters(claims, spec, avoid, plan if j == 0 else FREE))
        if j == 0 or late_joins < 2 or plan.late_group is False:
            joins = 1
        elif plan.late_group and j == 1:
            joins = 2
        else:
            joins = draw(st.sampled_from([1, 1, *range(2, late_joins + 1)]))
        out.append(Group(tuple(i for i, o in enumerate(owner) if o == j), added_at=joins, **h))
    return tuple(out)


@st.composite
def schedules(draw, params: tuple[Param, ...], group_list: tuple[Group, ...], n: int, *,
              claims=FEATURES, non_finite: bool = False, events: bool = True, plan: Plan = FREE) -> tuple[Step, ...]:
    """`n` steps of gradients: None on some steps, all-zero steps, shrinking or growing
    scales, huge and tiny magnitudes, optionally non-finite values; lr changes and events."""
    magnitude = draw(st.one_of(st.just(0), st.integers(-3, 3), st.integers(-40, 40)))
    rate = draw(st.sampled_from([1.0, 1.0, 0.5, 0.1, 2.0, 10.0]))
    zero_steps = draw(st.sets(st.integers(1, n), max_size=2)) if draw(st.booleans()) else set()
    absent = set()
    if plan.missing_grad is not False:
        absent = draw(st.sets(st.tuples(st.integers(1, n), st.integers(0, len(params) - 1)), max_size=n))
    if plan.missing_grad:  # the last parameter misses its first gradient and, if there is one, gets the next
        absent.add((1, len(params) - 1))
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
        closure = "closure" in claims and plan.closure is not False and (
            (plan.closure and t == 1) or draw(st.integers(0, 3)) == 3)
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
    draw = lambda: rs.standard_normal(shape) * scale
    values = dt.complex_from(draw(), draw()) if dt.is_complex(dtype) else draw()
    with np.errstate(over="ignore"):
        return dt.round_to(values, dtype)


def cases(*, spec: str = "adam", claims=FEATURES, max_params: int = 4, max_steps: int = 8, max_groups: int = 3,
          max_numel: int = 1024, large: bool = True, non_finite: bool = False, events: bool = True,
          late_joins: bool = True, avoid=(), plan: Plan = FREE, resume: bool = False,
          big: int = 0) -> st.SearchStrategy[Case]:
    """Whole Cases for `spec` within `claims`, off the edges in `avoid`, taking the branches
    `plan` forces; with `resume`, runs resumed from a state_dict saved late in training
    (`RESUMED_AT`); with `big`, a first parameter of at least that many elements (`big_shape`),
    its gradients' scale falling tenfold from one block of 256 to the next (1, 0.1, 0.01,
    0.001, again), and beside it one of 256 fewer than `big` (a format's threshold).
    See the module docstring for the bounds. Raises InvalidArgument, naming the argument,
    for arguments no Case can satisfy."""
    _check_arguments(spec, claims, max_params, max_steps, max_groups, max_numel, avoid, plan)
    strategy = _cases(spec, frozenset(claims), max_params, max_steps, max_groups, max_numel, large, non_finite,
                      events, late_joins and not resume, frozenset(avoid), plan, big)
    return strategy.flatmap(resumed) if resume else strategy


#: The steps a resumed Case starts after: where a float16 step counter stops counting
#: (2048 + 1 rounds to 2048), and late in a long run.
RESUMED_AT = (2047, 10**6)


@st.composite
def resumed(draw, case: Case) -> Case:
    """`case` resumed from a state_dict saved after a step of `RESUMED_AT`: moments of the
    gradients' typical size (a second moment, its square; AMSGrad's max, at least that)."""
    rs = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    scale = 10.0 ** draw(st.integers(-3, 1))
    amsgrad = {i for g in case.groups if g.amsgrad for i in g.params}
    moments = []
    for i, p in enumerate(case.params):
        m = _values(rs, p.shape, p.dtype, scale)
        v = _values(rs, p.shape, p.dtype, scale)
        v = dt.round_to(dt.complex_from(dt.components(v)[..., 0] ** 2, dt.components(v)[..., 1] ** 2)
                        if dt.is_complex(p.dtype) else v * v, p.dtype)
        entry = {"exp_avg": m, "exp_avg_sq": v}
        if i in amsgrad:
            entry["max_exp_avg_sq"] = dt.round_to(v * 2, p.dtype)
        moments.append(entry)
    return dataclasses.replace(case, resume=Resume(draw(st.sampled_from(RESUMED_AT)), tuple(moments)))


@st.composite
def closed_loops(draw, *, spec: str = "adam", claims=FEATURES, max_steps: int = 8, avoid=(),
                 plan: Plan = FREE) -> Case:
    """Small closed loops: the seed notebook's MLP objective (``mlp-mse``) at a size of a few
    units, every step through step(closure) when closure is claimed; its gradients come from
    autograd, as a user's closure computes them."""
    d_in, hidden, d_out, n = (draw(st.integers(1, k)) for k in (5, 4, 3, 6))
    dtype = draw(st.sampled_from([d for d in ("float32", "float64") if d in claimed_dtypes(claims)]))
    rs = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    shapes = [(hidden, d_in), (hidden,), (d_out, hidden), (d_out,)]
    params = tuple(Param(_values(rs, s, dtype, 1 / np.sqrt(s[-1])), dtype) for s in shapes)
    h = draw(hyperparameters(claims, spec, avoid, dataclasses.replace(plan, lr=plan.lr or 0.01)))
    closure = "closure" in claims
    steps = tuple(Step((), closure=closure) for _ in range(draw(st.integers(1, max_steps))))
    objective = Objective("mlp-mse", _values(rs, (n, d_in), dtype), _values(rs, (n, d_out), dtype))
    return Case(spec, params, (Group((0, 1, 2, 3), **h),), steps, objective)


def _check_arguments(spec, claims, max_params, max_steps, max_groups, max_numel, avoid, plan) -> None:
    if spec not in SPECS:
        raise InvalidArgument(f"spec={spec!r}: must be one of {sorted(SPECS)}")
    unknown = sorted(set(claims) - set(FEATURES))
    if unknown:
        raise InvalidArgument(f"claims: unknown feature(s) {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(FEATURES)}")
    for name, value in dict(max_params=max_params, max_steps=max_steps, max_groups=max_groups,
                            max_numel=max_numel).items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgument(f"{name}={value!r}: must be an integer of at least 1")
    unknown = sorted(set(avoid) - set(EDGES))
    if unknown:
        raise InvalidArgument(f"avoid: unknown edge(s) {', '.join(map(repr, unknown))}; known: {', '.join(EDGES)}")
    if not isinstance(plan, Plan):
        raise InvalidArgument(f"plan={plan!r}: must be a strategies.Plan")
    if plan.dtype is not None and plan.dtype not in claimed_dtypes(claims):
        raise InvalidArgument(f"plan.dtype={plan.dtype!r}: not a dtype the claims allow "
                              f"({', '.join(claimed_dtypes(claims))})")
    for layout in (plan.layout, plan.grad_layout):
        if layout is not None and layout not in claimed_layouts(claims):
            raise InvalidArgument(f"plan layout {layout!r}: not a layout the claims allow "
                                  f"({', '.join(claimed_layouts(claims))})")


@st.composite
def _cases(draw, spec, claims, max_params, max_steps, max_groups, max_numel, large, non_finite, events, late_joins,
           avoid, plan, big=0) -> Case:
    n_params = draw(st.integers(1, max_params))
    if plan.groups or plan.late_group:
        n_params = max(n_params, 2)
    params = [_param(draw, claims, max_numel, large, plan, forced=i == 0, big=big if i == 0 else 0)
              for i in range(n_params)]
    if big:
        params.append(Param(_values(np.random.RandomState(1), (big - 256,), params[0].dtype), params[0].dtype))
    for extra, shape in (("zero_dim", ()), ("empty", (0,))):
        if getattr(plan, extra) and extra in claims:
            dtype = draw(dtypes(claims))
            params.append(Param(_values(np.random.RandomState(0), shape, dtype), dtype))
    least = 2 if plan != FREE and max_steps >= 2 else 1  # a covering example takes two steps at least
    n_steps = draw(st.integers(least, max_steps))
    group_list = draw(groups(len(params), claims, spec, max_groups, late_joins=n_steps if late_joins else 0,
                             avoid=avoid, plan=plan))
    steps = draw(schedules(tuple(params), group_list, n_steps, claims=claims, non_finite=non_finite, events=events,
                           plan=plan))
    if big:
        steps = tuple(dataclasses.replace(s, grads=(_block_scaled(s.grads[0], params[0].dtype), *s.grads[1:]))
                      for s in steps)
    return Case(spec, tuple(params), group_list, steps)


def _block_scaled(g: np.ndarray | None, dtype: str) -> np.ndarray | None:
    """`g` with its blocks of 256 (row-major) scaled by 1, 0.1, 0.01, 0.001, 1, ...: a blockwise
    format's scales then differ block to block, as a tensor-wide one's cannot follow."""
    if g is None:
        return None
    factor = 10.0 ** -(np.arange(g.size) // 256 % 4)
    with np.errstate(invalid="ignore", over="ignore"):
        return dt.round_to(g * factor.reshape(g.shape), dtype)


@st.composite
def ladders(draw, *, spec: str = "adam", claims=FEATURES, max_steps: int = 8, max_numel: int = 1024, avoid=(),
            plan: Plan = FREE) -> Case:
    """One group of 1-d parameters, one of each size in SIDES up to `max_numel`, in one drawn
    dtype: split over 1, 2 and 4 ranks, their shards take every size around each power of two
    up to `max_numel`, the sizes where kernels and sharded optimizers change path."""
    dtype = plan.dtype or draw(dtypes(claims))
    rs = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    params = tuple(Param(_values(rs, (n,), dtype), dtype) for n in SIDES if 0 < n <= max_numel)
    group_list = draw(groups(len(params), claims, spec, 1, avoid=avoid, plan=plan))
    steps = draw(schedules(params, group_list, draw(st.integers(1, max_steps)), claims=claims, events=False,
                           plan=plan))
    return Case(spec, params, group_list, steps)


#: Shapes of a parameter whose dtype and layouts a plan forces, by the dimensions its
#: layouts need: every side that a layout permutes or slices is more than 1, so the layout
#: really changes which element lies where.
PLANNED_SHAPES = {0: [(7,), (3, 5)], 1: [(7,), (3, 5)], 2: [(3, 5), (5, 3)], 4: [(2, 3, 1, 5), (3, 2, 5, 1)]}


def big_shape(big: int, dims: int) -> tuple[int, ...]:
    """A shape of `dims` (1, 2 or 4) sides, each over 1, of at least `big` elements: a multiple
    of 256 (the block size of blockwise state formats, which some apply only to whole blocks),
    but for the 1-d one, which ends in a partial block: (4196,), (64, 64) and (8, 8, 8, 8) for 4096."""
    side = -(-int(math.ceil(big ** (1 / dims))) // 4) * 4
    return (side,) * dims if dims > 1 else (-(-big // 256) * 256 + 100,)


def _param(draw, claims, max_numel, large, plan: Plan, forced: bool, big: int = 0) -> Param:
    """One parameter; parameter 0 (`forced`) takes the plan's dtype and layouts, and has at
    least `big` elements."""
    chosen = plan if forced else FREE
    dtype = chosen.dtype or draw(dtypes(claims))
    wanted = [LAYOUT_DIMS[x] for x in (chosen.layout, chosen.grad_layout) if x]
    if big:
        fits = [d for d in (1, 2, 4) if d >= max(wanted, default=0)]
        shape = big_shape(big, draw(st.sampled_from(fits[:2])))
    elif wanted:
        shape = draw(st.sampled_from(PLANNED_SHAPES[max(wanted)]))
    else:
        floor = 0 if "zero_dim" in claims and plan.zero_dim is not False else 1
        shape = draw(shapes(max_numel=max_numel, large=large, min_dims=floor,
                            empty="empty" in claims and plan.empty is not False))
    layout = chosen.layout or draw(layouts(shape, claims))
    grad_layout = chosen.grad_layout or draw(layouts(shape, claims))
    init = _values(np.random.RandomState(draw(st.integers(0, 2**32 - 1))), shape, dtype)
    return Param(init, dtype, layout, grad_layout)
