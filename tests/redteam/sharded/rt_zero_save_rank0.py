"""BUG: a correct ZeRO-1 whose checkpoint function skips consolidation: rank 0's
opt.state_dict() (the state of the parameters rank 0 owns, with the whole param_groups) is
broadcast to every rank. The state of parameters owned by other ranks is silently missing, so
after a resume they restart from step 0 with zero moments.
"""
import torch.distributed as dist
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, owned_state


def rank0_state_dict(opt):
    whole = [opt.state_dict() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(whole, src=0)
    return whole[0]


def zero_adam(params, **kw):
    return ZeroAdam(params, **kw)


TARGET = Implementation("rt-zero-save-rank0", zero_adam, "hand-written ZeRO-1", "adam",
                        sharding=Sharding("full", state=owned_state, save=rank0_state_dict))
