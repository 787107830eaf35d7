"""The preflight: one unsupported feature is one finding, a rejected valid value one failed
check, an unusable target one line; and time limits fit the target."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings

from conformance import FEATURES, Implementation, resolve
from conformance.checks import CATALOGUE, CheckFailure, run_check
from conformance.run import preflight
from conformance.run.target import Target
from conformance.vocabulary import PROFILES

OPTIMIZERS = '''
import functools
import time

import torch

ForeachAdam = functools.partial(torch.optim.Adam, foreach=True)


class NoGroupDicts(torch.optim.Adam):
    """Adam that takes a plain list of tensors only."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        params = list(params)
        if any(isinstance(p, dict) for p in params):
            raise TypeError("param groups are not supported")
        super().__init__(params, lr=lr, betas=betas, eps=eps)


class RealOnly(torch.optim.Adam):
    """Adam that rejects complex parameters."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        groups = list(params)
        tensors = [p for g in groups for p in (g["params"] if isinstance(g, dict) else [g])]
        if any(p.is_complex() for p in tensors):
            raise ValueError("complex parameters are not supported")
        super().__init__(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


class SlowToBuild(torch.optim.Adam):
    """Adam that takes a quarter of a second to construct."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        time.sleep(0.25)
        super().__init__(params, lr=lr, betas=betas, eps=eps)


def raises_everywhere(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
    raise RuntimeError("not today")
'''


@pytest.fixture
def optimizers(user_module):
    return user_module("preflight_targets", OPTIMIZERS)


def _checked(name: str, profile: str = "quick") -> tuple[Target, preflight.Preflight]:
    impl = resolve(name)
    target = Target(impl, impl.spec, "cpu", PROFILES[profile])
    found = preflight.run(target)
    return found.apply(target), found


def test_torchs_foreach_adam_gets_one_note_about_tensor_lr(optimizers):
    target, found = _checked("preflight_targets:ForeachAdam")
    assert [n.feature for n in found.dropped] == ["tensor_lr"] and not found.avoided
    assert "tensor_lr" not in target.claims
    line = found.lines()[0]
    assert "tensor_lr dropped from the claims: lr given as a Tensor raised ValueError" in line
    assert "--without tensor_lr silences this note" in line
    run_check(CATALOGUE["parity.trajectory"], target)


@pytest.mark.parametrize("name, feature", [
    ("preflight_targets:NoGroupDicts", "param_groups"),
    ("preflight_targets:RealOnly", "complex"),
])
def test_a_default_claim_the_target_rejects_is_dropped_not_failed(optimizers, name, feature):
    target, found = _checked(name)
    assert {n.feature for n in found.dropped} == {feature}
    for check_id in ("parity.trajectory", "contract.state-dict", "contract.accepts-valid"):
        run_check(CATALOGUE[check_id], target)


def test_a_declared_behaviour_the_target_rejects_is_one_failed_check(optimizers):
    """An Implementation that declares complex: contract.accepts-valid fails, the rest draw around it."""
    declared = Implementation("real-only", resolve("preflight_targets:RealOnly").factory,
                              claims=set(FEATURES) - {"amsgrad", "maximize", "decoupled_weight_decay"})
    target, found = _checked_impl(declared)
    assert [n.feature for n in found.avoided] == ["complex"] and not found.dropped
    assert "complex" in target.impl.claims and "complex" not in target.claims
    with pytest.raises(CheckFailure, match="rejects a complex64 parameter, which torch.optim.Adam accepts"):
        run_check(CATALOGUE["contract.accepts-valid"], target)
    run_check(CATALOGUE["parity.trajectory"], target)


def _checked_impl(impl: Implementation) -> tuple[Target, preflight.Preflight]:
    target = Target(impl, impl.spec, "cpu", PROFILES["quick"])
    found = preflight.run(target)
    return found.apply(target), found


def test_a_valid_value_the_target_rejects_is_avoided_by_every_other_check():
    from tests import mutants
    from tests.kill_matrix import target_of

    target = target_of(mutants.RejectsZeroLr, "quick")
    assert target.avoid == {"lr=0"}
    assert CATALOGUE["invariant.scale"].unmet(target) is None  # it needs eps = 0, not lr = 0

    @settings(max_examples=30, database=None, suppress_health_check=list(HealthCheck))
    @given(target.cases())
    def never_lr_zero(case):
        assert case.edges().isdisjoint(target.avoid)

    never_lr_zero()


@pytest.mark.parametrize("name, message", [
    ("preflight_targets:raises_everywhere", "raised at construction with torch's defaults: RuntimeError: not today"),
])
def test_an_unusable_target_is_one_line(optimizers, name, message):
    impl = resolve(name)
    with pytest.raises(preflight.PreflightError, match=message):
        preflight.run(Target(impl, impl.spec))


def test_time_limits_scale_with_a_slow_target(optimizers):
    target, found = _checked("preflight_targets:SlowToBuild")
    assert found.construct_s >= 0.25 > found.torch_construct_s * 100
    quick = PROFILES["quick"]
    assert found.check_timeout(quick) >= quick.timeout + 100 * 0.25  # room for every construction a check makes
    fast = preflight.Preflight(construct_s=1e-4, step_s=1e-4)
    assert fast.check_timeout(quick) < quick.timeout + 1  # a hang is still caught at about the profile's limit


def test_the_record_survives_the_trip_to_the_workers():
    found = preflight.Preflight(dropped=(preflight.Note("complex", "complex", "a complex64 parameter", "boom"),),
                                construct_s=0.5, duration_s=1.0)
    assert preflight.Preflight.from_json(found.to_json()) == found
    assert dataclasses.asdict(found)["dropped"][0]["raised"] == "boom"
