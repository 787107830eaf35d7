"""torch's own Adam and AdamW paths, registered as references.

``torch`` is the single-tensor for-loop, the path the suite's error budget is measured
against; ``torch-foreach`` and ``torch-fused`` are torch's multi-tensor and fused
kernels; ``torch-capturable`` is the CUDA-graph-safe path (``capturable=True``, CUDA only).
Each has an AdamW form. What each claims is what it supports in torch: the fused kernels
declare ``allocation_free`` and the capturable path ``capturable``, which the CUDA checks
hold them to.
"""

from __future__ import annotations

from conformance.run.reference import capturable, single_tensor, torch_paths
from conformance.vocabulary import TORCH_PATHS

TORCH, TORCH_ADAMW = single_tensor("adam"), single_tensor("adamw")
TORCH_FOREACH, TORCH_FOREACH_ADAMW = torch_paths("torch-foreach", TORCH_PATHS["foreach"], "multi-tensor kernels",
                                                 {"tensor_lr"})
TORCH_FUSED, TORCH_FUSED_ADAMW = torch_paths("torch-fused", TORCH_PATHS["fused"], "fused kernels", {"complex"},
                                             declared={"allocation_free"})
TORCH_CAPTURABLE, TORCH_CAPTURABLE_ADAMW = capturable("adam"), capturable("adamw")
