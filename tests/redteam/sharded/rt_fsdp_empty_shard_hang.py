"""BUG (hang): Adam over DTensor shards with an AMP-style overflow guard: before stepping a
parameter, every rank all-reduces "my shard of the gradient has an inf/nan" so all ranks skip
together. But parameters whose *local* shard is empty are filtered out first (as Megatron-FSDP
does for TE FusedAdam), so when a parameter has fewer rows than ranks (shape (1, n) at 2 ranks)
one rank enters the all_reduce and the other does not: the collectives pair up wrongly and a
rank blocks forever at the end of the step. The empty rank also keeps no state for it.
"""
import torch
import torch.distributed as dist
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ShardAdam, local
from tests.redteam.sharded._fsdp_claims import CLAIMS


class OverflowGuardShardAdam(ShardAdam):
    def steps_here(self, p):
        return local(p).numel() > 0  # nothing to update on this rank

    def update(self, p, grad, group):
        bad = torch.tensor([0.0 if torch.isfinite(local(grad)).all() else 1.0])
        dist.all_reduce(bad)
        if bad.item() == 0:
            super().update(p, grad, group)


def shard_adam(params, **kw):
    return OverflowGuardShardAdam(params, **kw)


TARGET = Implementation("rt-fsdp-empty-shard-hang", shard_adam, "DTensor Adam with an overflow guard", "adam",
                        claims=CLAIMS, sharding=Sharding("dtensor"))
