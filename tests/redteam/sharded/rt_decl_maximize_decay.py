"""BUG: maximize applied after the L2 term: g = -(grad + wd*p) instead of -grad + wd*p, so with
maximize=True and weight_decay > 0 the decay pushes the weights away from 0 (the order torch's
SGD docs were questioned on, pytorch#149476; pytorch_optimizer#528's Adai). Either alone is right.
"""
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam, adam_update


class DecayThenMaximizeAdam(LoopAdam):
    def math(self, p, grad, st, group):
        wd = group["weight_decay"]
        if wd and not group["decoupled_weight_decay"]:
            grad = grad.add(p, alpha=wd)
            group = {**group, "weight_decay": 0.0}
        adam_update(p, grad, st, group)  # negates for maximize


TARGET = Implementation("rt-decl-maximize-decay", DecayThenMaximizeAdam, "Adam with maximize", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "float64",
                                "closure", "param_groups", "zero_dim", "empty"})
