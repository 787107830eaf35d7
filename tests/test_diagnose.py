"""`adam-conformance diagnose`: every planted difference named, no false names, the notebook's loop;
certify's preflight first, "could not probe" said as such, float32 arithmetic and constants named,
and never torch's "at every point probed" of a target certify rejects on parity."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from conformance import diagnose, resolve
from conformance.checks import CATALOGUE, CheckFailure, run_check
from conformance.front import isolation
from conformance.front.flags import Options
from conformance.report import compare
from conformance.report.certificate import VERSION
from conformance.run.target import Target
from conformance.spec import ADAM, ADAMW, POINTS, Spec
from tests import diagnose_mutants, mutants
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
    # float32 internals blur every float64 probe; the float32 probes name the choice, float64 the arithmetic.
    mutants.Float32InsideEpsBeforeBiasCorrection: {"eps": "before_bias_correction", "arithmetic": "float32"},
    # Issue 24's three cases: torchao's float32 inside, betas held in float32, no group dicts (preflight drops them).
    diagnose_mutants.Float32InsideFloat32Corrections: {"arithmetic": "float32"},
    diagnose_mutants.BetasHeldInFloat32: {"arithmetic": "float32_betas", "gradients": "modified"},
    diagnose_mutants.NoParamGroupDicts: {"step_count": "global"},
    # The step counts real packages keep.
    diagnose_mutants.StepCountPerGroupCall: {"step_count": "per_group_call"},
    diagnose_mutants.StepCountOnFirstParam: {"step_count": "first_param"},
    diagnose_mutants.DebiasedBetas: {"step_count": "debiased"},
}
#: What diagnose calls a target that is torch's at every point.
CLEAN = "at every point probed"


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
    assert CLEAN in diagnose.verdict(target, findings)


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


# -- issue 24: never contradict certify ----------------------------------------------------


def _examined(cls, certified=None) -> diagnose.Diagnosis:
    """The whole diagnosis of a zoo class, as the command runs it (its preflight included)."""
    return diagnose.examine(target_of(cls, "quick"), certified)


def test_float32_arithmetic_inside_is_named_with_its_size():
    """torchao's AdamW was 'torch.optim.AdamW at every point probed': its float32 probes were within reach."""
    said = _examined(diagnose_mutants.Float32InsideFloat32Corrections).verdict()
    assert "implements Adam with coupled L2 weight decay with float32 arithmetic inside" in said
    assert "float64 eps from the variant found" in said and "float32 eps of it" in said and CLEAN not in said


def test_a_constant_held_in_float32_is_named():
    """A package's betas as float32 tensors: 1e-9 relative in float64, no longer a residue that disappears."""
    found = {f.point: f for f in _examined(diagnose_mutants.BetasHeldInFloat32).findings}
    assert found["arithmetic"].found == "float32_betas" and found["gradients"].found == "modified"
    assert found["residual"].found == "none"  # with the betas rounded, the oracle explains every probe


def test_a_target_without_group_dicts_is_probed_with_what_it_accepts():
    """certify's preflight drops param_groups; the step-count probe then takes one group."""
    diagnosis = diagnose.examine(Target(resolve("tests.diagnose_mutants:NoParamGroupDicts"), "adam"))
    found = {f.point: f for f in diagnosis.findings}
    assert "param_groups" not in diagnosis.target.claims and not any(f.error for f in diagnosis.findings)
    assert found["step_count"].found == "global" and found["missing_grad"].found == "skipped"
    assert "; without param_groups (two param groups given as dicts raised AttributeError: 'dict' object has no " \
           "attribute 'device'): refused by the target" in diagnosis.verdict()


@pytest.mark.parametrize("mutant", diagnose_mutants.MUTANTS, ids=lambda m: m.__name__)
def test_issue_24s_mutants_fail_parity_and_are_never_called_torch(mutant):
    diagnosis = _examined(mutant)
    assert diagnosis.findings[-1].point == "parity" and diagnosis.findings[-1].found == "fails"
    assert CLEAN not in diagnosis.verdict()


