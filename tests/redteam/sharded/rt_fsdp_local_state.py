"""BUG: Adam over DTensor shards that keeps its state as plain local tensors (zeros_like of the
local shard) instead of DTensors, "to avoid DTensor dispatch overhead" (TransformerEngine#2795's
FusedAdam). The updates are right, but opt.state / state_dict() hold each rank's rows as if
they were the whole tensor: a checkpoint cannot be gathered or loaded at another world size.
"""
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ShardAdam, init_state, local
from tests.redteam.sharded._fsdp_claims import CLAIMS


class LocalStateShardAdam(ShardAdam):
    def state_for(self, p, group):
        st = self.state[p]
        if not st:
            st.update(init_state(local(p), group["amsgrad"]))
        return st


def shard_adam(params, **kw):
    return LocalStateShardAdam(params, **kw)


TARGET = Implementation("rt-fsdp-local-state", shard_adam, "DTensor Adam, local-tensor state", "adam",
                        claims=CLAIMS, sharding=Sharding("dtensor"))
