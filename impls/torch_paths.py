"""torch's own Adam and AdamW paths, registered as references.

``torch`` is the single-tensor for-loop, the path the suite's error budget is measured
against; ``torch-foreach`` and ``torch-fused`` are torch's multi-tensor and fused
kernels. Each has an AdamW form. What each claims is what it supports in torch.
"""

from __future__ import annotations

import functools

import torch

from conformance.registry import FEATURES, Implementation


def _paths(name: str, flags: dict, description: str, unsupported: set[str]) -> tuple[Implementation, Implementation]:
    claims = frozenset(FEATURES) - unsupported
    adam = Implementation(
        name=name,
        factory=functools.partial(torch.optim.Adam, **flags),
        description=f"torch.optim.Adam({', '.join(f'{k}={v}' for k, v in flags.items())}): {description}",
        spec="adam",
        claims=claims,
    )
    adamw_ = Implementation(
        name=f"{name}-adamw",
        factory=functools.partial(torch.optim.AdamW, **flags),
        description=f"torch.optim.AdamW({', '.join(f'{k}={v}' for k, v in flags.items())})",
        spec="adamw",
        claims=claims - {"decoupled_weight_decay"},
    )
    return adam, adamw_


TORCH, TORCH_ADAMW = _paths("torch", {"foreach": False}, "the single-tensor reference path", set())
TORCH_FOREACH, TORCH_FOREACH_ADAMW = _paths(
    "torch-foreach", {"foreach": True}, "multi-tensor kernels", {"tensor_lr"}
)
TORCH_FUSED, TORCH_FUSED_ADAMW = _paths("torch-fused", {"fused": True}, "fused kernels", {"complex"})
