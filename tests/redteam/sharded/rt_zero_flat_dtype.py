"""BUG: ZeRO-1 whose replicas are refreshed by one flat all_gather in the dtype of the first
parameter (as the first ZeroRedundancyOptimizer's broadcast buffers, dtype=per_device[0][0].dtype).
Every parameter goes through that buffer, on its owner too, so with mixed dtypes a float64
parameter is rounded to float32 each step, or a float32 one to bfloat16 if a bf16 parameter
comes first. One dtype (any) is fine.
"""
import torch
import torch.distributed as dist
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, consolidated, owned_state


class FlatDtypeZero(ZeroAdam):
    def sync(self, owners):
        params = list(owners)
        if not params:
            return
        dtype = params[0].dtype
        sizes = [sum(p.numel() for p in params if owners[p] == r) for r in range(self.world)]
        send = torch.zeros(max(sizes), dtype=dtype)
        mine = [p.reshape(-1).to(dtype) for p in params if owners[p] == self.rank]
        if mine:
            send[: sizes[self.rank]].copy_(torch.cat(mine))
        recv = [torch.empty_like(send) for _ in range(self.world)]
        dist.all_gather(recv, send)
        offset = [0] * self.world
        for p in params:
            r, k = owners[p], p.numel()
            p.copy_(recv[r][offset[r]: offset[r] + k].view(p.shape))
            offset[r] += k


def zero_adam(params, **kw):
    return FlatDtypeZero(params, **kw)


TARGET = Implementation("rt-zero-flat-dtype", zero_adam, "ZeRO-1, flat all_gather buffer", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "tensor_lr",
                                "closure", "float16", "bfloat16", "float64", "noncontiguous", "param_groups",
                                "zero_dim", "empty"},
                        sharding=Sharding("full", state=owned_state, save=consolidated))