#: The zoo takes two minutes and more on two cores, a second or three a mutant: the fast inner loop
#: (``-m "not slow"``) keeps one mutant diagnosed as torch's and one a layout bug outside every point.
FAST = {mutants.ClosureLossNotReturned, mutants.NonContiguousParamNotUpdated}


def _zoo():
    return [pytest.param(m, id=m.__name__, marks=[] if m in FAST else [pytest.mark.slow])
            for m in mutants.MUTANTS + diagnose_mutants.MUTANTS]


@pytest.mark.zoo
@pytest.mark.parametrize("mutant", _zoo())
def test_no_target_certify_rejects_on_parity_is_called_torch_at_every_point(mutant):
    """Over the whole zoo: a diagnosis that says torch's at every point is of a target every
    parity check of the kill matrix passes (run here only then: the others say otherwise)."""
    target = target_of(mutant, "quick")
    said = diagnose.examine(target).verdict()
    if CLEAN not in said:
        return
    for check_id in [c for c in CATALOGUE if c.startswith("parity.")]:
        if CATALOGUE[check_id].unmet(target) is None:
            try:
                run_check(CATALOGUE[check_id], target, explain=False)
            except CheckFailure as failure:
                pytest.fail(f"{said}\nbut {check_id} kills it: {str(failure).splitlines()[0]}")


def _report(path, name: str, failed: dict[str, list[str] | None], spec: str = "adam") -> dict:
    """A certify report of `name`, written to `path`, whose checks in `failed` failed, each
    needing what it maps to; the first is the headline."""
    checks = [dict(id=c, status="failed", failure=dict(message=f"{c}: OVER BUDGET (planted)", necessary=needs,
                                                       severity="parameters" if c.startswith("parity.") else "api"))
              for c, needs in failed.items()]
    head = [dict(check=c["id"], severity=c["failure"]["severity"], message=c["failure"]["message"]) for c in checks]
    doc = dict(schema="adam-conformance-report", version=VERSION, environment={}, target=dict(name=name, spec=spec),
               checks=checks,
               headline=head[0] if head else None)
    path.write_text(json.dumps(doc))
    return doc


def _read(path, target):
    """certify's report at `path`, read as `diagnose --report` reads it."""
    return diagnose.from_report(compare.load(str(path)), target, str(path))


def test_a_report_that_failed_parity_is_quoted_where_no_point_explains_it(tmp_path):
    target = target_of(mutants.NonContiguousParamNotUpdated, "quick")
    _report(tmp_path / "r.json", target.impl.name, {"parity.trajectory": ["a non-contiguous parameter"]})
    said = diagnose.examine(target, _read(tmp_path / "r.json", target)).verdict()
    assert "differs from torch.optim.Adam in a way none of these points describes: certify's report: most severe: " \
           "parity.trajectory, wrong parameters: parity.trajectory: OVER BUDGET (planted); needs: a non-contiguous " \
           "parameter (outside these points: certify's explanation" in said


def test_a_report_whose_failures_are_not_parity_leaves_torchs_arithmetic_torchs(tmp_path):
    target = target_of(mutants.ClosureLossNotReturned, "quick")
    _report(tmp_path / "r.json", target.impl.name, {"contract.closure": None})
    diagnosis = diagnose.examine(target, _read(tmp_path / "r.json", target))
    parity = diagnosis.findings[-1]
    assert parity.found == "holds" and "its failures lie elsewhere: most severe: contract.closure" in parity.detail
    assert CLEAN in diagnosis.verdict()


