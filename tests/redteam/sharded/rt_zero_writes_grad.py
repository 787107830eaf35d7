"""BUG: ZeRO-1 whose owner folds maximize and the L2 term into the gradient in place
(p.grad.neg_(), p.grad.add_(p, alpha=wd)) to save a copy. The update is right, but p.grad is
overwritten on the owning rank only: ranks disagree on the gradients, and a gradient reused for
another step (gradient accumulation, a second step without zero_grad) is decayed/negated again.
"""
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, consolidated, owned_state


class InplaceGradZero(ZeroAdam):
    def math(self, p, grad, st, group):
        if group["maximize"]:
            grad.neg_()
        if group["weight_decay"] != 0 and not group["decoupled_weight_decay"]:
            grad.add_(p, alpha=group["weight_decay"])
        group = {**group, "maximize": False,
                 "weight_decay": group["weight_decay"] if group["decoupled_weight_decay"] else 0.0}
        super().math(p, grad, st, group)


def zero_adam(params, **kw):
    return InplaceGradZero(params, **kw)


TARGET = Implementation("rt-zero-writes-grad", zero_adam, "hand-written ZeRO-1, in-place L2", "adam",
                        sharding=Sharding("full", state=owned_state, save=consolidated))
