"""BUG: Adam whose step is decorated @torch.no_grad() and calls the closure inside it, without
torch.enable_grad() (HeavyBall#10, SOAP#21, Lightning#18254): the closure's forward builds no
graph, so its loss.backward() raises "element 0 of tensors does not require grad". Declares closure.
"""
import torch
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam


class NoGradClosureAdam(LoopAdam):
    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, group)
        return loss


TARGET = Implementation("rt-decl-closure-nograd", NoGradClosureAdam, "Adam with closure support", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "closure",
                                "float64", "param_groups", "zero_dim", "empty"})
