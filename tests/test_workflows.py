"""The workflows users copy (.github/workflows/) parse with a real YAML parser and have
what each job needs; the GPU gate script they run is valid bash, certifies every
built-in, and fails, never skips, on a machine without a usable GPU."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conformance.run import torch_features
from tests.known import BUILTINS, CUDA_BUILTINS

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
GATE = ROOT / ".ci" / "gpu-gate"


def _workflow(name: str) -> dict:
    doc = yaml.safe_load((WORKFLOWS / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


@pytest.mark.parametrize("name", sorted(p.name for p in WORKFLOWS.glob("*.yml")))
def test_each_workflow_parses_and_each_job_has_what_it_needs(name):
    doc = _workflow(name)
    assert doc["name"] and doc["on"] and doc["jobs"], name
    for job_id, job in doc["jobs"].items():
        assert job.get("runs-on"), f"{name}: job {job_id} says nowhere to run"
        assert job.get("steps"), f"{name}: job {job_id} has no steps"
        for step in job["steps"]:
            assert ("run" in step) != ("uses" in step), f"{name}: {job_id}: a step must run or use: {step}"
            if step.get("uses", "").startswith("actions/upload-artifact"):
                assert step.get("if") == "always()" and step["with"]["path"], f"{name}: publish even on failure"


def test_the_cpu_workflow_is_ci():
    (job,) = _workflow("ci.yml")["jobs"].values()
    assert ".ci/run" in _runs(job) and job["timeout-minutes"] >= 90


def test_the_gpu_workflow_runs_the_gate_on_a_self_hosted_gpu_runner_and_publishes_its_reports():
    (job,) = _workflow("gpu.yml")["jobs"].values()
    assert {"self-hosted", "gpu"} <= set(job["runs-on"])
    runs = _runs(job)
    assert "nvidia-smi" in runs and "torch.utils.collect_env" in runs and ".ci/gpu-gate reports" in runs
    published = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert published and published[0]["with"]["path"] == "reports/"


def test_the_reusable_workflow_certifies_a_package_on_the_cpu_and_on_cuda():
    doc = _workflow("certify.yml")
    inputs = doc["on"]["workflow_call"]["inputs"]
    assert inputs["target"]["required"] and inputs["install"]["required"]
    assert not inputs["gpu-runner"]["required"] and doc["jobs"]["cuda"]["if"] == "inputs.gpu-runner != ''"
    assert "--device cuda" in _runs(doc["jobs"]["cuda"]) and "--device" not in _runs(doc["jobs"]["cpu"])
    for job in doc["jobs"].values():
        assert "--json" in _runs(job) and "--junit" in _runs(job)


def test_the_gate_script_is_bash_and_certifies_every_builtin_and_torchs_gpu_paths_on_cuda():
    assert subprocess.run(["bash", "-n", str(GATE)]).returncode == 0
    text = GATE.read_text()
    gated, measured = (re.search(rf"\n{name}=\(([^)]*)\)", text).group(1).split() for name in ("targets", "measured"))
    assert sorted(gated) == sorted(n for n in BUILTINS if not n.startswith("torch"))
    assert sorted(measured) == sorted({"torch-fused", "torch-fused-adamw"} | set(CUDA_BUILTINS))
    assert 'certify "$1" --device cuda --profile quick' in text


@pytest.mark.e2e
@pytest.mark.skipif(torch_features.cuda_unusable() is None, reason="a usable GPU is here")
@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "adam-conformance").exists(), reason="no .venv: the gate sets one up")
def test_the_gate_fails_without_a_usable_gpu(tmp_path):
    result = subprocess.run([str(GATE), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"gpu-gate: {torch_features.cuda_unusable()}" in result.stderr
    assert not list(tmp_path.glob("*.json"))  # nothing certified


def test_the_releases_workflow_runs_each_tox_environment_then_compares_with_the_committed_reports():
    import configparser

    doc = _workflow("releases.yml")
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    releases = [e.strip() for e in tox["tox"]["env_list"].split(",") if e.strip() != "default"]
    job, drift = doc["jobs"]["release"], doc["jobs"]["drift"]
    assert job["strategy"]["matrix"]["env"] == releases and job["strategy"]["fail-fast"] is False
    assert "tox -e ${{ matrix.env }}" in _runs(job)  # what a user runs, not a copy of tox's commands
    assert next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))["with"]["cache"] == "pip"
    uploaded = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert uploaded["with"]["path"] == "reports/${{ matrix.env }}/"
    assert drift["needs"] == "release" and drift["if"] == "always()"
    assert "--check" in _runs(drift) and "--against artifacts/" in _runs(drift)
