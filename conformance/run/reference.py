"""torch's own Adam and AdamW as Implementations; the single-tensor path is the yardstick.

The error budget measures every implementation against ``torch.optim.Adam`` /
``torch.optim.AdamW`` with ``foreach=False``: the path torch itself treats as the
reference (its foreach and fused kernels are tested against it). One promise changes the
yardstick: a target that declares ``capturable`` and runs on CUDA is measured against
torch's capturable path there, which keeps the step count on the device in float32 and
computes the bias corrections from it in float32, where ``1 - β₂ᵗ`` cancels (about 1e-5
relative error at small t, so ~10 eps on the parameters where the for-loop path makes
under 1). Held to the for-loop's budget, torch's own capturable path would fail; held to
its own, a capturable target answers for the arithmetic the promise implies, no more.
"""

from __future__ import annotations

import functools

from conformance.registry import Implementation
from conformance.run import torch_features
from conformance.vocabulary import DEFAULT_CLAIMS, DEVICES, TORCH_PATHS


def torch_paths(name: str, flags: dict, description: str, unsupported=frozenset(), declared=frozenset(),
                devices=DEVICES) -> tuple[Implementation, Implementation]:
    """torch.optim.Adam and torch.optim.AdamW called with `flags`, as Implementations that
    claim what torch supports on that path (the defaults, less `unsupported`, plus `declared`)."""
    import torch

    shown = ", ".join(f"{k}={v}" for k, v in flags.items())
    claims = (set(DEFAULT_CLAIMS) - set(unsupported) - set(torch_features.lacking())) | set(declared)
    return Implementation.pair(name, functools.partial(torch.optim.Adam, **flags),
                               functools.partial(torch.optim.AdamW, **flags),
                               f"torch.optim.Adam({shown}): {description}", f"torch.optim.AdamW({shown})",
                               claims=frozenset(claims), devices=devices)


@functools.cache
def single_tensor(spec: str) -> Implementation:
    """torch's single-tensor path implementing `spec`."""
    adam, adamw = torch_paths("torch", TORCH_PATHS["for-loop"], "the single-tensor reference path")
    return adam if spec == "adam" else adamw


@functools.cache
def capturable(spec: str) -> Implementation:
    """torch's capturable path implementing `spec` (CUDA only: torch refuses it on the CPU)."""
    adam, adamw = torch_paths("torch-capturable", {"capturable": True},
                              "state on the device, safe to capture in a CUDA graph",
                              declared={"capturable"}, devices=("cuda",))
    return adam if spec == "adam" else adamw


def yardstick(spec: str, claims: frozenset[str], device: str) -> Implementation:
    """torch's path whose own error sets the budget of a target with `claims` on `device`."""
    if "capturable" in claims and device in capturable(spec).devices:
        return capturable(spec)
    return single_tensor(spec)
