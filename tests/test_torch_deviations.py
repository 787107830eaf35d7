"""Where torch's own paths break the properties the suite checks: the evidence, each on its
minimal Case, deterministic. If torch fixes one, its test fails and says so."""

from __future__ import annotations

import numpy as np
import pytest

from conformance import resolve
from conformance.cases.case import Case, Group, Param, Step
from conformance.checks.assertions import holds
from conformance.checks.catalogue import CheckFailure, Evidence
from conformance.checks.invariant import _decay_on_zero_grad
from conformance.run.target import Target
from conformance.truth import budget, oracle


def _target(name: str) -> Target:
    impl = resolve(name)
    return Target(impl, impl.spec)


def judge(target: Target, case: Case) -> budget.Parity:
    """The target's parity with the oracle on `case`."""
    return budget.judge(target.run(case), target.references(case), oracle.run(case), case)


def test_torch_fused_reads_a_gradient_with_its_parameters_strides():
    """A (3,) parameter whose gradient is a strided (sliced) view: one step at torch's defaults."""
    theta, grad = np.array([1.0, 2.0, 3.0]), np.array([0.5, -1.0, 2.0])
    case = Case("adam", (Param(theta, grad_layout="sliced"),), (Group((0,)),), (Step((grad,)),))
    assert judge(_target("eager"), case).passed
    parity = judge(_target("torch-fused"), case)
    assert not parity.passed, "torch-fused now reads strided gradients correctly"
    assert parity.error > 1e4, str(parity)


def test_torch_fused_amsgrad_drops_a_nan_from_the_running_max():
    """AMSGrad with a NaN gradient: torch.maximum keeps NaN in max_exp_avg_sq; fused keeps 0."""
    case = Case("adam", (Param(np.array([1.0, 2.0])),), (Group((0,), amsgrad=True),),
                (Step((np.array([np.nan, 1.0]),)),))
    torch_single = _target("torch").run(case).state[0]["max_exp_avg_sq"][0]
    fused = _target("torch-fused").run(case).state[0]["max_exp_avg_sq"][0]
    assert np.isnan(torch_single[0])
    assert fused[0] == 0.0, f"torch-fused now propagates NaN into max_exp_avg_sq ({fused[0]})"
    assert not judge(_target("torch-fused"), case).passed


def _zero_grad_decay_case(dtype: str, eps: float, tensor_lr: bool) -> Case:
    lr = float(np.float32(0.1))  # a float32 value, as a tensor lr holds; lr * wd is not one
    return Case("adamw", (Param(np.array([1.5, -0.75]), dtype),),
                (Group((0,), lr=lr, weight_decay=0.1, eps=eps, tensor_lr=tensor_lr),),
                (Step((np.zeros(2),)),))


def test_torch_float16_with_eps_1e_8_turns_a_zero_gradient_into_nan():
    """eps = 1e-8 underflows to 0 in float16, so torch's first step on a zero gradient is 0/0."""
    case = _zero_grad_decay_case("float16", 1e-8, tensor_lr=False)
    with pytest.raises(CheckFailure, match="nan"):
        _decay_on_zero_grad(_target("torch-adamw"), case)
    # An implementation that does as torch does is not held to it: the check records the deviation.
    evidence = Evidence()
    holds(_target("eager-adamw"), evidence, _decay_on_zero_grad, case)
    assert evidence.torch_deviation is not None
    # One that computes in float32 registers passes outright.
    _decay_on_zero_grad(_target("triton-adamw"), case)


def test_torch_tensor_lr_computes_the_decay_factor_in_float32():
    """lr as a float32 tensor: 1 - lr*wd is float32 arithmetic, off for float64 weights."""
    case = _zero_grad_decay_case("float64", 1e-8, tensor_lr=True)
    with pytest.raises(CheckFailure, match=r"decoupled \(AdamW\) decay"):
        _decay_on_zero_grad(_target("torch-adamw"), case)
    _decay_on_zero_grad(_target("eager-adamw"), case)
