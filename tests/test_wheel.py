"""The installed suite is the tested suite: a wheel built from this repository, installed (not
editable) into a fresh virtual environment and run from an unrelated directory, carries its
golden truth and gives the same certificate as the checkout; tampered truth is an error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: torch from the same place the README's set-up takes it (the local CPU wheel).
TORCH = "torch==2.13.0"

pytestmark = pytest.mark.e2e


def _run(argv, cwd, timeout=900) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin/ directory of a fresh virtual environment with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # build from a copy: the build writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__",
                                                  ".pytest_cache", ".hypothesis"))
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                  "-w", str(work / "dist"), str(source)], work)
    assert built.returncode == 0, built.stderr
    wheel = next((work / "dist").glob("adam_conformance-*.whl"))
    made = _run([sys.executable, "-m", "venv", str(work / "venv")], work)
    assert made.returncode == 0, made.stderr
    bin_dir = work / "venv" / "bin"
    done = _run([str(bin_dir / "pip"), "install", "-q", TORCH, str(wheel)], work, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return bin_dir


def _statuses(path: Path) -> dict:
    doc = json.loads(path.read_text())
    return {c["id"]: (c["status"], c["parity"] and c["parity"]["error"]) for c in doc["checks"]}


def test_the_installed_wheel_certifies_as_the_checkout_does(installed, tmp_path):
    verified = _run([str(installed / "adam-conformance"), "golden", "verify"], tmp_path)
    assert verified.returncode == 0 and "site-packages" in verified.stdout, verified.stdout + verified.stderr
    wheel = _run([str(installed / "adam-conformance"), "certify", "eager", "--profile", "quick",
                  "--json", "wheel.json"], tmp_path)
    checkout = _run([sys.executable, "-m", "conformance", "certify", "eager", "--profile", "quick", "--json",
                     "checkout.json"], tmp_path)
    assert wheel.returncode == checkout.returncode == 0, wheel.stdout[-2000:] + wheel.stderr
    assert _statuses(tmp_path / "wheel.json") == _statuses(tmp_path / "checkout.json")
    assert _statuses(tmp_path / "wheel.json")["parity.golden"][0] == "passed"


def test_tampered_or_missing_installed_golden_data_is_an_error_never_a_skip(installed, tmp_path):
    site = next(installed.parent.glob("lib/python*/site-packages"))
    golden = site / "conformance" / "data" / "golden"
    kept = tmp_path / "kept"
    shutil.copytree(golden, kept)
    try:
        path = golden / "basic-adam.npz"
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))
        verified = _run([str(installed / "adam-conformance"), "golden", "verify"], tmp_path)
        assert verified.returncode == 1 and "basic-adam.npz: checksum mismatch" in verified.stderr
        tampered = _run([str(installed / "adam-conformance"), "certify", "eager", "--profile", "quick"], tmp_path)
        assert tampered.returncode == 2 and tampered.stderr.count("\n") == 1, tampered.stdout + tampered.stderr
        assert "golden traces" in tampered.stderr and "basic-adam.npz: checksum mismatch" in tampered.stderr
        shutil.rmtree(golden)
        missing = _run([str(installed / "adam-conformance"), "certify", "eager", "--profile", "quick"], tmp_path)
        assert missing.returncode == 2 and "SHA256SUMS: missing" in missing.stderr, missing.stderr
    finally:
        shutil.rmtree(golden, ignore_errors=True)
        shutil.copytree(kept, golden)
