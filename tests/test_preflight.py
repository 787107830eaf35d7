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


def open_adamw(params, **kw):
    """AdamW behind an open signature: it takes no decoupled_weight_decay."""
    return torch.optim.AdamW(params, foreach=True, **kw)


class Forwarding(torch.optim.Adam):
    """A subclass that forwards everything, as wrappers do."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)


def lr_required(params, lr, betas=(0.9, 0.999), eps=1e-8):
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)


class HalfBecomesFloat(torch.optim.Adam):
    """Turns a float16 parameter into float32 in place: a bug, not a refusal."""

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.dtype == torch.float16:
                    p.data = p.data.float()
        return super().step(closure)


class RefusesHalfCleanly(torch.optim.Adam):
    """Refuses a float16 parameter in its first step, touching nothing."""

    def step(self, closure=None):
        if any(p.dtype == torch.float16 for g in self.param_groups for p in g["params"]):
            raise TypeError("float16 is not supported")
        return super().step(closure)


class RaisesOnHalfLater(torch.optim.Adam):
    """Takes a float16 parameter, then raises on its second step: a bug, not a refusal."""

    def step(self, closure=None):
        calls = self.__dict__.setdefault("calls", [0])
        calls[0] += 1
        if calls[0] > 1 and any(p.dtype == torch.float16 for g in self.param_groups for p in g["params"]):
            raise RuntimeError("float16 overflowed")
        return super().step(closure)


class ClosureTwice(torch.optim.Adam):
    """Calls the closure twice: the preflight must not take that for a refusal of closures."""

    def step(self, closure=None):
        if closure is not None:
            with torch.enable_grad():
                closure()
        return super().step(closure)
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


def test_an_open_signature_is_probed_keyword_by_keyword(optimizers):
    """`make(params, **kw)` around AdamW: at torch's defaults it is given the parameters alone;
    its spec is read from what it returns; decoupled_weight_decay, which AdamW does not take, is
    found by probing (and is meaningless for AdamW anyway)."""
    impl = resolve("preflight_targets:open_adamw")
    assert impl.spec == "adam" and impl.spec_from == "default"
    assert {"weight_decay", "amsgrad", "maximize"} <= impl.assumed
    target = Target(impl, impl.spec, "cpu", PROFILES["quick"])
    found = preflight.run(target, read_spec=True)
    target = found.apply(target)
    assert target.spec == "adamw" and "read from the optimizer it returns" in found.lines()[0]
    assert set(found.probed) == {"weight_decay", "amsgrad", "maximize"}
    assert "decoupled_weight_decay" not in target.claims
    for check_id in ("parity.trajectory", "contract.defaults", "contract.state-entries"):
        run_check(CATALOGUE[check_id], target)


def test_a_forwarding_subclass_keeps_every_keyword_it_takes(optimizers):
    target, found = _checked("preflight_targets:Forwarding")
    assert set(found.probed) == {"weight_decay", "amsgrad", "maximize", "decoupled_weight_decay"}
    assert not found.dropped and not found.kept and found.explicit == {}


def test_a_keyword_without_a_default_is_always_given(optimizers):
    target, found = _checked("preflight_targets:lr_required")
    assert found.explicit == {"lr": "required by its signature"}
    assert target.impl.explicit == {"lr"}
    run_check(CATALOGUE["parity.trajectory"], target)
    with pytest.raises(CheckFailure, match="with torch's defaults left out.*raised where torch.optim.Adam did not"):
        run_check(CATALOGUE["contract.defaults"], target, explain=False)


def test_a_default_that_differs_from_torchs_is_always_given_and_one_finding():
    from tests import mutants
    from tests.kill_matrix import target_of

    target = target_of(mutants.DefaultDecayOfAdamW, "quick")
    assert set(target.impl.explicit) == {"weight_decay"}
    run_check(CATALOGUE["parity.trajectory"], target)  # weight_decay=0 is passed: parity judges Adam
    with pytest.raises(CheckFailure, match="its default is 0.01, torch's 0.0"):
        run_check(CATALOGUE["contract.defaults"], target, explain=False)


@pytest.mark.parametrize("name", ["preflight_targets:HalfBecomesFloat", "preflight_targets:RaisesOnHalfLater"])
def test_a_bug_the_probe_exposes_is_kept_for_the_checks_not_dropped(optimizers, name):
    """Attribution: a run the target broke (the suite's next move failed, or it raised on a
    later step) is no refusal: the claim stays, and the checks fail on it."""
    target, found = _checked(name)
    assert "float16" not in {n.feature for n in found.dropped} and "float16" in target.claims
    kept = [n for n in found.kept if n.feature == "float16"]
    assert kept and "kept in the claims" in kept[0].kept(), found.lines()
    with pytest.raises(CheckFailure):
        run_check(CATALOGUE["parity.trajectory"], target, explain=False)


def test_a_clean_refusal_is_dropped_and_said_in_the_verdict(optimizers):
    from conformance.report import certificate

    target, found = _checked("preflight_targets:RefusesHalfCleanly")
    assert [n.feature for n in found.dropped] == ["float16"] and not found.kept
    doc = dict(summary=dict(passed=3, failed=0, skipped=0, error=0), target=dict(name="x", spec="adam"),
               verdict="conformant", dropped_claims=[dict(feature="float16", probe="p", refusal="r")])
    assert certificate.verdict_line(doc).startswith("CONFORMANT (without float16: refused by the target)")


def test_a_closure_called_twice_is_not_a_refused_closure(optimizers):
    target, found = _checked("preflight_targets:ClosureTwice")
    assert "closure" in target.claims and not found.dropped and not found.kept
    with pytest.raises(CheckFailure, match="called the closure 2 times"):
        run_check(CATALOGUE["contract.closure"], target, explain=False)
