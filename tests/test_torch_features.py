"""Features of torch are detected, not read off its version; a feature the installed torch
lacks is skipped with that reason, never an error. tox runs this file on every release."""

from __future__ import annotations

import inspect

import pytest
import torch

from conformance import resolve
from conformance.report.environment import describe_environment
from conformance.run import torch_features
from conformance.run.target import Target
from conformance.vocabulary import PROFILES

#: What each release is known to have (the drift table of the README): detection must agree.
SINCE = {"decoupled_weight_decay": (2, 7), "adamw_is_adam": (2, 7), "fused_cpu": (2, 4), "tensor_betas": (2, 6),
         "param_names": (2, 6), "weights_only": (2, 6), "tensor_lr": (2, 6)}


def _release() -> tuple[int, int]:
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


@pytest.mark.parametrize("feature", sorted(torch_features.FEATURES))
def test_detection_agrees_with_the_installed_release(feature):
    assert torch_features.detect()[feature] == (_release() >= SINCE[feature]), torch.__version__


@pytest.fixture
def older_torch(monkeypatch):
    """torch as a release before 2.7 has it: Adam without decoupled_weight_decay."""

    class Adam(torch.optim.Adam):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                     foreach=None, maximize=False, capturable=False, differentiable=False, fused=None):
            super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
                             capturable=capturable, differentiable=differentiable, fused=fused)

    monkeypatch.setattr(torch.optim, "Adam", Adam)
    torch_features.detect.cache_clear()
    yield
    torch_features.detect.cache_clear()


def test_a_feature_the_installed_torch_lacks_is_skipped_with_that_reason(older_torch):
    assert "decoupled_weight_decay" not in inspect.signature(torch.optim.Adam).parameters
    assert torch_features.detect()["decoupled_weight_decay"] is False
    lacking = torch_features.lacking()
    assert set(lacking) == {"decoupled_weight_decay"} and "lacks it" in lacking["decoupled_weight_decay"]
    target = Target(resolve("eager"), "adam", "cpu", PROFILES["quick"])
    assert "decoupled_weight_decay" in target.impl.claims and "decoupled_weight_decay" not in target.claims
    assert any(line.startswith("decoupled_weight_decay not drawn: the installed torch")
               for line in describe_environment(target, 0))
