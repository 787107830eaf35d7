"""`adam-conformance certify` end to end: verdicts, reports, reproducers, hostile targets, bad input.

Each test but the last three runs the real command in a subprocess, from a fresh working
directory that holds the target's module, at the quick profile (the planted bug twice: in a run of three
targets, and recorded). Bad input, a certify of two checks, and -n 0 on a
target that ends its process run the command line's `main` in this process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance import resolve
from conformance.checks import CATALOGUE, CheckFailure, run_check
from conformance.front.certify import CheckResult
from conformance.report import certificate, records, reproducer
from conformance.run.target import Target
from conformance.vocabulary import PROFILES

HERE = Path(__file__).resolve().parent
SCHEMA = json.loads(certificate.SCHEMA_PATH.read_text())
# What runs on a plain CPU target: the CUDA-only and the sharded checks are skipped, with their reason.
ON_CPU = [check_id for check_id, chk in CATALOGUE.items() if chk.device != "cuda" and not chk.sharded]

# Every test but the last three runs the command line (e2e); those whose targets are planted bugs or
# hostile targets are the zoo's too.

PLANTED = '''
import torch


class NoBiasCorrectionAdam(torch.optim.Optimizer):
    """Adam that forgets to bias-correct the first moment."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad + group["weight_decay"] * p
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p)
                    st["exp_avg_sq"] = torch.zeros_like(p)
                st["step"] += 1
                t = st["step"].item()
                st["exp_avg"].mul_(b1).add_(g, alpha=1 - b1)
                st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
                denom = (st["exp_avg_sq"] / (1 - b2**t)).sqrt().add_(group["eps"])
                p.addcdiv_(st["exp_avg"], denom, value=-group["lr"])
        return loss
'''


FIELD = '''
import functools

import torch

from impls.eager import EagerAdam

ForeachAdam = functools.partial(torch.optim.Adam, foreach=True)
ForeachAdamW = functools.partial(torch.optim.AdamW, foreach=True)
FusedAdam = functools.partial(torch.optim.Adam, fused=True)


