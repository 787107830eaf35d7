"""BUG: the "efficient" form of Algorithm 1 from the Adam paper, as tf.compat.v1.train.AdamOptimizer
computes it (its eps is the paper's eps-hat): lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t),
p -= lr_t * m / (sqrt(v) + eps). That is eps * sqrt(1 - b2^t) in torch's terms: the same for large
v, a larger step when sqrt(v) is near eps (tiny gradients, eps=1e-3 style settings, early steps).
"""
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam


class EpsHatAdam(LoopAdam):
    def math(self, p, grad, st, group):
        lr, eps, wd = float(group["lr"]), group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        t = float(st["step"])
        grad = -grad if group["maximize"] else grad
        if wd:
            if group["decoupled_weight_decay"]:
                p.mul_(1 - lr * wd)
            else:
                grad = grad.add(p, alpha=wd)
        m, v = st["exp_avg"], st["exp_avg_sq"]
        m.lerp_(grad, 1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        if group["amsgrad"]:
            v = st["max_exp_avg_sq"].copy_(st["max_exp_avg_sq"].maximum(v))
        lr_t = lr * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
        p.addcdiv_(m, v.sqrt().add_(eps), value=-lr_t)


TARGET = Implementation("rt-decl-eps-hat", EpsHatAdam, "Adam (TF1 formulation)", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "float64",
                                "closure", "param_groups", "zero_dim", "empty"})
