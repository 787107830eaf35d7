"""Declared state precision: the formats' code maps, the rounding bound, the bounds carried
through Adam (`oracle.allowance`), the budget that takes them off, and the verdict that says so.
The zoo holds an 8-bit state certified within its declaration and two that are not
(tests/mutants.py: Blockwise8bitState, LinearCodesDeclaredDynamic, QuantizesBelowDeclaredSize)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.cases.case import Case, Group, Param, Step
from conformance.registry import Implementation
from conformance.report import certificate
from conformance.truth import budget, oracle, precision
from conformance.vocabulary import STATE_PRECISIONS
from tests import mutants

EIGHT = precision.PRECISIONS["8bit-dynamic"]


def test_the_formats_are_the_ones_an_implementation_may_declare():
    assert tuple(precision.PRECISIONS) == STATE_PRECISIONS
    with pytest.raises(ValueError, match="state_precision must be one of"):
        Implementation("x", object, state_precision="4bit")


def test_the_dynamic_maps_have_256_codes_from_0_to_1():
    for signed in (True, False):
        codes = precision.dynamic_map(signed=signed)
        assert len(codes) == 256 and codes[-1] == 1.0 and 0.0 in codes
        assert (min(codes) < -0.99) == signed
    e4m3 = precision.e4m3_map()
    assert max(e4m3) == 1.0 and min(e4m3) == -1.0 and len(e4m3) == 253  # 126 magnitudes a side, and 0


def _nearest(codes, r):
    table = np.array(codes)
    return table[np.abs(table[None, :] - r[:, None]).argmin(axis=1)]


@pytest.mark.parametrize("name", STATE_PRECISIONS)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), decades=st.integers(0, 9))
def test_no_block_scale_rounds_a_value_further_than_the_bound(name, seed, decades):
    """For any block whose largest |value| s lies between |y| and the tensor's A, storing y as
    s times its nearest code moves it by at most `rounding`."""
    declared = precision.PRECISIONS[name]
    rs = np.random.RandomState(seed)
    y = rs.randn(2000) * 10.0 ** -rs.uniform(0, decades, 2000)
    a = float(np.abs(y).max())
    s = np.abs(y) + rs.uniform(0, 1, y.shape) * (a - np.abs(y))  # some block scale in [|y|, A]
    for codes, values, bound in ((declared.first, y, declared.first_rounding(y, 0, a)),
                                 (declared.second, np.abs(y), declared.second_rounding(np.abs(y), 0, a))):
        stored = _nearest(codes, values / s) * s
        assert np.all(np.abs(stored - values) <= bound * (1 + 1e-12))


def _case(n: int, steps: int = 3, dtype: str = "float32") -> Case:
    rs = np.random.RandomState(0)
    f = lambda x: x.astype(np.float32).astype(np.float64)
    return Case("adamw", (Param(f(rs.randn(n)), dtype),), (Group((0,), lr=1e-2, weight_decay=0.1),),
                tuple(Step((f(rs.randn(n)),)) for _ in range(steps)))


def test_a_tensor_too_small_for_the_format_is_allowed_nothing():
    bounds = oracle.allowance(_case(100), EIGHT)
    assert all(not x.any() for x in (bounds.params[0], *bounds.state[0].values()))


def test_a_large_tensor_is_allowed_what_its_format_implies_and_no_more():
    """The bounds grow with the steps (decoupled decay shrinks what was carried). At the median
    element the parameter's is a small part of what Adam moves it in three steps of lr = 0.01
    (about 5% here), far from "anything goes"; the first moment's, under 3% of its largest
    (the map rounds by up to 0.7% a step)."""
    case = _case(4096)
    bounds = oracle.allowance(case, EIGHT)
    theta = bounds.params[0]
    assert np.median(theta[-1]) > np.median(theta[0]) > 0
    assert np.median(theta[-1]) < 0.1 * 3 * 1e-2
    m, truth = bounds.state[0]["exp_avg"][-1], oracle.run(case).state[0]["exp_avg"][-1]
    assert np.median(m / np.abs(truth).max()) < 0.03


def test_the_budget_takes_the_allowance_off_and_measures_what_is_left():
    case = _case(4096, steps=1)
    truth = oracle.run(case)
    bounds = oracle.allowance(case, EIGHT)
    inside = truth.params[0] + 0.9 * bounds.params[0]
    outside = truth.params[0] + 1.5 * bounds.params[0] + 1e-3
    trace = lambda x: type(truth)(steps=truth.steps, params=(x,), state=truth.state)
    assert budget.judge(trace(inside), [truth], truth, case, allowance=bounds).passed
    assert not budget.judge(trace(inside), [truth], truth, case).passed
    assert not budget.judge(trace(outside), [truth], truth, case, allowance=bounds).passed


def test_nothing_is_promised_where_the_bound_is_not_finite():
    case = _case(4096, steps=1)
    truth = oracle.run(case)
    bounds = oracle.allowance(case, EIGHT)
    unbounded = bounds.params[0].copy()
    unbounded[0, :10] = np.inf
    wild = truth.params[0].copy()
    wild[0, :10] = np.nan
    trace = lambda x: type(truth)(steps=truth.steps, params=(x,), state=truth.state)
    loose = type(bounds)(steps=bounds.steps, params=(unbounded,), state=bounds.state)
    assert budget.judge(trace(wild), [truth], truth, case, allowance=loose).passed
    assert not budget.judge(trace(wild), [truth], truth, case, allowance=bounds).passed


def test_the_verdict_says_the_declared_state():
    doc = dict(verdict="conformant", summary=dict(passed=21, skipped=8),
               target=dict(name="bnb-adamw8bit", spec="adamw", state_precision="8bit-dynamic"))
    assert certificate.verdict_line(doc).startswith("CONFORMANT within its declared 8-bit state: bnb-adamw8bit behaves")


def test_the_zoo_declares_what_it_stores():
    assert mutants.Blockwise8bitState.STATE_PRECISION == "8bit-dynamic"
    assert mutants.Blockwise8bitState in mutants.CORRECT
    assert {mutants.LinearCodesDeclaredDynamic, mutants.QuantizesBelowDeclaredSize} <= set(mutants.MUTANTS)
