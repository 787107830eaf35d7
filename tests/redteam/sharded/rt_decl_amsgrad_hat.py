"""BUG: AMSGrad as optax's scale_by_amsgrad (google-deepmind/optax#1389) and torch's own docs
before pytorch#142351: the running max is taken of the *bias-corrected* v_hat = v / (1 - b2^t),
not of the raw v. max_exp_avg_sq holds v_hat, and the updates differ whenever the max binds.
"""
import torch
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam, adam_update


class AmsgradHatAdam(LoopAdam):
    def math(self, p, grad, st, group):
        if not group["amsgrad"]:
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
        st["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        v_hat = st["exp_avg_sq"] / (1 - beta2**t)
        torch.maximum(st["max_exp_avg_sq"], v_hat, out=st["max_exp_avg_sq"])
        p.addcdiv_(st["exp_avg"], st["max_exp_avg_sq"].sqrt().add_(eps), value=-lr / (1 - beta1**t))


TARGET = Implementation("rt-decl-amsgrad-hat", AmsgradHatAdam, "Adam/AMSGrad (optax formulation)", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "float64",
                                "closure", "param_groups", "zero_dim", "empty"})
