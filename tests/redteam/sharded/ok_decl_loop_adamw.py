"""Correct: AdamW as a per-parameter loop (torch's single-tensor path op for op), declared claims."""
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam


class LoopAdamW(LoopAdam):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)


TARGET = Implementation("ok-decl-loop-adamw", LoopAdamW, "AdamW, per-parameter loop", "adamw",
                        claims={"weight_decay", "amsgrad", "maximize", "complex", "tensor_lr", "closure", "float16",
                                "bfloat16", "float64", "noncontiguous", "param_groups", "zero_dim", "empty"})
