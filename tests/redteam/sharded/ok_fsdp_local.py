"""Correct: Adam over FSDP2/DTensor Shard(0) parameters, stepping each rank's local rows.

The state is created as zeros_like(param), so it is a DTensor with the parameter's placement.
"""
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ShardAdam
from tests.redteam.sharded._fsdp_claims import CLAIMS


def shard_adam(params, **kw):
    return ShardAdam(params, **kw)


TARGET = Implementation("ok-fsdp-local", shard_adam, "Adam on the local shards of DTensor parameters", "adam",
                        claims=CLAIMS, sharding=Sharding("dtensor"))
