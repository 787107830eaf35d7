"""The error budget's formula, unit by unit: errors in eps at the values' scale, the budget
FACTOR · (torch's worst so far) + FLOOR, the lerp-NaN allowance in the moments, and the
non-finite pattern."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.cases.case import Case, Group, Param, Step
from conformance.cases.trace import Trace
from conformance.truth import budget

EPS32 = 2.0**-23


def _case(steps: int = 3) -> Case:
    return Case("adam", (Param(np.ones(4)),), (Group((0,)),), tuple(Step((np.ones(4),)) for _ in range(steps)))


def _trace(params: np.ndarray, exp_avg: np.ndarray | None = None) -> Trace:
    state = {"step": np.arange(1.0, len(params) + 1)}
    if exp_avg is not None:
        state["exp_avg"] = exp_avg
    return Trace(steps=tuple(range(1, len(params) + 1)), params=(params,), state=(state,))


def _off(truth: np.ndarray, eps_per_step: list[float]) -> np.ndarray:
    """`truth` moved by the given number of float32 eps at its scale (here 1) per step."""
    return truth + np.array(eps_per_step)[:, None] * EPS32


TRUTH = np.ones((3, 4))


def test_an_error_is_counted_in_eps_at_the_values_scale():
    error, torch_error, deviations = budget.tensor_error(TRUTH[0] + 3 * EPS32, [TRUTH[0]], TRUTH[0], "float32", 1.0)
    assert error == pytest.approx(3.0) and torch_error == 0 and deviations == 0
    # Near zero a value is judged on the tensor's typical size, not its own.
    small = np.array([1e-12, 1.0, 1.0, 1.0])
    error, _, _ = budget.tensor_error(small + EPS32, [small], small, "float32", 1.0)
    assert error == pytest.approx(1.0)


@pytest.mark.parametrize("impl_eps, torch_eps, passes", [
    ([0, 4, 4], [0, 0, 0], True),  # the floor: 4 eps where torch is exact
    ([0, 4.5, 0], [0, 0, 0], False),
    ([9, 12, 12], [2, 0, 0], True),  # 4 · 2 + 4 = 12: the running maximum keeps torch's worst so far
    ([9, 12.5, 0], [2, 0, 0], False),
])
def test_the_budget_is_four_times_torchs_worst_so_far_plus_four(impl_eps, torch_eps, passes):
    parity = budget.judge(_trace(_off(TRUTH, impl_eps)), [_trace(_off(TRUTH, torch_eps))], _trace(TRUTH), _case())
    assert parity.passed is passes, str(parity)
    assert parity.budget == pytest.approx(budget.FACTOR * parity.torch_error + budget.FLOOR)


def test_the_worst_place_is_named():
    parity = budget.judge(_trace(_off(TRUTH, [0, 0, 40])), [_trace(TRUTH)], _trace(TRUTH), _case())
    assert not parity.passed and parity.where == "param 0 param after step 3" and parity.error == pytest.approx(40)


def test_a_moment_may_be_nan_where_the_exact_value_is_infinite():
    """The lerp form of a moving average turns inf into NaN: either form is torch's arithmetic."""
    truth = np.array([np.inf, 1.0, 1.0, 1.0])
    lerp = np.array([np.nan, 1.0, 1.0, 1.0])
    assert budget.tensor_error(lerp, [truth], truth, "float32", 1.0, moment=True)[0] == 0.0
    assert budget.tensor_error(lerp, [truth], truth, "float32", 1.0, moment=False)[0] == np.inf


def test_the_non_finite_pattern_must_match_unless_torch_departs_from_it():
    truth = np.array([1.0, 2.0, np.inf, -np.inf])
    assert budget.tensor_error(np.array([1.0, np.nan, np.inf, -np.inf]), [truth], truth, "float32", 1.0)[0] == np.inf
    assert budget.tensor_error(np.array([1.0, 2.0, -np.inf, -np.inf]), [truth], truth, "float32", 1.0)[0] == np.inf
    # Where torch itself has NaN, the target may follow torch or the oracle; the element is counted, not compared.
    torch_nan = np.array([1.0, np.nan, np.inf, -np.inf])
    for follows in (torch_nan, truth):
        error, _, deviations = budget.tensor_error(follows, [torch_nan], truth, "float32", 1.0)
        assert error == 0.0 and deviations == 1


def test_state_may_be_left_out_of_the_judgement():
    params, moment = TRUTH, np.full((3, 4), 0.5)
    wrong = _trace(params, moment * 2)
    assert not budget.judge(wrong, [_trace(params, moment)], _trace(params, moment), _case()).passed
    assert budget.judge(wrong, [_trace(params, moment)], _trace(params, moment), _case(), state=False).passed


def test_a_closed_loop_is_budgeted_by_torchs_spread_over_one_ulp_perturbed_starts():
    case = _case()
    assert budget.reference_cases(case) == [case]
    from conformance.cases.scenarios import SCENARIOS

    loop = SCENARIOS["mlp-notebook"][1]()
    copies = budget.reference_cases(loop)
    assert len(copies) == 1 + budget.PERTURBED_RUNS and copies[0] is loop
    for copy in copies[1:]:
        for p, q in zip(loop.params, copy.params):
            moved = np.abs(q.init - p.init)
            assert np.all(moved <= np.spacing(np.abs(p.init).astype(np.float32)).astype(np.float64)) and moved.any()


@pytest.mark.parametrize("x, shown", [(3.14159, "3.14"), (np.inf, "inf"), (None, "inf"), (1.5e9, "1.5e+09")])
def test_error_figures_are_formatted_one_way(x, shown):
    assert budget.fmt_eps(x) == shown
