"""The oracle: independent of torch, right on closed forms, and agreeing with torch in float64."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conformance import resolve
from conformance.cases.case import Case, Group, Param, Step
from conformance.run import runner
from conformance.truth import budget, golden, oracle

FLOAT64_EPS = 2.0**-52

def _widened(case: Case) -> Case:
    """The same case in float64 (complex128): every value is exact in the wider dtype."""
    wide = {"float16": "float64", "bfloat16": "float64", "float32": "float64", "complex64": "complex128"}
    params = tuple(dataclasses.replace(p, dtype=wide.get(p.dtype, p.dtype)) for p in case.params)
    return dataclasses.replace(case, params=params)


#: The notebook's 100000-element MLP over 500 steps takes half a minute: slow.
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow if name == "mlp-notebook" else ())
                                  for name in golden.scenarios()])
def test_oracle_agrees_with_torch_in_float64(name):
    """Beyond 1e-12 where tests/known.py says why (the evidence is the failing assertion)."""
    _, case, _ = golden.read_scenario(golden.DEFAULT_DIR, name)
    case = _widened(case)
    torch_trace = runner.run(resolve("torch" if case.spec == "adam" else "torch-adamw"), case)
    error, deviations = budget.distance(torch_trace, oracle.run(case), case)
    assert deviations == 0, f"torch's NaN/inf pattern differs from the oracle's at {deviations} elements"
    assert error * FLOAT64_EPS <= 1e-12, f"torch float64 is {error * FLOAT64_EPS:.2e} relative from the oracle"


def test_first_step_closed_form():
    """From m = v = 0, one step moves θ by -lr · g / (|g| + eps) elementwise (no decay)."""
    g = np.array([3.0, -0.5, 1e-3, 0.0, 7.0])
    theta = np.array([1.0, 2.0, -3.0, 0.5, 0.0])
    lr, eps = 0.01, 1e-3
    case = Case("adam", (Param(theta, "float64"),), (Group((0,), lr=lr, eps=eps),), (Step((g,)),))
    got = oracle.run(case).params[0][0]
    np.testing.assert_allclose(got, theta - lr * g / (np.abs(g) + eps), rtol=1e-15, atol=0)


def test_decoupled_decay_on_a_zero_gradient_shrinks_by_exactly_one_minus_lr_wd():
    theta = np.array([1.0, -2.0, 0.25])
    case = Case("adamw", (Param(theta, "float64"),), (Group((0,), lr=0.1, weight_decay=0.5),), (Step((np.zeros(3),)),))
    np.testing.assert_array_equal(oracle.run(case).params[0][0], theta * (1 - 0.1 * 0.5))


def test_complex_parameters_are_pairs_of_independent_reals():
    z = np.array([1 + 2j, -0.5 + 0.25j])
    g = np.array([0.5 - 1j, 2 + 0j])
    complex_case = Case("adam", (Param(z, "complex128"),), (Group((0,), lr=0.1),), (Step((g,)),) * 3)
    pairs = np.stack([z.real, z.imag], -1)
    real_grad = np.stack([g.real, g.imag], -1)
    real_case = Case("adam", (Param(pairs, "float64"),), (Group((0,), lr=0.1),), (Step((real_grad,)),) * 3)
    got = oracle.run(complex_case).params[0]
    want = oracle.run(real_case).params[0]
    np.testing.assert_array_equal(np.stack([got.real, got.imag], -1), want)


def test_amsgrad_keeps_the_max_of_the_raw_second_moment():
    case = Case("adam", (Param(np.array([1.0]), "float64"),), (Group((0,), amsgrad=True),),
                tuple(Step((np.array([s]),)) for s in (10.0, 1.0, 0.1)))
    state = oracle.run(case).state[0]
    assert np.all(np.diff(state["max_exp_avg_sq"][:, 0]) >= 0)
    np.testing.assert_array_equal(state["max_exp_avg_sq"][:, 0], np.maximum.accumulate(state["exp_avg_sq"][:, 0]))
