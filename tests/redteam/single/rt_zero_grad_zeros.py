"""Adam subclass that keeps the pre-2.0 zero_grad(set_to_none=False) default "for gradient-accumulation code".

Bug: zero_grad() leaves zero tensors instead of None, so a following step() still updates
every parameter (momentum keeps moving it) where torch.optim.Adam would skip parameters
whose grad is None.
Modelled on: pytorch/pytorch#92656 (set_to_none default changed to True in 2.0) and
deepspeedai/DeepSpeed#2741 / #4438 (DeepSpeed kept set_to_none=False).
Spec: adam.
"""
import torch


class Adam(torch.optim.Adam):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def zero_grad(self, set_to_none: bool = False):
        super().zero_grad(set_to_none=set_to_none)


TARGET = Adam
