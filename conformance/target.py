"""What is certified: an implementation, the spec, the device, and how hard to look.

`build_target` turns command-line options into a `Target` (or a one-line
`TargetOptionsError`); `describe_environment` says exactly what is being tested, for
report headers.
"""

from __future__ import annotations

import dataclasses
import platform

from hypothesis import strategies as st

from conformance import budget, reference, runner, strategies
from conformance.case import Case, Trace
from conformance.registry import EDGES, FEATURES, Implementation, TargetError, resolve


class TargetOptionsError(TargetError):
    """The target, or an option about it, cannot be used. One line."""


@dataclasses.dataclass(frozen=True)
class Profile:
    """How hard to look: examples per check and how large a drawn Case may be."""

    name: str
    examples: int
    max_steps: int
    max_numel: int
    large: bool
    golden_steps: int  # the longest golden scenario parity.golden runs
    closed_loop: bool  # whether parity.golden runs the closed-loop MLP
    timeout: float  # seconds a check may take on a target as fast as torch (the preflight scales it)


PROFILES = {
    "quick": Profile("quick", examples=6, max_steps=5, max_numel=64, large=False, golden_steps=30, closed_loop=False,
                     timeout=120.0),
    "standard": Profile("standard", examples=30, max_steps=8, max_numel=1024, large=True, golden_steps=300,
                        closed_loop=False, timeout=900.0),
    "thorough": Profile("thorough", examples=300, max_steps=12, max_numel=1024, large=True, golden_steps=10**6,
                        closed_loop=True, timeout=7200.0),
}


@dataclasses.dataclass(frozen=True)
class Target:
    """An implementation, the spec it is certified against, the device, and the profile.

    ``avoid`` holds what the preflight found the target rejects though it claims it: a
    feature, or an edge of the valid range (`registry.EDGES`). contract.accepts-valid
    fails on them; every other check draws around them. ``plan`` forces the branches of
    the Cases drawn (see `strategies.covering_plans`).
    """

    impl: Implementation
    spec: str
    device: str = "cpu"
    profile: Profile = PROFILES["standard"]
    avoid: frozenset[str] = frozenset()
    plan: strategies.Plan = strategies.FREE

    @property
    def claims(self) -> frozenset[str]:
        """The features the checks draw: the claims, less those the target rejects."""
        return self.impl.claims - self.avoid

    def cases(self, **overrides) -> st.SearchStrategy[Case]:
        """Cases within the target's claims and spec, off the edges it rejects, sized by the
        profile and taking the plan's branches."""
        kw = dict(spec=self.spec, claims=self.claims, max_steps=self.profile.max_steps,
                  max_numel=self.profile.max_numel, large=self.profile.large, avoid=self.avoid & set(EDGES),
                  plan=self.plan)
        kw.update(overrides)
        return strategies.cases(**kw)

    def accepts(self, case: Case) -> bool:
        """Whether `case` stays within what the target claims and does not reject."""
        return not (case.features() - self.claims or case.edges() & self.avoid)

    def run(self, case: Case) -> Trace:
        return runner.run(self.impl, case, self.device)

    def torch(self) -> Target:
        """torch's single-tensor path in the target's place."""
        return dataclasses.replace(self, impl=reference.single_tensor(self.spec))

    def references(self, case: Case) -> list[Trace]:
        """torch's single-tensor runs that set the error budget for `case`."""
        torch_path = reference.single_tensor(self.spec)
        return [runner.run(torch_path, c, self.device) for c in budget.reference_cases(case)]


def build_target(name: str, *, spec: str | None = None, profile: str = "standard", device: str = "cpu",
                 without=()) -> Target:
    """A Target from command-line options; TargetOptionsError (one line) for anything unusable."""
    unknown = sorted(set(without) - set(FEATURES))
    if unknown:
        raise TargetOptionsError(f"unknown feature {', '.join(map(repr, unknown))} for --without; "
                                 f"known: {', '.join(FEATURES)}")
    if profile not in PROFILES:
        raise TargetOptionsError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise TargetOptionsError("--device cuda was asked for, but CUDA is not available on this machine "
                                     "(torch.cuda.is_available() is False)")
    impl = resolve(name).without(without)
    if device not in impl.devices:
        raise TargetOptionsError(f"{impl.name} does not run on {device} (it runs on {', '.join(impl.devices)})")
    return Target(impl, spec or impl.spec, device, PROFILES[profile])


def environment(target: Target) -> dict:
    """Versions and hardware the certificate holds for."""
    import hypothesis
    import numpy
    import torch

    env = dict(python=platform.python_version(), platform=platform.platform(), torch=torch.__version__,
               numpy=numpy.__version__, hypothesis=hypothesis.__version__, device=target.device)
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        pass
    if target.device == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["cuda"] = torch.version.cuda
        env["driver"] = _nvidia_driver()
    return env


def _nvidia_driver() -> str | None:
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
        f"claims {', '.join(claims) or 'nothing optional'}" + (f"; not claimed: {', '.join(missing)}" if missing else ""),
        f"spec {target.spec} (torch.optim.{'AdamW' if target.spec == 'adamw' else 'Adam'}), device {device}",
        f"torch {env['torch']}, python {env['python']}, numpy {env['numpy']}, hypothesis {env['hypothesis']}"
        + (f", triton {env['triton']}" if "triton" in env else ""),
        f"profile {target.profile.name} ({target.profile.examples} examples per check, after the covering ones), "
        f"seed {seed}",
        *(preflight.lines() if preflight else []),
        *([f"skipped on request: {', '.join(skipped)}"] if skipped else []),
    ]
