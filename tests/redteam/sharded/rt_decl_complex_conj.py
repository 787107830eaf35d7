"""BUG: complex Adam as pytorch#62946 had it before torch switched to view_as_real (#80279):
v <- b2 v + (1-b2) g conj(g), one |g|^2 per complex number (stored as a complex tensor with zero
imaginary part), instead of one second moment per real and imaginary component. Real parameters
are exact. Declares complex.
"""
import torch
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam, adam_update


class ConjComplexAdam(LoopAdam):
    def math(self, p, grad, st, group):
        if not torch.is_complex(p):
            return adam_update(p, grad, st, group)
        lr, eps, wd = float(group["lr"]), group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        t = float(st["step"])
        grad = -grad if group["maximize"] else grad
        if wd:
            if group["decoupled_weight_decay"]:
                p.mul_(1 - lr * wd)
            else:
                grad = grad.add(p, alpha=wd)
        st["exp_avg"].lerp_(grad, 1 - beta1)
        st["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
        v = st["exp_avg_sq"]
        if group["amsgrad"]:
            v = st["max_exp_avg_sq"].copy_(torch.maximum(st["max_exp_avg_sq"].real, v.real))
        denom = (v.real.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
        p.addcdiv_(st["exp_avg"], denom, value=-lr / (1 - beta1**t))


TARGET = Implementation("rt-decl-complex-conj", ConjComplexAdam, "Adam with complex support", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "complex",
                                "float64", "closure", "param_groups", "zero_dim", "empty"})
