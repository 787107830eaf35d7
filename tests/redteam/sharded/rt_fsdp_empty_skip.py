"""BUG: Adam over DTensor shards that skips parameters whose local shard is empty (Megatron-FSDP
v2 filters them out of the base optimizer per rank). No collective, so no hang and the values are
right; but a rank with an empty shard keeps no state for that parameter (not even its step), so
ranks disagree on which parameters have state, and state gathered or saved per rank is ragged.
"""
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ShardAdam, local
from tests.redteam.sharded._fsdp_claims import CLAIMS


class SkipEmptyShardAdam(ShardAdam):
    def steps_here(self, p):
        return local(p).numel() > 0


def shard_adam(params, **kw):
    return SkipEmptyShardAdam(params, **kw)


TARGET = Implementation("rt-fsdp-empty-skip", shard_adam, "DTensor Adam, empty shards skipped", "adam",
                        claims=CLAIMS, sharding=Sharding("dtensor"))
