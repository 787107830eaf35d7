"""The strategies: covering plans take every branch, plans are obeyed, and bad arguments say so."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from conformance.cases import strategies
from conformance.cases.strategies import Plan, covering_plans, pairwise
from conformance.vocabulary import FEATURES


@pytest.mark.parametrize("levels, k", [(1, 0), (1, 1), (1, 9), (2, 0), (2, 9), (2, 14), (3, 1), (3, 9), (3, 18)])
def test_pairwise_covers_every_pair_of_values_of_every_two_factors(levels, k):
    rows = pairwise(levels, k)
    sizes = [levels] + [2] * k
    assert rows[0] == (0,) * (k + 1) and all(len(r) == k + 1 for r in rows)
    for a, b in itertools.combinations(range(k + 1), 2):
        for x, y in itertools.product(range(sizes[a]), range(sizes[b])):
            assert any(r[a] == x and r[b] == y for r in rows), (a, x, b, y)
    assert len(rows) <= 8


@pytest.mark.parametrize("spec", ["adam", "adamw"])
def test_the_covering_plans_take_every_branch_the_claims_allow(spec):
    plans = covering_plans(FEATURES, spec)
    assert len(plans) <= strategies.MAX_COVERING_ROWS
    assert {p.dtype for p in plans} == set(strategies.claimed_dtypes(FEATURES))
    assert {p.layout for p in plans} == {p.grad_layout for p in plans} == set(strategies.claimed_layouts(FEATURES))
    assert {p.decay for p in plans} == set(strategies.claimed_decays(FEATURES, spec))
    for flag in strategies.FLAGS:
        assert {getattr(p, flag) for p in plans} == {True, False}, flag
    # The coupled (L2) path meets maximize off: an in-place write into p.grad there shows.
    assert spec == "adamw" or any(p.decay == "coupled" and not p.maximize for p in plans)
    assert plans[0] == Plan(dtype="float32", layout="contiguous", grad_layout="contiguous", lr=0.1, decay="none",
                            **{f: False for f in strategies.FLAGS})


def test_covering_plans_stay_within_the_claims():
    claims = {"weight_decay", "closure"}
    plans = covering_plans(claims, "adam")
    assert {p.dtype for p in plans} == {"float32"} and {p.layout for p in plans} == {"contiguous"}
    assert {p.decay for p in plans} == {"none", "coupled"} and all(p.amsgrad is None for p in plans)


@pytest.mark.parametrize("plan", covering_plans(FEATURES, "adam"), ids=lambda p: f"{p.dtype}-{p.layout}-{p.decay}")
def test_a_drawn_case_takes_the_branches_its_plan_forces(plan):
    @settings(max_examples=5, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategies.cases(claims=FEATURES, plan=plan, max_numel=64, max_steps=5, large=False))
    def obeys(case):
        first, group = case.params[0], case.groups[0]
        assert (first.dtype, first.layout, first.grad_layout) == (plan.dtype, plan.layout, plan.grad_layout)
        assert first.init.size > 1 and group.lr == pytest.approx(plan.lr, rel=1e-6)
        assert (group.weight_decay > 0) == (plan.decay != "none")
        assert group.decoupled_weight_decay == (plan.decay == "decoupled")
        assert (group.amsgrad, group.maximize, group.tensor_lr) == (plan.amsgrad, plan.maximize, plan.tensor_lr)
        assert any(s.closure for s in case.steps) == plan.closure
        assert (len(case.groups) > 1) == (plan.groups or plan.late_group)
        assert any(g.added_at > 1 for g in case.groups) == plan.late_group
        assert (any(p.shape == () for p in case.params)) >= plan.zero_dim
        assert (any(p.init.size == 0 for p in case.params[1:])) >= plan.empty
        assert (not plan.missing_grad) or any(g is None for s in case.steps for g in s.grads)
        assert len(case.steps) >= 2

    obeys()


BAD_ARGUMENTS = {
    "unknown spec": (dict(spec="adamax"), "spec='adamax'"),
    "unknown claim": (dict(claims={"complex", "sparse"}), "unknown feature(s) 'sparse'"),
    "no parameters": (dict(max_params=0), "max_params=0: must be an integer of at least 1"),
    "no steps": (dict(max_steps=0), "max_steps=0"),
    "no groups": (dict(max_groups=0), "max_groups=0"),
    "a float for a count": (dict(max_numel=1.5), "max_numel=1.5"),
    "unknown edge": (dict(avoid={"lr=2"}), "unknown edge(s) 'lr=2'"),
    "a plan of the wrong type": (dict(plan={"dtype": "float16"}), "must be a strategies.Plan"),
    "a plan beyond the claims": (dict(claims=set(), plan=Plan(dtype="float16")), "plan.dtype='float16'"),
    "a layout beyond the claims": (dict(claims=set(), plan=Plan(layout="sliced")), "plan layout 'sliced'"),
}


@pytest.mark.parametrize("what", sorted(BAD_ARGUMENTS))
def test_bad_arguments_raise_invalid_argument_naming_them(what):
    kwargs, message = BAD_ARGUMENTS[what]
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        strategies.cases(**kwargs)


def test_edges_a_target_rejects_are_never_drawn():
    avoid = {"lr=0", "eps=0", "beta1=0", "beta2=0", "weight_decay=1"}

    @settings(max_examples=60, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def off_the_edges(data):
        case = data.draw(strategies.cases(avoid=avoid, max_numel=16, max_steps=3, large=False))
        assert not case.edges()

    off_the_edges()
