"""Correct: hand-written ZeRO-1 over whole parameters (round-robin owners, broadcast from the owner).

Non-dense parameters go through a contiguous buffer that is copied back after the broadcast.
"""
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import ZeroAdam, consolidated, owned_state


def zero_adam(params, **kw):
    return ZeroAdam(params, **kw)


TARGET = Implementation("ok-zero-roundrobin", zero_adam, "hand-written ZeRO-1, round-robin owners", "adam",
                        sharding=Sharding("full", state=owned_state, save=consolidated))
