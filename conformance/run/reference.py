"""torch's own Adam and AdamW as Implementations; the single-tensor path is the yardstick.

The error budget measures every implementation against ``torch.optim.Adam`` /
``torch.optim.AdamW`` with ``foreach=False``: the path torch itself treats as the
reference (its foreach and fused kernels are tested against it).
"""

from __future__ import annotations

import functools

from conformance.registry import Implementation
from conformance.vocabulary import FEATURES


def torch_paths(name: str, flags: dict, description: str,
                unsupported=frozenset()) -> tuple[Implementation, Implementation]:
    """torch.optim.Adam and torch.optim.AdamW called with `flags`, as Implementations."""
    import torch

    shown = ", ".join(f"{k}={v}" for k, v in flags.items())
    return Implementation.pair(name, functools.partial(torch.optim.Adam, **flags),
                               functools.partial(torch.optim.AdamW, **flags),
                               f"torch.optim.Adam({shown}): {description}", f"torch.optim.AdamW({shown})",
                               claims=frozenset(FEATURES) - set(unsupported))


@functools.cache
def single_tensor(spec: str) -> Implementation:
    """torch's single-tensor path implementing `spec`."""
    adam, adamw = torch_paths("torch", {"foreach": False}, "the single-tensor reference path")
    return adam if spec == "adam" else adamw
