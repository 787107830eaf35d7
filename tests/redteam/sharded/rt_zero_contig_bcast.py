"""BUG: ZeRO-1 whose post-step broadcast is `dist.broadcast(p.contiguous(), src=owner)`
("gloo wants contiguous tensors"): for a non-contiguous parameter (transposed, sliced,
channels_last) the owner sends and the other ranks receive into a temporary copy, so their
replica keeps its stale value. Contiguous parameters are fine.
"""
import torch.distributed as dist
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, consolidated, owned_state


class ContigBcastZero(ZeroAdam):
    def sync(self, owners):
        for p, src in owners.items():
            dist.broadcast(p.detach().contiguous(), src=src)


def zero_adam(params, **kw):
    return ContigBcastZero(params, **kw)


TARGET = Implementation("rt-zero-contig-bcast", zero_adam, "hand-written ZeRO-1", "adam",
                        sharding=Sharding("full", state=owned_state, save=consolidated))
