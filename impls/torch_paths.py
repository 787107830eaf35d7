"""torch's own Adam and AdamW paths, registered as references.

``torch`` is the single-tensor for-loop, the path the suite's error budget is measured
against; ``torch-foreach`` and ``torch-fused`` are torch's multi-tensor and fused
kernels. Each has an AdamW form. What each claims is what it supports in torch.
"""

from __future__ import annotations

from conformance.run.reference import single_tensor, torch_paths

TORCH, TORCH_ADAMW = single_tensor("adam"), single_tensor("adamw")
TORCH_FOREACH, TORCH_FOREACH_ADAMW = torch_paths("torch-foreach", {"foreach": True}, "multi-tensor kernels",
                                                 {"tensor_lr"})
TORCH_FUSED, TORCH_FUSED_ADAMW = torch_paths("torch-fused", {"fused": True}, "fused kernels", {"complex"})