@pytest.mark.e2e
def test_certify_hands_its_report_to_the_diagnosis(tmp_path):
    """certify's run so far goes to the diagnosis it forks (--report), which quotes it."""
    name = "tests.mutants:Textbook"  # torch's arithmetic at every point: only the report says otherwise
    report, out = _report(tmp_path / "r.json", name, {"parity.golden": []}), io.StringIO()
    doc = isolation.diagnosis(Options(name), Target(resolve(name), "adam"), 60.0, out, report)
    assert doc is not None, out.getvalue()
    assert "none of these points describes: certify's report: most severe: parity.golden" in doc["verdict"]
    assert "needs: nothing in particular" in doc["verdict"] and doc["mismatches"] == []


def test_a_probe_that_raises_is_could_not_probe_never_far(outsiders):
    diagnosis = diagnose.examine(Target(resolve("outsiders:AmsgradRaises"), "adam"))
    found = {f.point: f for f in diagnosis.findings}
    assert found["amsgrad"].detail.startswith("could not probe in float64: step 1: RuntimeError: amsgrad")
    assert not found["amsgrad"].probed and found["residual"].found == "none"
    said = diagnosis.verdict()
    assert "could not probe amsgrad, gradients: step 1: RuntimeError" in said and "far" not in said


def test_a_target_no_probe_can_drive_says_so(outsiders):
    said = diagnose.examine(Target(resolve("outsiders:StopsAtStep3"), "adam")).verdict()
    assert said.startswith("outsiders:StopsAtStep3 could not be diagnosed: no point could be probed; could not "
                           "probe weight_decay, eps,") and "matches no known" not in said


# -- the command -------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance", "diagnose", *args],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.e2e
def test_the_command_prints_findings_and_writes_json(tmp_path):
    result = _cli("tests.notebook_adam:Adam", "--json", str(tmp_path / "d.json"))
    assert result.returncode == 0, result.stderr
    assert "weight_decay     coupled" in result.stdout and "<- differs from torch" in result.stdout
    assert "\n  preflight " in result.stdout  # certify's preflight ran first
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["spec"] == "adam" and doc["verdict"] in result.stdout
    assert {f["point"] for f in doc["findings"]} == set(POINTS) | {"arithmetic", "state_precision", "gradients",
                                                                   "residual", "parity"}


@pytest.mark.e2e
@pytest.mark.parametrize("args, message", [
    (["egar"], "did you mean eager"),
    (["eager", "--without", "nope"], "unknown feature 'nope'"),
    (["eager", "--json", "/no/such/dir/d.json"], "does not exist"),
    (["eager", "--report", "/no/such/r.json"], "--report /no/such/r.json: cannot read it (No such file or directory)"),
    (["eager", "--report", "TMP/bad.json"], "bad.json: not JSON"),
    (["eager", "--report", "TMP/list.json"], "list.json: not an adam-conformance report"),
    (["eager", "--report", "TMP/foreach.json"], "is certify's report of foreach, not of eager"),
    (["eager", "--spec", "adamw", "--report", "TMP/eager.json"], "holds eager to --spec adam: diagnose it with"),
])
def test_bad_input_exits_2_with_one_line(args, message, tmp_path):
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "list.json").write_text("[1, 2]")
    _report(tmp_path / "foreach.json", "foreach", {})
    _report(tmp_path / "eager.json", "eager", {})
    result = _cli(*[a.replace("TMP", str(tmp_path)) for a in args])
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


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


class AmsgradRaises(torch.optim.Adam):
    \"\"\"Adam whose AMSGrad path raises in step() (its constructor takes amsgrad=True).\"\"\"

    def step(self, closure=None):
        if any(g["amsgrad"] for g in self.param_groups):
            raise RuntimeError("amsgrad is not implemented on this path")
        return super().step(closure)


class StopsAtStep3(torch.optim.Adam):
    \"\"\"Adam that raises from its third step on: every probe takes six.\"\"\"

    def step(self, closure=None):
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls >= 3:
            raise RuntimeError("out of memory (simulated)")
        return super().step(closure)
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
