"""BUG: Adam whose 16-bit path casts the hyperparameters to the parameter dtype "so every kernel
stays in 16 bit" (keras#21238, tenstorrent/tt-metal#55935, FluxML/Optimisers.jl#215). In bfloat16
beta2 = 0.999 rounds to 1.0: v never moves (1 - beta2 = 0), 1 - beta2^t = 0, and the first step
is 0/0 = nan. In float16 beta1 = 0.9 becomes 0.8999, beta2 0.99902. float32/64 are exact.
"""
import torch
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam, adam_update

HALF = (torch.float16, torch.bfloat16)


class HalfConstsAdam(LoopAdam):
    def math(self, p, grad, st, group):
        if p.dtype in HALF:
            cast = lambda x: torch.tensor(float(x), dtype=p.dtype).item()
            group = {**group, "lr": cast(group["lr"]), "eps": cast(group["eps"]),
                     "betas": tuple(cast(b) for b in group["betas"])}
        adam_update(p, grad, st, group)


TARGET = Implementation("rt-decl-half-consts", HalfConstsAdam, "Adam with native 16-bit kernels", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "float16",
                                "bfloat16", "float64", "closure", "param_groups", "zero_dim", "empty"})
