"""The environment a certificate or a bench run holds for: versions, the device, the CPU and
the GPU; and the header lines of every report (the target, its claims, the spec, the profile,
the seed, what the preflight found)."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

from conformance.run import torch_features
from conformance.run.target import Target
from conformance.vocabulary import FEATURES, torch_class_name


def environment(target: Target) -> dict:
    """Versions and hardware the certificate holds for."""
    env = software() | dict(device=target.device)
    if target.impl.sharding is not None:
        from conformance.run.rank import backend_of

        env["world_size"], env["backend"] = target.world_size, backend_of(target.device)
    if target.device == "cuda":
        env |= gpu()
    return env


@functools.cache
def software() -> dict:
    """The versions of python, the platform, torch, numpy, hypothesis and (where installed) Triton."""
    import hypothesis
    import numpy
    import torch

    env = dict(python=platform.python_version(), platform=platform.platform(), torch=torch.__version__,
               numpy=numpy.__version__, hypothesis=hypothesis.__version__)
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        pass
    return env


def gpu() -> dict:
    """The GPU's model, the CUDA torch was built with, and the NVIDIA driver."""
    import torch

    return dict(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda, driver=_nvidia_driver())


def cpu_model() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it (elsewhere, what `platform` knows)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    """The NVIDIA driver's version, as nvidia-smi says it (None: no nvidia-smi answered)."""
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def describe_environment(target: Target, seed: int, preflight=None, skipped=()) -> list[str]:
    """Header lines: the target, what it claims, the spec, versions, device, profile and seed;
    then what the preflight found, and the checks skipped on request."""
    env = environment(target)
    claims = sorted(target.claims)
    missing = [f for f in FEATURES if f not in target.claims]
    device = target.device + (f" ({env['gpu']}, CUDA {env['cuda']}, driver {env['driver']})" if "gpu" in env else "")
    return [
        f"target {target.impl.name}: {target.impl.description}".rstrip(": "),
        f"claims {', '.join(claims) or 'nothing optional'}"
        + (f"; not claimed: {', '.join(missing)}" if missing else "")
        + (f"; read by probing its open signature: {', '.join(preflight.probed)}"
           if preflight and preflight.probed else ""),
        f"spec {target.spec} ({torch_class_name(target.spec)}), device {device}"
        + (f", {env['world_size']} process(es) over {env['backend']}" if "world_size" in env else ""),
        *([f"declares {target.precision}: parity allows what it implies there; everything else is judged "
           "exactly"] if target.precision else []),
        f"torch {env['torch']}, python {env['python']}, numpy {env['numpy']}, hypothesis {env['hypothesis']}"
        + (f", triton {env['triton']}" if "triton" in env else ""),
        f"profile {target.profile.name} ({target.profile.examples} examples per check, after the covering ones), "
        f"seed {seed}",
        *(f"{feature} not drawn: {why}" for feature, why in torch_features.lacking().items()
          if feature in target.impl.claims),
        *(preflight.lines() if preflight else []),
        *([f"skipped on request: {', '.join(skipped)}"] if skipped else []),
    ]
