"""BUG: Adam over DTensor shards that does the math of a small local shard (<= 16 elements) in
float64 ("cheap, and exact") and of a larger one in float32, state kept in the parameter's dtype.
The results differ by an ulp here and there, and which path a parameter takes depends on its
shard size, so the trajectory changes with the world size (pytorch/ao#4912's shape, for the
compute precision rather than the state's).
"""
import torch
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ShardAdam, adam_update, local
from tests.redteam.sharded._fsdp_claims import CLAIMS

SMALL = 16


class SmallShardFp64Adam(ShardAdam):
    def math(self, p, grad, st, group):
        lp = local(p)
        if lp.numel() > SMALL or lp.dtype != torch.float32:
            return super().math(p, grad, st, group)
        work = {k: (v if k == "step" else local(v).double()) for k, v in st.items()}
        p64 = lp.double()
        adam_update(p64, local(grad).double(), work, group)
        lp.copy_(p64)
        for k, v in work.items():
            if k != "step":
                local(st[k]).copy_(v)


def shard_adam(params, **kw):
    return SmallShardFp64Adam(params, **kw)


TARGET = Implementation("rt-fsdp-shard-fp64", shard_adam, "DTensor Adam, small shards in float64", "adam",
                        claims=CLAIMS, sharding=Sharding("dtensor"))
