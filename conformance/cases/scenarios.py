"""The golden scenarios: hand-built Cases covering every feature and edge, seeded.

Each builder returns a Case; `golden regenerate` runs the oracle on each and writes
Case and Trace to ``golden/``. Values come from ``np.random.RandomState`` (whose
streams numpy keeps stable across releases), rounded to each parameter's dtype, so
the files rebuild bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from conformance.cases.case import Case, Group, Objective, Param, Step
from conformance.dtypes import complex_from, is_complex, round_to

SCENARIOS: dict[str, tuple[str, Callable[[], Case]]] = {}


def scenario(description: str):
    def register(build: Callable[[np.random.RandomState], Case]):
        name = build.__name__.replace("_", "-")
        seed = len(SCENARIOS)
        SCENARIOS[name] = (description, lambda: _named(build(np.random.RandomState(seed)), name))
        return build

    return register


def _named(case: Case, name: str) -> Case:
    return dataclasses.replace(case, name=name)


def values(rs: np.random.RandomState, shape, dtype: str, scale: float = 1.0) -> np.ndarray:
    """Normal values of `shape`, times `scale`, exact in `dtype`."""
    width = np.float64 if dtype in ("float64", "complex128") else np.float32
    draw = lambda: rs.standard_normal(shape).astype(width) * scale
    if is_complex(dtype):
        return round_to(complex_from(draw(), draw()), dtype)
    return round_to(draw(), dtype)


def params(rs, shapes, dtype="float32", **layout) -> tuple[Param, ...]:
    return tuple(Param(values(rs, s, dtype), dtype, **layout) for s in shapes)


def steps(rs, ps: tuple[Param, ...], n: int, *, scale=lambda t: 1.0, present=lambda t, i: True,
          **extra) -> tuple[Step, ...]:
    """n steps of normal gradients times scale(t); None where present(t, i) is false."""
    return tuple(
        Step(
            grads=tuple(values(rs, p.shape, p.dtype, scale(t)) if present(t, i) else None for i, p in enumerate(ps)),
            **{k: f(t) for k, f in extra.items()},
        )
        for t in range(1, n + 1)
    )


def simple(rs, spec="adam", shapes=((4, 3), (5,), ()), dtype="float32", n=20, **hyper) -> Case:
    ps = params(rs, shapes, dtype)
    return Case(spec, ps, (Group(tuple(range(len(ps))), **hyper),), steps(rs, ps, n))


# -- the scenarios ---------------------------------------------------------------------


@scenario("Adam defaults, float32, a matrix, a vector and a 0-d parameter")
def basic_adam(rs):
    return simple(rs)


@scenario("AdamW with its default weight decay 1e-2, float32")
def basic_adamw(rs):
    return simple(rs, "adamw", lr=1e-2, weight_decay=1e-2)


@scenario("0-d and empty tensors beside ordinary ones")
def zero_dim_and_empty(rs):
    return simple(rs, shapes=((), (0,), (3, 0), (2,), ()), lr=0.1, weight_decay=0.1)


@scenario("sizes that are not multiples of any block size: 1, 3, 7, 31, 33, 127, 129, 1025")
def odd_sizes(rs):
    return simple(rs, shapes=((1,), (3,), (7,), (31,), (33,), (127,), (129,), (1025,)), n=10, lr=0.01)


@scenario("complex64 parameters with coupled decay and amsgrad: real and imaginary parts independent")
def complex64_adam(rs):
    return simple(rs, shapes=((3, 2), (4,), ()), dtype="complex64", lr=0.05, weight_decay=0.1, amsgrad=True)


@scenario("complex128 parameters under AdamW")
def complex128_adamw(rs):
    return simple(rs, "adamw", shapes=((3, 2), (5,)), dtype="complex128", lr=0.05, weight_decay=0.2)


@scenario("float16 parameters and gradients, eps large enough for float16")
def float16_values(rs):
    return simple(rs, shapes=((6, 5), (9,)), dtype="float16", lr=0.01, eps=1e-3)


@scenario("bfloat16 parameters and gradients")
def bfloat16_values(rs):
    return simple(rs, shapes=((6, 5), (9,)), dtype="bfloat16", lr=0.02)


@scenario("float64 Adam with decay, amsgrad and maximize")
def float64_everything(rs):
    return simple(rs, dtype="float64", lr=0.03, weight_decay=0.05, amsgrad=True, maximize=True)


@scenario("AMSGrad with gradients shrinking 30% a step: the running max of v takes over")
def amsgrad_shrinking_gradients(rs):
    ps = params(rs, ((5, 4), (6,)))
    return Case("adam", ps, (Group((0, 1), lr=0.05, amsgrad=True),), steps(rs, ps, 25, scale=lambda t: 0.7**t))


@scenario("AMSGrad under AdamW with shrinking gradients")
def amsgrad_adamw_shrinking(rs):
    ps = params(rs, ((5, 4), (6,)))
    return Case("adamw", ps, (Group((0, 1), lr=0.05, amsgrad=True, weight_decay=0.1),),
                steps(rs, ps, 25, scale=lambda t: 0.8**t))


@scenario("eps comparable to the gradients: where eps sits in the formula matters")
def eps_comparable_to_gradients(rs):
    ps = params(rs, ((8,), (3, 3)))
    return Case("adam", ps, (Group((0, 1), lr=0.01, eps=1e-2),), steps(rs, ps, 20, scale=lambda t: 1e-2))


@scenario("eps = 0 with gradients bounded away from zero")
def eps_zero(rs):
    ps = params(rs, ((8,),))
    return Case("adam", ps, (Group((0,), lr=0.01, eps=0.0),), steps(rs, ps, 10, scale=lambda t: 1.0))


@scenario("lr 1 and weight decay 1 (coupled)")
def large_lr_and_decay(rs):
    return simple(rs, lr=1.0, weight_decay=1.0)


@scenario("lr 1 and weight decay 0.5 (decoupled halves the weights each step)")
def large_lr_and_decay_adamw(rs):
    return simple(rs, "adamw", lr=1.0, weight_decay=0.5)


@scenario("maximize with coupled decay: the gradient is negated before the L2 term is added")
def maximize_adam(rs):
    return simple(rs, lr=0.05, weight_decay=0.2, maximize=True)


@scenario("maximize with decoupled decay: the weights still shrink")
def maximize_adamw(rs):
    return simple(rs, "adamw", lr=0.05, weight_decay=0.2, maximize=True)


@scenario("parameters without a gradient on some steps: step counts stay per parameter")
def none_grad_schedule(rs):
    ps = params(rs, ((4, 3), (5,), (2,)))
    present = lambda t, i: not ((i == 1 and t % 3 == 0) or (i == 2 and t < 6))
    return Case("adamw", ps, (Group((0, 1, 2), lr=0.05, weight_decay=0.1, amsgrad=True),),
                steps(rs, ps, 20, present=present))


@scenario("lr and betas changed before steps, as schedulers do")
def lr_schedule(rs):
    ps = params(rs, ((4, 3), (5,)))
    change = lambda t: ((0, "lr", 0.1 * 0.8**t),) + (((0, "betas", (0.8, 0.99)),) if t == 8 else ())
    return Case("adam", ps, (Group((0, 1), lr=0.1, weight_decay=0.01),), steps(rs, ps, 15, set=change))


@scenario("lr given as a 0-d tensor and changed in place")
def tensor_lr(rs):
    ps = params(rs, ((4, 3), (5,)))
    change = lambda t: ((0, "lr", [2**-4, 2**-5, 2**-6][t % 3]),)  # (float32 values)
    return Case("adamw", ps, (Group((0, 1), lr=2**-4, weight_decay=0.1, tensor_lr=True),),
                steps(rs, ps, 12, set=change))


@scenario("three param groups with different hyperparameters")
def param_groups(rs):
    ps = params(rs, ((4, 3), (5,), (2, 2), (3,)))
    groups = (
        Group((0,), lr=0.01),
        Group((1, 2), lr=0.1, betas=(0.5, 0.9), weight_decay=0.3, amsgrad=True),
        Group((3,), lr=0.001, eps=1e-4, maximize=True),
    )
    return Case("adam", ps, groups, steps(rs, ps, 15))


@scenario("a group joins through add_param_group before step 6")
def add_param_group(rs):
    ps = params(rs, ((4, 3), (5,)))
    groups = (Group((0,), lr=0.05, weight_decay=0.1), Group((1,), lr=0.02, amsgrad=True, added_at=6))
    return Case("adamw", ps, groups, steps(rs, ps, 15, present=lambda t, i: i == 0 or t >= 6))


@scenario("state_dict round trips mid-run, directly and through torch.save/torch.load(weights_only=True)")
def state_dict_round_trip(rs):
    ps = params(rs, ((4, 3), (5,), ()))
    events = lambda t: {6: ("reload",), 12: ("reload_file",)}.get(t, ())
    return Case("adam", ps, (Group((0, 1, 2), lr=0.05, weight_decay=0.1, amsgrad=True),),
                steps(rs, ps, 18, events=events))


@scenario("zero_grad before steps, then only some parameters get a gradient")
def zero_grad_events(rs):
    ps = params(rs, ((4, 3), (5,)))
    events = lambda t: ("zero_grad",) if t % 4 == 0 else ()
    return Case("adam", ps, (Group((0, 1), lr=0.05),),
                steps(rs, ps, 12, present=lambda t, i: not (t % 4 == 0 and i == 1), events=events))


@scenario("every step through step(closure)")
def closure(rs):
    ps = params(rs, ((4, 3), (5,)))
    return Case("adamw", ps, (Group((0, 1), lr=0.05, weight_decay=0.1),), steps(rs, ps, 10, closure=lambda t: True))


@scenario("a long run: 1000 steps with beta2 = 0.9999 (bias correction matters throughout)")
def long_run(rs):
    ps = params(rs, ((3, 3), (4,)))
    record = (1, 2, 5, 10, 50, 100, 250, 500, 750, 999, 1000)
    return Case("adam", ps, (Group((0, 1), lr=1e-3, betas=(0.9, 0.9999)),), steps(rs, ps, 1000, scale=lambda t: 0.1),
                record=record)


@scenario("beta1 = 0: the first moment is the gradient")
def beta1_zero(rs):
    return simple(rs, lr=0.02, betas=(0.0, 0.99))


@scenario("Adam with decoupled_weight_decay=True behaves as AdamW")
def decoupled_flag_on_adam(rs):
    return simple(rs, lr=0.05, weight_decay=0.3, decoupled_weight_decay=True)


@scenario("transposed, sliced and channels_last parameters, gradients in other layouts")
def noncontiguous_layouts(rs):
    shapes_layouts = [((4, 3), "transposed", "contiguous"), ((5, 6), "sliced", "transposed"),
                      ((2, 3, 4, 5), "channels_last", "contiguous"), ((7,), "contiguous", "sliced")]
    ps = tuple(Param(values(rs, s, "float32"), "float32", lay, glay) for s, lay, glay in shapes_layouts)
    return Case("adamw", ps, (Group((0, 1, 2, 3), lr=0.05, weight_decay=0.1),), steps(rs, ps, 10))


@scenario("all-zero gradients on some steps")
def zero_gradients(rs):
    ps = params(rs, ((4, 3), (5,)))
    return Case("adam", ps, (Group((0, 1), lr=0.05, weight_decay=0.1),),
                steps(rs, ps, 12, scale=lambda t: 0.0 if t in (1, 5, 6) else 1.0))


@scenario("huge and tiny gradient magnitudes (1e100 and 1e-100, float64)")
def huge_and_tiny_magnitudes(rs):
    ps = params(rs, ((4,), (4,)), dtype="float64")
    st = steps(rs, ps, 10)
    st = tuple(Step(grads=(s.grads[0] * 1e100, s.grads[1] * 1e-100)) for s in st)
    return Case("adam", ps, (Group((0, 1), lr=0.01, eps=0.0),), st)


@scenario("non-finite gradients: an inf and a NaN element, which must propagate as in torch")
def non_finite_gradients(rs):
    ps = params(rs, ((6,), (3,)))
    st = list(steps(rs, ps, 6))
    bad = st[2].grads[0].copy()
    bad[1], bad[4] = np.inf, np.nan
    st[2] = Step(grads=(bad, st[2].grads[1]))
    return Case("adam", ps, (Group((0, 1), lr=0.01),), tuple(st))


@scenario("several dtypes interleaved in one group: float32, float64, bfloat16, float16")
def mixed_dtypes_one_group(rs):
    ps = (Param(values(rs, (5,), "float32"), "float32"), Param(values(rs, (4,), "float64"), "float64"),
          Param(values(rs, (6,), "bfloat16"), "bfloat16"), Param(values(rs, (3,), "float16"), "float16"),
          Param(values(rs, (2,), "float32"), "float32"))
    return Case("adamw", ps, (Group((0, 1, 2, 3, 4), lr=0.02, weight_decay=0.1, eps=1e-3),), steps(rs, ps, 12))


@scenario("bfloat16 AdamW over 200 steps with lr·wd = 0.01: decay compounds, rounding must not bias it")
def bfloat16_adamw_long_decay(rs):
    ps = params(rs, ((16,), (8, 4)), dtype="bfloat16")
    record = tuple(range(25, 201, 25))
    return Case("adamw", ps, (Group((0, 1), lr=0.1, weight_decay=0.1),), steps(rs, ps, 200, scale=lambda t: 1e-3),
                record=record)


@scenario("the seed notebook's MLP: 64x1000 -> 100 -> 10, MSE sum, lr 1e-4, 500 steps, closed loop")
def mlp_notebook(rs):
    n, d_in, hidden, d_out = 64, 1000, 100, 10
    x, y = values(rs, (n, d_in), "float32"), values(rs, (n, d_out), "float32")

    def linear(fan_in, fan_out):  # torch.nn.Linear's default init: U(-1/√fan_in, 1/√fan_in)
        bound = 1 / np.sqrt(fan_in)
        w = round_to(rs.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32), "float32")
        b = round_to(rs.uniform(-bound, bound, (fan_out,)).astype(np.float32), "float32")
        return Param(w), Param(b)

    ps = (*linear(d_in, hidden), *linear(hidden, d_out))
    return Case("adam", ps, (Group((0, 1, 2, 3), lr=1e-4),), tuple(Step(grads=()) for _ in range(500)),
                objective=Objective("mlp-mse", x, y), record=(500,))
