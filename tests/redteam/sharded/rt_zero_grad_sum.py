"""BUG: ZeRO-1 used without DDP, so it all-reduces the gradients itself, in place and with the
default op (SUM), and never divides by the world size. Every rank holding the same gradient,
the step sees world_size * g: the moments are scaled (exp_avg x W, exp_avg_sq x W^2), the
update only through eps and L2 weight decay, and p.grad is overwritten. Exact at world size 1.
"""
import torch
import torch.distributed as dist
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, consolidated, owned_state


class GradSumZero(ZeroAdam):
    def before_step(self):
        super().before_step()
        for p in self.all_params():
            if p.grad is not None:
                dist.all_reduce(p.grad)  # average data-parallel gradients (forgot the / world_size)


def zero_adam(params, **kw):
    return GradSumZero(params, **kw)


TARGET = Implementation("rt-zero-grad-sum", zero_adam, "ZeRO-1 with its own gradient all-reduce", "adam",
                        sharding=Sharding("full", state=owned_state, save=consolidated))
