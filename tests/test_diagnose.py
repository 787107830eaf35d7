"""`adam-conformance diagnose`: every planted difference named, no false names, the notebook's loop."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conformance import diagnose, resolve
from conformance.run.target import Target
from conformance.spec import ADAM, ADAMW, POINTS, Spec
from tests import mutants
from tests.kill_matrix import target_of

#: Each mutant whose bug is a point diagnose knows, and what diagnose must find: every
#: point where it departs from torch, and nothing more.
PLANTED = {
    mutants.EpsBeforeBiasCorrection: {"eps": "before_bias_correction"},
    mutants.EpsInsideSqrt: {"eps": "inside_sqrt"},
    mutants.EpsAsFloor: {"eps": "floor"},
    mutants.NoBiasCorrection: {"bias_correction": "none"},
    mutants.FirstMomentNotBiasCorrected: {"bias_correction": "second"},
    mutants.SecondMomentNotBiasCorrected: {"bias_correction": "first"},
    mutants.DecoupledDecayInAdam: {"weight_decay": "decoupled"},
    mutants.CoupledDecay: {"weight_decay": "coupled"},
    mutants.DecayNotScaledByLr: {"weight_decay": "decoupled_unscaled"},
    mutants.DecayAfterUpdate: {"weight_decay": "decoupled_after"},
    mutants.DecoupledFlagIgnored: {"decoupled_flag": "ignored"},
    mutants.MaximizeIgnored: {"maximize": "ignored"},
    mutants.MaximizeByNegatingLr: {"maximize": "negate_lr"},
    mutants.MaximizeAfterDecay: {"maximize": "negate_after_decay"},
    mutants.AmsgradMaxOfCorrected: {"amsgrad": "corrected_max"},
    mutants.AmsgradIgnored: {"amsgrad": "ignored"},
    mutants.AmsgradMaxNotPersisted: {"amsgrad": "ignored"},  # max(0, v) = v at every step
    mutants.StepCountPerGroup: {"step_count": "per_group"},
    mutants.StepCountGlobal: {"step_count": "global"},
    mutants.NoneGradTreatedAsZero: {"missing_grad": "zero"},
    mutants.GradModifiedInPlace: {"gradients": "modified"},
    # bfloat16 moments blur every float64 probe, so the rest is unexplained, and says so.
    mutants.StateInBfloat16: {"state_precision": "lower", "residual": "unexplained"},
    # Branch-confined bugs, named on the branch a probe takes.
    mutants.GradWrittenOnL2Path: {"gradients": "modified"},  # only the weight-decay probe shows it
    # Bias-corrected on the decay path only: the decay probe is left unexplained, and says so.
    mutants.UndecayedFastPathNoBiasCorrection: {"bias_correction": "second", "residual": "unexplained"},
    mutants.Float64PathNoBiasCorrection: {"bias_correction": "second"},  # the probes are float64
    # float32 internals blur every float64 probe; the float32 probes name the difference.
    mutants.Float32InsideEpsBeforeBiasCorrection: {"eps": "before_bias_correction"},
}


def _differences(target: Target) -> dict[str, str]:
    return {f.point: f.found for f in diagnose.diagnose(target) if f.differs}


@pytest.mark.parametrize("mutant", list(PLANTED), ids=lambda m: m.__name__)
def test_diagnose_names_the_planted_difference(mutant):
    assert _differences(target_of(mutant, "quick")) == PLANTED[mutant]


@pytest.mark.parametrize("mutant", [m for m in mutants.MUTANTS if m not in PLANTED], ids=lambda m: m.__name__)
def test_diagnose_names_no_known_variant_where_none_was_planted(mutant):
    """A bug that is none of the points (a swapped beta, a dropped tail) is at most 'unexplained'."""
    assert set(_differences(target_of(mutant, "quick"))) <= {"residual"}


@pytest.mark.parametrize("cls", mutants.CORRECT, ids=lambda m: m.__name__)
def test_correct_variants_are_diagnosed_as_torch(cls):
    expected = {"state_precision": "float32"} if cls is mutants.Float32StateForLowPrecision else {}
    assert _differences(target_of(cls, "quick")) == expected


@pytest.mark.parametrize("name", ["eager", "foreach-adamw", "triton", "torch-fused-adamw"])
def test_builtins_are_diagnosed_as_torch(name):
    impl = resolve(name)
    target = Target(impl, impl.spec)
    findings = diagnose.diagnose(target)
    assert not [f for f in findings if f.differs]
    assert all(f.found is not None for f in findings if f.probed)
    assert "at every point probed" in diagnose.verdict(target, findings)


def test_every_point_and_choice_has_a_meaning():
    for point, choices in POINTS.items():
        assert set(choices) == set(diagnose.CONVENTIONS[point]), point
        assert getattr(Spec("x"), point) == choices[0] == getattr(ADAM, point)
    assert ADAMW.weight_decay == "decoupled"


def test_the_seed_notebooks_adam_is_adam_with_coupled_l2_decay():
    impl = resolve("tests.notebook_adam:Adam")
    adam = diagnose.diagnose(Target(impl, "adam"))
    found = {f.point: f.found for f in adam}
    assert found["weight_decay"] == "coupled"
    assert found["amsgrad"] == "ignored"  # the notebook says so: "I have removed this option"
    assert diagnose.verdict(Target(impl, "adam"), adam).startswith(
        "tests.notebook_adam:Adam implements Adam with coupled L2 weight decay")
    # The notebook calls it AdamW; held to AdamW, diagnose says why it is not.
    adamw = Target(impl, "adamw")
    lines = diagnose.mismatch_lines(adamw, diagnose.diagnose(adamw))
    assert lines[0].startswith("weight decay is coupled L2")
    assert "--spec adamw needs decoupled, scaled by lr" in lines[0]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance", "diagnose", *args],
                          capture_output=True, text=True, timeout=300)


def test_the_command_prints_findings_and_writes_json(tmp_path):
    result = _cli("tests.notebook_adam:Adam", "--json", str(tmp_path / "d.json"))
    assert result.returncode == 0, result.stderr
    assert "weight_decay     coupled" in result.stdout and "<- differs from torch" in result.stdout
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["spec"] == "adam" and doc["verdict"] in result.stdout
    assert {f["point"] for f in doc["findings"]} == set(POINTS) | {"state_precision", "gradients", "residual"}


@pytest.mark.parametrize("args, message", [
    (["egar"], "did you mean eager"),
    (["eager", "--without", "nope"], "unknown feature 'nope'"),
    (["eager", "--json", "/no/such/dir/d.json"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = _cli(*args)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr


OUTSIDERS = """
import torch


