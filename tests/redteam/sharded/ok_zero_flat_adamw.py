"""Correct: hand-written ZeRO-1 AdamW whose replicas are refreshed by one flat all_gather per dtype.

Each rank flattens the parameters it owns (one bucket per dtype, padded to the largest rank's
bucket), all_gathers the buckets and copies every other rank's slice back into its parameters.
"""
import torch
import torch.distributed as dist
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, consolidated, owned_state


class FlatZeroAdam(ZeroAdam):
    def sync(self, owners):
        buckets = {}
        for p in owners:  # parameter order: the same on every rank
            buckets.setdefault(p.dtype, []).append(p)
        for dtype, params in buckets.items():
            sizes = [sum(p.numel() for p in params if owners[p] == r) for r in range(self.world)]
            n = max(sizes)
            send = torch.zeros(n, dtype=dtype)
            mine = [p.reshape(-1) for p in params if owners[p] == self.rank]
            if mine:
                send[: sizes[self.rank]].copy_(torch.cat(mine))
            recv = [torch.empty(n, dtype=dtype) for _ in range(self.world)]
            dist.all_gather(recv, send)
            offset = [0] * self.world
            for p in params:
                r, k = owners[p], p.numel()
                if r != self.rank:
                    p.copy_(recv[r][offset[r]: offset[r] + k].view(p.shape))
                offset[r] += k


def zero_adamw(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *, maximize=False):
    return FlatZeroAdam(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                        decoupled_weight_decay=True)


TARGET = Implementation("ok-zero-flat-adamw", zero_adamw, "ZeRO-1 AdamW, flat all_gather per dtype", "adamw",
                        claims={"weight_decay", "amsgrad", "maximize", "complex", "tensor_lr", "closure", "float16",
                                "bfloat16", "float64", "noncontiguous", "param_groups", "zero_dim", "empty"},
                        sharding=Sharding("full", state=owned_state, save=consolidated))
