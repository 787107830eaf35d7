"""BUG: Adam over FSDP2 parameters that also syncs the gradients of Replicate parameters
(0-d ones, which FSDP2 does not shard) "like DDP", with a SUM all_reduce and no division. Every
rank holding the same gradient, a 0-d parameter steps with world_size * g: its moments are scaled
and its update differs through eps and L2 decay. Sharded parameters are untouched.
"""
import torch.distributed as dist
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import DTensor, ShardAdam, local
from tests.redteam.sharded._fsdp_claims import CLAIMS


class ReplicateSyncShardAdam(ShardAdam):
    def math(self, p, grad, st, group):
        if isinstance(p, DTensor) and all(pl.is_replicate() for pl in p.placements):
            grad = local(grad).clone()
            dist.all_reduce(grad)
        super().math(p, grad, st, group)


def shard_adam(params, **kw):
    return ReplicateSyncShardAdam(params, **kw)


TARGET = Implementation("rt-fsdp-replicate-allreduce", shard_adam, "FSDP2 Adam syncing replicated grads", "adam",
                        claims=CLAIMS, sharding=Sharding("dtensor"))
