"""The metamorphic transforms: each changes a Case in a way whose effect the oracle shows
exactly, so an invariant built on it cannot blame a correct target."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.cases import transforms
from conformance.cases.case import Case, Group, Param, Step
from conformance.cases.trace import Trace
from conformance.truth import oracle


def _case() -> Case:
    rs = np.random.RandomState(3)
    draw = lambda *shape: rs.standard_normal(shape).astype(np.float32).astype(np.float64)  # float32 values
    params = (Param(draw(3, 4)), Param(draw(5)), Param(draw()))
    groups = (Group((0, 2), lr=0.1, weight_decay=0.1), Group((1,), lr=0.05, amsgrad=True, maximize=True))
    steps = tuple(Step((draw(3, 4), None if t == 1 else draw(5), draw()), set=((1, "lr", 0.02),) if t == 2 else ())
                  for t in range(1, 4))
    return Case("adam", params, groups, steps)


def _same(a: Trace, b: Trace) -> None:
    for x, y in zip(a.params, b.params):
        np.testing.assert_allclose(x, y, rtol=1e-15, atol=0)
    for sa, sb in zip(a.state, b.state):
        assert set(sa) == set(sb)
        for key in sa:
            np.testing.assert_allclose(sa[key], sb[key], rtol=1e-15, atol=0)


TRANSFORMS = {
    "permute_elements": lambda c: transforms.permute_elements(c, seed=5),
    "reorder_params": lambda c: transforms.reorder_params(c, [2, 0, 1]),
    "split_param": lambda c: transforms.split_param(c, 0, 7),
    "regroup": transforms.regroup,
    "negate_for_maximize": transforms.negate_for_maximize,
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_the_transformed_run_mapped_back_is_the_original_run(name):
    case = _case()
    new, back = TRANSFORMS[name](case)
    assert new.fingerprint() != case.fingerprint()
    _same(back(oracle.run(new)), oracle.run(case))


def test_scaling_gradients_by_a_power_of_two_scales_the_moments_and_keeps_the_parameters():
    case = _case()
    case = Case(case.spec, case.params, tuple(Group(g.params, lr=g.lr, eps=0.0) for g in case.groups), case.steps)
    new, back = transforms.scale_gradients(case, 3)
    _same(back(oracle.run(new)), oracle.run(case))


def test_a_split_parameter_has_two_halves_in_the_same_group():
    new, _ = transforms.split_param(_case(), 0, 7)
    assert [p.shape for p in new.params[:2]] == [(7,), (5,)]
    assert 0 in new.groups[0].params and 1 in new.groups[0].params