class Unvalidated(EagerAdam):
    """eager's arithmetic, without validating its arguments."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        torch.optim.Optimizer.__init__(self, params, dict(
            lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay))
'''


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "planted.py").write_text(PLANTED)
    (tmp_path / "field.py").write_text(FIELD)
    shutil.copy(HERE / "hostile_targets.py", tmp_path / "hostile_targets.py")
    (tmp_path / ".tmp").mkdir()  # the runs' TMPDIR: reproducers certify keeps stay with the test
    return tmp_path


def certify(workdir: Path, *args: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance", "certify", *args, "--profile", "quick"],
                          cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env={**_env(), "HOSTILE_MARKERS": str(workdir), "TMPDIR": str(workdir / ".tmp"), **env})


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def _report(path: Path) -> dict:
    import jsonschema

    doc = json.loads(path.read_text())
    jsonschema.validate(doc, SCHEMA)
    return doc


def _statuses(doc: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in doc["checks"]}


@pytest.mark.e2e
def test_a_conformant_target_exits_0_and_touches_nothing_but_its_reports(workdir, tmp_path_factory):
    before, temp = set(workdir.iterdir()), tmp_path_factory.mktemp("TMPDIR")
    result = certify(workdir, "eager", "--json", "report.json", "--junit", "junit.xml", TMPDIR=str(temp))
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(workdir.iterdir()) - before == {workdir / "report.json", workdir / "junit.xml"}
    assert not list(temp.glob("adam-conformance-*"))  # its scratch removed, no folder for reproducers there are none of
    out = result.stdout
    assert "target eager" in out and "spec adam" in out and "profile quick" in out and "seed 0" in out
    assert f"[{len(CATALOGUE)}/{len(CATALOGUE)}]" in out and "CONFORMANT: eager behaves like torch.optim.Adam" in out
    doc = _report(workdir / "report.json")
    skipped = {c["id"]: c["reason"] for c in doc["checks"] if c["id"] not in ON_CPU}  # skipped, saying why
    assert {skipped[c] for c in skipped if c.startswith("cuda.")} == {"CUDA only: certify with --device cuda"}
    assert {skipped[c].split(":")[0] for c in skipped if c.startswith("sharded.")} == {"not a distributed target"}
    assert doc["verdict"] == "conformant" and {_statuses(doc)[c] for c in skipped} == {"skipped"}
    assert {_statuses(doc)[c] for c in ON_CPU} == {"passed"}
    assert doc["diagnosis"] is None and "diagnos" not in out
    assert doc["summary"] == {"passed": len(ON_CPU), "failed": 0, "skipped": len(skipped), "error": 0}
    trajectory = next(c for c in doc["checks"] if c["id"] == "parity.trajectory")
    assert trajectory["parity"]["budget"] > 0 and trajectory["parity"]["torch_error"] is not None
    cases = ET.parse(workdir / "junit.xml").getroot().iter("testcase")
    assert len(list(cases)) == len(CATALOGUE)


@pytest.mark.e2e
@pytest.mark.zoo
@pytest.mark.parametrize("name, expected", [
    ("NaNEverywhere", "OVER BUDGET"),
])
def test_a_broken_target_fails_with_what_happened(workdir, name, expected):
    result = certify(workdir, f"hostile_targets:{name}", "--json", "report.json")
    assert result.returncode == 1
    doc = _report(workdir / "report.json")
    assert doc["summary"]["error"] == 0 and doc["summary"]["failed"] > 0
    assert any(expected in c["reason"] for c in doc["checks"] if c["status"] == "failed")
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.e2e
@pytest.mark.zoo
def test_a_hanging_target_times_out_check_by_check_and_the_run_finishes(workdir):
    result = certify(workdir, "hostile_targets:Hangs", "--json", "report.json", "--check-timeout", "1")
    assert result.returncode == 1
    doc = _report(workdir / "report.json")
    errors = {c["id"]: c["reason"] for c in doc["checks"] if c["status"] == "error"}
    assert "invariant.amsgrad-monotone" in errors and all("timed out" in r for r in errors.values())
    assert len(doc["checks"]) == len(CATALOGUE)
    assert doc["diagnosis"] is None and "diagnosing" not in result.stdout  # errors alone: nothing to diagnose


@pytest.mark.e2e
@pytest.mark.zoo
def test_a_target_stuck_in_native_code_loses_its_worker_and_the_run_goes_on(workdir):
    result = certify(workdir, "hostile_targets:HangsInNativeCode", "--json", "report.json", "--check-timeout", "3")
    doc = _report(workdir / "report.json")
    errors = [c for c in doc["checks"] if c["status"] == "error"]
    assert len(errors) == 1 and "crashed" in errors[0]["reason"], errors
    assert doc["summary"]["passed"] == len(ON_CPU) - 1 and result.returncode == 1


@pytest.mark.e2e
@pytest.mark.zoo
def test_a_crashing_target_errors_one_check_and_the_run_goes_on(workdir):
    result = certify(workdir, "hostile_targets:CrashesTheWorker", "--json", "report.json")
    doc = _report(workdir / "report.json")
    errors = [c for c in doc["checks"] if c["status"] == "error"]
    assert len(errors) == 1 and "crashed" in errors[0]["reason"]
    assert doc["summary"]["passed"] == len(ON_CPU) - 1 and result.returncode == 1


@pytest.mark.e2e
@pytest.mark.zoo
def test_a_target_that_changes_global_state_fails_that_check_only(workdir):
    """...and its standalone reproducer sees the change too: it still fails, saying what changed."""
    result = certify(workdir, "hostile_targets:ChangesGlobalState", "--json", "report.json", "--repro-dir", "repro")
    assert result.returncode == 1
    statuses = _statuses(_report(workdir / "report.json"))
    assert statuses.pop("contract.global-state") == "failed"
    assert {statuses[check_id] for check_id in ON_CPU if check_id in statuses} == {"passed"}
    run = subprocess.run([sys.executable, "repro/contract.global-state.py"], cwd=workdir, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 1 and "the target still FAILS" in run.stdout, run.stdout[-2000:] + run.stderr
    assert "changed the default dtype (torch.float32 -> torch.float64)" in run.stdout


@pytest.mark.zoo
def test_a_global_state_failure_under_a_float64_default_is_reproduced_under_it(tmp_path):
    """A target that resets the default dtype to a hard-coded float32 changes it only where the
    program set float64: its reproducer sets float64 as the default too, and still fails."""
    name = "tests.redteam.single.rt_default_dtype:TARGET"
    impl = resolve(name)
    target = Target(impl, impl.spec, "cpu", PROFILES["quick"])
    with pytest.raises(CheckFailure) as caught:
        run_check(CATALOGUE["contract.global-state"], target, explain=False)
    failure = json.loads(records.failure_record(caught.value))
    path = reproducer.write(tmp_path, name, target, CheckResult("contract.global-state", "failed", failure=failure))
    run = subprocess.run([sys.executable, str(path)], cwd=HERE.parent, capture_output=True, text=True, timeout=300,
                         env={**_env(), "PYTHONPATH": str(HERE.parent)})
    assert run.returncode == 1 and "the target still FAILS" in run.stdout, run.stdout[-2000:] + run.stderr
    assert "default dtype: float64" in run.stdout and "(torch.float64 -> torch.float32)" in run.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("name, spec", [("field:ForeachAdam", "adam"), ("field:ForeachAdamW", "adamw")])
def test_torchs_foreach_adam_is_certified_with_one_note_about_tensor_lr(workdir, name, spec):
    result = certify(workdir, name, "--json", "report.json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    doc = _report(workdir / "report.json")
    assert doc["target"]["spec"] == spec and doc["summary"]["failed"] == 0
    notes = [line for line in doc["header"] if line.startswith("preflight:")]
    assert len(notes) == 1 and "tensor_lr dropped" in notes[0] and "--without tensor_lr" in notes[0]
    assert [n["feature"] for n in doc["preflight"]["dropped"]] == ["tensor_lr"] and notes[0] in result.stdout


@pytest.mark.e2e
def test_torchs_fused_cpu_adam_is_told_to_need_a_gradient_strided_unlike_its_parameter(workdir):
    result = certify(workdir, "field:FusedAdam", "--json", "report.json")
    assert result.returncode == 1
    doc = _report(workdir / "report.json")
    need = "a gradient whose strides differ from its parameter's"
    trajectory = next(c for c in doc["checks"] if c["id"] == "parity.trajectory")
    assert need in trajectory["failure"]["necessary"] and trajectory["failure"]["severity"] == "parameters"
    assert doc["headline"]["check"] == "parity.trajectory"
    assert f"needs: {need}" in result.stdout and f"every failure above needs {need}" in result.stdout
    assert "complex dropped from the claims" in result.stdout  # fused kernels take no complex parameters


@pytest.mark.e2e
def test_skip_certifies_everything_but_the_checks_named(workdir):
    result = certify(workdir, "field:Unvalidated", "--skip", "contract.invalid-hyperparameters",
                     "--json", "report.json")
    assert result.returncode == 0, result.stdout[-3000:]
    doc = _report(workdir / "report.json")
    assert doc["skipped_on_request"] == ["contract.invalid-hyperparameters"]
    assert _statuses(doc)["contract.invalid-hyperparameters"] == "skipped"
    assert "skipped on request: contract.invalid-hyperparameters" in doc["header"]
    assert result.stdout.rstrip().splitlines()[-2].startswith(
        "CONFORMANT except skipped: contract.invalid-hyperparameters: field:Unvalidated behaves like")


@pytest.mark.e2e
@pytest.mark.zoo
def test_several_targets_in_one_run_and_a_planted_bugs_reproducers_and_plugin(workdir):
    """The planted bug's one certify run: eager, the planted bug and a target unusable only once it
    runs, one after another (two at a time: the next test). A report and a reproducer folder each,
    a summary in the order given, the worst exit code; the planted bug's verdict, diagnosis and
    standalone reproducers; then the pytest plugin on it passes and fails the same checks."""
    result = certify(workdir, "eager", "planted:NoBiasCorrectionAdam", "hostile_targets:RaisesInStep",
                     "--without", "complex", "--json", "reports", "--repro-dir", "repro")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "raised in step() with torch's defaults" in result.stderr and "Traceback" not in result.stderr
    assert _report(workdir / "reports" / "eager.json")["verdict"] == "conformant"
    assert sorted(p.name for p in (workdir / "reports").iterdir()) == ["eager.json",
                                                                        "planted-NoBiasCorrectionAdam.json"]
    summary = result.stdout[result.stdout.index("certified 3 targets in"):].splitlines()
    assert [line.split()[0] for line in summary[1:]] == ["eager", "planted:NoBiasCorrectionAdam",
                                                         "hostile_targets:RaisesInStep"]
    assert [line.split(None, 1)[1] for line in summary[1:]] == ["CONFORMANT", "NOT CONFORMANT", "unusable (exit 2)"]

    doc = _report(workdir / "reports" / "planted-NoBiasCorrectionAdam.json")
    failed = [c for c in doc["checks"] if c["status"] == "failed"]
    assert doc["verdict"] == "not conformant"
    assert {"parity.trajectory", "invariant.first-step"} <= {c["id"] for c in failed}
    assert "minimal case" in result.stdout
    # It names what was built instead: the first moment is not bias-corrected.
    assert doc["diagnosis"]["mismatches"] == [
        "bias correction is the second moment only, but --spec adam needs both moments (the Adam paper, PyTorch)"]
    assert doc["diagnosis"]["verdict"] in result.stdout
    skipped = {c["id"]: c["reason"] for c in doc["checks"] if c["status"] == "skipped"}
    assert skipped["invariant.maximize"] == "not claimed: maximize"
    for check in failed:
        script = Path(check["failure"]["reproducer"])
        assert script.parent == workdir / "repro" / "planted-NoBiasCorrectionAdam" and script.exists()
        # As `python repro/X.py` from the working directory runs it (the script's folder first on
        # sys.path, not the directory planted.py is in), without the suite: `conformance` cannot be imported.
        run = subprocess.run([sys.executable, "-c", "import sys, runpy; sys.modules['conformance'] = None; "
                              f"sys.path[0] = {str(script.parent)!r}; sys.argv = [{str(script)!r}]; "
                              f"runpy.run_path({str(script)!r}, run_name='__main__')"],
                             cwd=workdir, capture_output=True, text=True, timeout=300)
        assert run.returncode == 1, f"{script.name}:\n{run.stdout}\n{run.stderr}"
        assert "the target still FAILS" in run.stdout or "torch raises" in run.stdout

    plugin = subprocess.run(
        [sys.executable, "-m", "pytest", "--adam-impl", "planted:NoBiasCorrectionAdam", "--adam-profile", "quick",
         "--adam-without", "complex", "--adam-database", "none", "-p", "no:cacheprovider", "--junitxml", "plugin.xml",
         "-n", "2"], cwd=workdir, capture_output=True, text=True, timeout=600, env=_env())
    assert plugin.returncode == 1, plugin.stdout[-3000:]
    assert "adam-conformance: preflight" in plugin.stdout  # run once, by the controller, for both workers
    statuses = {}
    for case in ET.parse(workdir / "plugin.xml").getroot().iter("testcase"):
        check = case.get("name").removeprefix("test_check[").removesuffix("]")
        statuses[check] = "failed" if case.find("failure") is not None else (
            "skipped" if case.find("skipped") is not None else "error" if case.find("error") is not None else "passed")
    assert statuses == _statuses(doc)


@pytest.mark.e2e
@pytest.mark.zoo
def test_a_recorded_target_is_certified_and_reported_but_its_verdict_is_not_the_exit_code(workdir):
    """tox's use, two targets at a time: the built-ins must pass, torch's own paths are measured
    (`--record`); the summary keeps the order given."""
    result = certify(workdir, "eager", "--record", "planted:NoBiasCorrectionAdam", "--json", "reports", "--jobs", "2",
                     "-n", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "certifying 2 targets, 2 at a time" in result.stdout
    assert _report(workdir / "reports" / "eager.json")["verdict"] == "conformant"
    assert _report(workdir / "reports" / "planted-NoBiasCorrectionAdam.json")["verdict"] == "not conformant"
    summary = result.stdout[result.stdout.index("certified 2 targets in"):].splitlines()
    assert summary[1].split() == ["eager", "CONFORMANT"]
    assert summary[2].split() == ["planted:NoBiasCorrectionAdam", "NOT", "CONFORMANT", "(recorded:", "not", "in",
                                  "the", "exit", "code)"]

BAD_INPUT = {
    "several targets, one unknown": (["eager", "egar"], "did you mean eager"),
    "several targets, one twice": (["eager", "foreach", "eager"], "a target is named twice: eager"),
    "several targets, --json a file": (["eager", "foreach", "--json", "planted.py"], "is a file; with several"),
    "report in a missing directory": (["eager", "--json", "no/such/dir/report.json"], "does not exist"),
    "report path is a directory": (["eager", "--junit", "."], "is a directory"),
    "cuda without CUDA": (["eager", "--device", "cuda"], "must not pass by skipping"),
    "unknown --without": (["eager", "--without", "complexx"], "unknown feature 'complexx'"),
    "unknown target": (["egar"], "did you mean eager"),
    "device the target lacks": (["triton", "--device", "cuda"], "cuda"),
    "raises on everything": (["hostile_targets:RaisesInStep"], "raised in step() with torch's defaults: RuntimeError"),
    "factory returns None": (["hostile_targets:ReturnsNothing"], "returned NoneType, which lacks step"),
    "no step()": (["hostile_targets:NoStep"], "lacks step, zero_grad, state_dict, load_state_dict"),
    "unknown --skip": (["eager", "--skip", "contract.closur"], "did you mean contract.closure"),
}


@pytest.mark.parametrize("what", [
    pytest.param(what, marks=pytest.mark.zoo if BAD_INPUT[what][0][0].startswith("hostile_targets:") else ())
    for what in sorted(BAD_INPUT)])
def test_bad_input_exits_2_with_one_line(workdir, what, monkeypatch, capfd):
    """The command line's `main`, in this process (a subprocess would only add torch's import:
    the tests above run the command end to end), from the directory the targets are in; what a
    target's preflight process prints reaches the file descriptors capfd reads too."""
    from conformance.front.cli import main

    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    monkeypatch.setenv("HOSTILE_MARKERS", str(workdir))
    args, message = BAD_INPUT[what]
    code = main(["certify", *args, "--profile", "quick"])
    out, err = capfd.readouterr()
    assert code == 2, out + err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert out == ""


