"""Failures explained: what each needs (ablation), how severe it is, and what a wrong state
may hold instead; the report leads with the most severe finding."""

from __future__ import annotations

import pytest

from conformance import resolve
from conformance.checks import CATALOGUE, CheckFailure, run_check
from conformance.report.certificate import render
from conformance.run.target import Target
from conformance.vocabulary import PROFILES
from tests import mutants
from tests.kill_matrix import target_of


def _failure(target: Target, check_id: str) -> CheckFailure:
    with pytest.raises(CheckFailure) as caught:
        run_check(CATALOGUE[check_id], target)
    return caught.value


def test_torch_fused_cpu_adam_fails_only_on_a_gradient_strided_unlike_its_parameter():
    impl = resolve("torch-fused")  # noncontiguous claimed, as a user's target would
    failure = _failure(Target(impl, "adam", "cpu", PROFILES["quick"]), "parity.trajectory")
    assert failure.necessary[0] == "a gradient whose strides differ from its parameter's", failure.necessary
    assert failure.severity == "parameters"
    # The Case is simplified to what the failure needs: one parameter, defaults elsewhere.
    (case,) = failure.cases
    assert len(case.params) == 1 and case.params[0].grad_layout != case.params[0].layout


@pytest.mark.parametrize("mutant, feature", [  # 2 to 6 s each: the fast inner loop runs the first
    (mutants.HalfPathNoBiasCorrection, "a float16 or bfloat16 parameter"),
    pytest.param(mutants.GroupsShareFirstGroupsHyperparameters, "several param groups", marks=pytest.mark.slow),
    pytest.param(mutants.ZeroDimPathNoBiasCorrection, "a 0-d parameter", marks=pytest.mark.slow),
    pytest.param(mutants.TensorLrPathNoBiasCorrection, "lr given as a Tensor", marks=pytest.mark.slow),
])
def test_a_branch_confined_bug_is_explained_by_its_branch(mutant, feature):
    failure = _failure(target_of(mutant, "quick"), "parity.trajectory")
    assert feature in failure.necessary, failure.necessary


def test_a_parameter_never_updated_is_said_plainly():
    failure = _failure(target_of(mutants.NonContiguousParamNotUpdated, "quick"), "parity.trajectory")
    assert failure.severity == "parameters" and "was never updated" in str(failure), str(failure)
    assert "a non-contiguous parameter" in failure.necessary


def test_a_state_unlike_torchs_with_right_parameters_is_said_plainly():
    failure = _failure(target_of(mutants.StoresBiasCorrectedMoments, "quick"), "parity.trajectory")
    assert failure.severity == "state"
    assert str(failure).startswith("the parameters are within budget")
    assert "exp_avg is the oracle's times a factor" in str(failure) and "bias-corrected" in str(failure)


def _check(check_id: str, severity: str | None, necessary=None) -> dict:
    failure = None if severity is None else dict(message=f"{check_id} broke", parity=None, cases=["a case"],
                                                 reproducer="r.py", severity=severity, necessary=necessary)
    return dict(id=check_id, statement="A property.", status="failed" if failure else "passed", reason="",
                duration_s=0.0, examples=1, parity=None, torch_deviation=None, failure=failure)


def _doc(checks: list[dict]) -> dict:
    from conformance.report.certificate import _headline

    failed = sum(c["failure"] is not None for c in checks)
    return dict(checks=checks, headline=_headline(checks), diagnosis=None, skipped_on_request=[],
                summary=dict(passed=len(checks) - failed, failed=failed, skipped=0, error=0),
                verdict="not conformant" if failed else "conformant", target=dict(name="t", spec="adam"))


def test_the_report_leads_with_the_most_severe_finding():
    checks = [_check("contract.closure", "api"), _check("contract.state-dict", "state"),
              _check("invariant.first-step", "parameters"), _check("parity.trajectory", "parameters")]
    doc = _doc(checks)
    assert doc["headline"]["check"] == "parity.trajectory"
    text = render(doc)
    blocks = [line.split()[1] for line in text.splitlines() if line.startswith("FAILED ")]
    assert blocks == ["parity.trajectory", "invariant.first-step", "contract.state-dict", "contract.closure"]
    assert "most severe: parity.trajectory, wrong parameters" in text


def test_a_cause_every_failure_shares_is_named_once():
    need = "a gradient whose strides differ from its parameter's"
    doc = _doc([_check("parity.trajectory", "parameters", [need]), _check("invariant.first-step", "parameters",
                                                                          [need, "a float64 parameter"])])
    assert f"every failure above needs {need}" in render(doc)
    assert f"needs: {need} (without it, it passes)" in render(doc)


def test_an_explanation_keeps_the_property_of_the_check():
    """Ablating a check's own premise (eps = 0 for invariant.scale) must not invent a failure:
    an ablated Case counts only where torch still passes."""
    target = target_of(mutants.ZeroEpsBecomesDefault, "quick")
    failure = _failure(target, "invariant.scale")
    assert all(g.eps == 0.0 for c in failure.cases for g in c.groups)
