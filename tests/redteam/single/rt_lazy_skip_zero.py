""""Lazy" Adam subclass that skips parameters whose gradient is exactly zero (embedding-friendly).

Bug: a parameter whose gradient is all zeros is treated like one without a gradient: no state
update, no step counter increment, no movement; torch.optim.Adam still decays the moments and
moves the parameter with its momentum.
Modelled on: tensorflow_addons LazyAdam ("only updates moving-average accumulators for sparse
variable indices that appear in the current batch") and torch.optim.SparseAdam semantics,
ported to dense tensors.
Spec: adam.
"""
import torch


class LazyAdam(torch.optim.Adam):
    def __init__(self, params, *args, **kwargs):
        super().__init__(params, *args, **kwargs)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        hidden = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.numel() and not p.grad.any():
                    hidden.append((p, p.grad))
                    p.grad = None
        try:
            super().step()
        finally:
            for p, g in hidden:
                p.grad = g
        return loss


TARGET = LazyAdam