class NoState:
    \"\"\"An optimizer object with no .state attribute (it wraps torch's).\"\"\"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self._inner = torch.optim.Adam(params, lr=lr, betas=betas, eps=eps)
        self.param_groups = self._inner.param_groups

    def step(self, closure=None):
        return self._inner.step(closure)

    def zero_grad(self, set_to_none=True):
        self._inner.zero_grad(set_to_none)

    def state_dict(self):
        return self._inner.state_dict()

    def load_state_dict(self, state_dict):
        self._inner.load_state_dict(state_dict)


class SGDMomentum(torch.optim.Optimizer):
    \"\"\"Not Adam at all: SGD with momentum behind Adam's signature.\"\"\"

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
                    p.add_(buf.mul_(group["betas"][0]).add_(p.grad), alpha=-group["lr"])


class SetsGradsToNone(torch.optim.Adam):
    \"\"\"Adam that frees the gradients after stepping.\"\"\"

    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None
        return loss
"""


@pytest.fixture
def outsiders(user_module):
    return user_module("outsiders", OUTSIDERS)


def test_an_optimizer_without_state_is_diagnosed_without_a_traceback(outsiders):
    impl = resolve("outsiders:NoState")
    findings = {f.point: f for f in diagnose.diagnose(Target(impl, "adam"))}
    assert findings["state_precision"].found is None and "no .state" in findings["state_precision"].detail
    assert findings["eps"].found == "after_bias_correction"


def test_a_target_that_is_not_adam_matches_no_known_variant(outsiders):
    target = Target(resolve("outsiders:SGDMomentum"), "adam")
    assert "matches no known Adam variant" in diagnose.verdict(target, diagnose.diagnose(target))


def test_gradients_set_to_none_are_told_apart_from_gradients_written_in_place(outsiders):
    target = Target(resolve("outsiders:SetsGradsToNone"), "adam")
    assert _differences(target) == {"gradients": "set_to_none"}