def test_certify_runs_in_this_process_on_the_checks_not_skipped(tmp_path, monkeypatch, capsys):
    """The fast inner loop's certify (the tests above run the command end to end): the command
    line's `main` in this process, its checks here too (-n 0), all but two skipped on request; the
    report is valid and says what ran, passed and was skipped."""
    from conformance.front.cli import main

    monkeypatch.chdir(tmp_path)
    kept = ["contract.closure", "parity.golden"]
    skipped = [check_id for check_id in CATALOGUE if check_id not in kept]
    code = main(["certify", "eager", "--profile", "quick", "-n", "0", "--json", "report.json",
                 *(arg for check_id in skipped for arg in ("--skip", check_id))])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    doc = _report(tmp_path / "report.json")
    assert doc["skipped_on_request"] == skipped and [_statuses(doc)[c] for c in kept] == ["passed", "passed"]
    assert doc["summary"] == {"passed": 2, "failed": 0, "skipped": len(skipped), "error": 0}
    assert "CONFORMANT except skipped:" in out and "eager behaves like torch.optim.Adam" in out


def test_n_0_is_not_taken_for_a_target_that_ends_its_process(tmp_path, monkeypatch, capsys):
    """-n 0 runs the checks in certify's process, where `os._exit(0)` would end certify with exit 0
    and no verdict; a target whose preflight process died gets a worker instead, and is not conformant."""
    from conformance.front.cli import main

    (tmp_path / "exits.py").write_text("import os, torch\n\n\nclass ExitsZero(torch.optim.Adam):\n"
                                       "    def step(self, closure=None):\n        os._exit(0)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    kept = ["contract.closure", "parity.golden"]
    code = main(["certify", "exits:ExitsZero", "--profile", "quick", "-n", "0",
                 *(arg for check_id in CATALOGUE if check_id not in kept for arg in ("--skip", check_id))])
    out = capsys.readouterr().out
    assert code == 1, out[-3000:]
    assert "-n 0 not taken" in out and "crashed while running this check (exit code 0)" in out
