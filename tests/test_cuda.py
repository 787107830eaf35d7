"""The GPU gate. Everywhere: every CUDA-only check skips with its reason, a CUDA mutant
passes on the CPU (its bug shows only on a GPU), a Case built for capture can be replayed,
and ``--device cuda`` without a usable GPU stops the CLI and the plugin with one line
(a CPU-only torch, no driver, no device). With CUDA: the Triton kernel run natively
matches its interpreted run and the oracle, and the report names the GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import resolve
from conformance.cases.trace import Trace
from conformance.checks import CATALOGUE, cuda, run_check
from conformance.report import environment
from conformance.run import runner, torch_features
from conformance.run.target import Target
from conformance.truth import budget, golden
from conformance.truth.budget import INVARIANT_TOLERANCE
from conformance.vocabulary import PROFILES
from tests import cuda_mutants
from tests.test_kill_matrix import ON_CUDA

ROOT = Path(__file__).resolve().parent.parent
CUDA_CHECKS = sorted(check_id for check_id, chk in CATALOGUE.items() if chk.device == "cuda")


def test_there_are_cuda_checks_and_each_skips_on_the_cpu_saying_why():
    assert CUDA_CHECKS == ["cuda.graph-replay", "cuda.no-allocation", "cuda.no-host-sync"]
    target = Target(resolve("torch-fused"), "adam", "cpu", PROFILES["quick"])
    for check_id in CUDA_CHECKS:
        assert CATALOGUE[check_id].unmet(target) == "CUDA only: certify with --device cuda"


def test_torch_declares_what_its_cuda_paths_promise():
    assert "capturable" in resolve("torch-capturable").claims and resolve("torch-capturable").devices == ("cuda",)
    assert "allocation_free" in resolve("torch-fused-adamw").claims
    assert not {"capturable", "allocation_free"} & resolve("torch").claims  # declared, never assumed


@pytest.mark.zoo
@pytest.mark.parametrize("cls", cuda_mutants.MUTANTS + cuda_mutants.CORRECT, ids=lambda c: c.__name__)
def test_a_cuda_mutant_passes_parity_on_the_cpu(cls):
    """Its bug is on the device or in capture, which the CPU cannot show: the CUDA zoo is needed."""
    target = Target(cuda_mutants.implementation(cls), "adam", "cpu", PROFILES["quick"])
    if "cpu" not in target.impl.devices:
        pytest.skip(f"{cls.__name__} runs on {target.impl.devices} here")
    evidence = run_check(CATALOGUE["parity.trajectory"], target, explain=False)  # raises CheckFailure if not
    assert evidence.examples > 0 and evidence.parity.passed


@pytest.mark.parametrize("name", ["torch-capturable", "torch-foreach"])  # with a tensor lr and without
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_a_static_case_can_be_captured_and_replayed(name, data):
    target = Target(resolve(name), "adam", "cuda", PROFILES["quick"])
    case = cuda.static_case(target, data)
    assert len(case.steps) >= 3
    assert all(g.tensor_lr == ("tensor_lr" in target.claims) and g.added_at == 1 for g in case.groups)
    assert all(not s.events and not s.closure and all(g is not None for g in s.grads) for s in case.steps)
    assert any(key == "lr" for s in case.steps[2:] for _, key, _ in s.set), "no lr changed between replays"


@pytest.mark.parametrize("build, cuda_version, init_error, devices, says", [
    ("2.13.0+cpu", None, None, 0, "is a CPU-only build"),
    ("2.14.1", "12.8", "Found no NVIDIA driver on your system.\nPlease check", 0, "Found no NVIDIA driver"),
    ("2.14.1", "12.8", None, 0, "sees no CUDA device"),
])
def test_cuda_unusable_says_why_in_one_line(monkeypatch, build, cuda_version, init_error, devices, says):
    def init():
        if init_error:
            raise RuntimeError(init_error)

    monkeypatch.setattr(torch, "__version__", build)
    monkeypatch.setattr(torch.version, "cuda", cuda_version)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "init", init)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)
    problem = torch_features.cuda_unusable()
    assert says in problem and "\n" not in problem and build in problem


@pytest.mark.e2e
@pytest.mark.skipif(torch_features.cuda_unusable() is None, reason="a usable GPU is here")
@pytest.mark.parametrize("command", [
    ["-m", "conformance", "certify", "eager", "--device", "cuda", "--profile", "quick"],
    ["-m", "pytest", "--adam-impl", "eager", "--adam-device", "cuda", "-p", "no:cacheprovider"],
], ids=["certify", "plugin"])
def test_a_gate_without_a_usable_gpu_fails_with_one_line(tmp_path, command):
    result = subprocess.run([sys.executable, *command], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode in (2, 4), result.stdout + result.stderr  # argparse's and pytest's usage errors
    said = (result.stdout + result.stderr).strip()
    assert said.count("\n") == 0 and "--device cuda: " in said and "must not pass by skipping" in said
    assert "Traceback" not in said and "passed" not in said


def test_the_report_names_the_gpu_the_driver_and_the_versions(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(environment, "_nvidia_driver", lambda: "570.86.15")
    target = Target(resolve("eager"), "adam", "cuda", PROFILES["quick"])
    env = environment.environment(target)
    assert {env["gpu"], env["cuda"], env["driver"], env["torch"]} == {
        "NVIDIA H100 80GB HBM3", "12.8", "570.86.15", torch.__version__}
    try:
        import triton
    except ImportError:
        triton = None
    assert env.get("triton") == getattr(triton, "__version__", None)
    header = environment.describe_environment(target, 0)
    assert "device cuda (NVIDIA H100 80GB HBM3, CUDA 12.8, driver 570.86.15)" in "\n".join(header)


# -- with CUDA -------------------------------------------------------------------------


def _triton_scenarios() -> list[str]:
    claims = resolve("triton").claims
    return [name for name, case in ((n, golden.read_scenario(golden.DEFAULT_DIR, n)[1]) for n in golden.scenarios())
            if not case.features() - claims and case.objective is None]


def write_interpreted(directory: str, *names: str) -> None:
    """In a child with TRITON_INTERPRET=1: the Triton kernel's interpreted runs, as Trace files."""
    impl = resolve("triton")
    for name in names:
        case = golden.read_scenario(golden.DEFAULT_DIR, name)[1]
        meta, arrays = runner.run(impl, case, "cpu").to_json()
        np.savez(Path(directory) / f"{name}.npz", **arrays)
        (Path(directory) / f"{name}.json").write_text(json.dumps(meta))


