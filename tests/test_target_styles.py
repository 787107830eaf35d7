"""Optimizers written as other packages write them, which the suite must drive as torch's own
tools do (found surveying torchao and heavyball): a correct one passes, a wrong one fails
with a finding, never with the suite's own error."""

from __future__ import annotations

import pytest
import torch

from conformance.checks import CATALOGUE, CheckFailure, run_check
from tests.kill_matrix import target_of


class TensorLrAdam(torch.optim.Adam):
    """Holds lr as a Tensor however it is given, and refuses a float put in its place, as
    torchao's optimizers do; torch's LR schedulers fill such an lr in place."""

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        last = self.param_groups[-1]
        last["lr"] = torch.tensor(float(last["lr"]), dtype=torch.float64)  # float32 costs float64 params precision

    def step(self, closure=None):
        if any(not torch.is_tensor(g["lr"]) for g in self.param_groups):
            raise RuntimeError("lr was changed to a non-Tensor object")
        return super().step(closure)


class IntKeyedState(torch.optim.Adam):
    """Keeps an extra state entry under an int key (heavyball keys its state so)."""

    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p in self.state:
                    self.state[p][0] = torch.zeros(())
        return loss


@pytest.mark.parametrize("check_id", ["parity.trajectory", "invariant.permutation", "contract.state-dict"])
def test_an_lr_held_as_a_tensor_is_scheduled_in_place_as_torchs_schedulers_do(check_id):
    run_check(CATALOGUE[check_id], target_of(TensorLrAdam, "quick"))


def test_a_state_entry_keyed_by_an_int_is_a_finding_not_a_crash():
    with pytest.raises(CheckFailure) as caught:
        run_check(CATALOGUE["contract.state-entries"], target_of(IntKeyedState, "quick"))
    assert "0 beside torch's" in str(caught.value)


class OneGroupOnly(torch.optim.Adam):
    """Takes a list of tensors, never param-group dicts (TorchOpt's torch.optim-like classes)."""

    def __init__(self, params, **kwargs):
        params = list(params)
        if any(isinstance(p, dict) for p in params):
            raise TypeError("param groups are not supported")
        super().__init__(params, **kwargs)


def test_a_target_without_param_groups_is_partitioned_without_them():
    """invariant.partition gives each parameter a group of its own only where groups are claimed."""
    target = target_of(OneGroupOnly, "quick")
    assert "param_groups" not in target.claims
    run_check(CATALOGUE["invariant.partition"], target)


class RefusesAmsgrad(torch.optim.Adam):
    """Takes **kwargs and refuses AMSGrad with a ValueError, as bitsandbytes' AdamW8bit does."""

    def __init__(self, params, **kwargs):
        if kwargs.get("amsgrad"):
            raise ValueError("RefusesAmsgrad does not support amsgrad=True")
        super().__init__(params, **kwargs)


def test_a_keyword_an_open_signature_refuses_with_a_value_error_is_dropped_with_a_note():
    from conformance.registry import Implementation
    from conformance.run import preflight
    from conformance.run.target import Target
    from conformance.vocabulary import PROFILES

    impl = Implementation.from_callable("RefusesAmsgrad", lambda params, **kw: RefusesAmsgrad(params, **kw))
    found = preflight.run(Target(impl, "adam", "cpu", PROFILES["quick"]))
    assert [n.feature for n in found.dropped] == ["amsgrad"]
    assert "ValueError: RefusesAmsgrad does not support amsgrad=True" in found.dropped[0].dropped()


class RejectsValidDecay(torch.optim.Adam):
    """Takes **kwargs and rejects a valid weight decay with a ValueError: a bug, not a refusal."""

    def __init__(self, params, **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError(f"Invalid weight_decay value: {kwargs['weight_decay']}")
        super().__init__(params, **kwargs)


def test_a_value_error_on_a_valid_value_is_not_taken_for_a_refused_feature():
    from conformance.registry import Implementation
    from conformance.run import preflight
    from conformance.run.target import Target
    from conformance.vocabulary import PROFILES

    impl = Implementation.from_callable("RejectsValidDecay", lambda params, **kw: RejectsValidDecay(params, **kw))
    target = Target(impl, "adam", "cpu", PROFILES["quick"])
    assert "weight_decay" not in [n.feature for n in preflight.run(target).dropped]
    with pytest.raises(CheckFailure):
        run_check(CATALOGUE["contract.accepts-valid"], preflight.run(target).apply(target))