@pytest.mark.e2e
@ON_CUDA
def test_the_triton_kernel_natively_matches_its_interpreted_run_and_the_oracle(tmp_path):
    names = _triton_scenarios()
    code = f"from tests.test_cuda import write_interpreted; write_interpreted({str(tmp_path)!r}, *{names!r})"
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "TRITON_INTERPRET": "1"})
    assert child.returncode == 0, child.stderr
    impl, problems = resolve("triton"), []
    for name in names:
        _, case, truth = golden.read_scenario(golden.DEFAULT_DIR, name)
        with np.load(tmp_path / f"{name}.npz") as arrays:
            interpreted = Trace.from_json(json.loads((tmp_path / f"{name}.json").read_text()), dict(arrays))
        native = runner.run(impl, case, "cuda")
        reference = resolve("torch" if case.spec == "adam" else "torch-adamw")
        for device, trace in (("cuda", native), ("cpu", interpreted)):
            refs = [runner.run(reference, c, device) for c in budget.reference_cases(case)]
            parity = budget.judge(trace, refs, truth, case)
            if trace.error or not parity.passed:
                problems.append(f"{name} on {device}: {trace.error or parity}")
        apart, deviations = budget.distance(native, interpreted, case)
        if deviations or apart > INVARIANT_TOLERANCE * len(case.steps):
            problems.append(f"{name}: native and interpreted runs {apart:.3g} eps apart, {deviations} deviations")
    assert not problems, "\n".join(problems)
