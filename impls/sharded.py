"""Sharded optimizers, certified across processes (`conformance.run.distributed`).

``zero-NAME``: ``torch.distributed.optim.ZeroRedundancyOptimizer`` over the built-in NAME.
Every rank holds every parameter whole; ZeRO gives each parameter to one rank (the largest
first, to the rank with the fewest elements so far, so a rank may own none), which keeps its
state and steps it, then broadcasts it to the others. Its state is read where the owner keeps
it (``opt.optim.state``); a checkpoint is consolidated on rank 0, which every rank must join,
and broadcast, so that every rank loads the whole state_dict. ZeRO takes one dense dtype for
all its parameters, so these claim float32 alone: no float16, bfloat16, float64 or complex
(a Case mixing them raises ValueError in ZeRO's constructor). Nor do they claim noncontiguous:
measured here (torch 2.13, gloo), ZeRO's broadcast of a parameter that is not dense (a slice
of a wider buffer) leaves the other ranks with their stale values, which sharded.ranks-agree
shows.

``fsdp2-torch``: ``torch.optim.Adam`` (the single-tensor path) over parameters sharded as
FSDP2's ``fully_shard`` shards them, DTensor ``Shard(0)`` over a 1-D mesh of the ranks; each
rank steps its own rows, so the update of an elementwise Adam is unchanged by the sharding.
It claims no complex parameters: measured here (torch 2.13), Adam's ``view_as_real`` of a
complex DTensor breaks: on a 0-d one (``Replicate``) DTensor's sharding propagation fails
("tuple index out of range"), and the golden complex64 scenario's parameter is never updated.

Each has an AdamW form. For elementwise Adam all of them equal the unsharded optimizer bitwise.
"""

from __future__ import annotations

import functools

import torch.distributed as dist

from conformance.registry import Implementation, Sharding
from conformance.run.reference import torch_paths
from impls import compiled, eager, foreach, triton_fused

#: Features a ZeRO target cannot take: its parameters must share one dense dtype, and be dense.
ZERO_CANNOT = frozenset({"float16", "bfloat16", "float64", "complex", "noncontiguous"})


def zero_redundancy(params, optimizer_class, **defaults):
    """``ZeroRedundancyOptimizer(params, optimizer_class, **defaults)``, imported when called (a
    torch built without torch.distributed has none)."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return ZeroRedundancyOptimizer(params, optimizer_class=optimizer_class, **defaults)


def owned_state(opt) -> dict:
    """The state of the parameters this rank owns: ZeRO keeps it in its local optimizer."""
    return opt.optim.state


def consolidated(opt) -> dict:
    """ZeRO's whole state_dict on every rank: consolidated on rank 0 (every rank joins), then broadcast."""
    opt.consolidate_state_dict(to=0)
    whole = [opt.state_dict() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(whole, src=0)
    return whole[0]


ZERO = Sharding("full", state=owned_state, save=consolidated)
DTENSOR = Sharding("dtensor")


def zero(base: Implementation) -> Implementation:
    """ZeroRedundancyOptimizer over `base`, as the target ``zero-<base.name>``."""
    factory = functools.partial(zero_redundancy, optimizer_class=base.factory)
    return Implementation(f"zero-{base.name}", factory, f"ZeroRedundancyOptimizer over {base.name}: "
                          f"{base.description}", base.spec, base.claims - ZERO_CANNOT, base.devices,
                          sharding=ZERO)


TORCH, TORCH_ADAMW = torch_paths("torch", {"foreach": False}, "the single-tensor reference path")
ZERO_EAGER, ZERO_EAGER_ADAMW = zero(eager.ADAM), zero(eager.ADAMW)
ZERO_FOREACH, ZERO_FOREACH_ADAMW = zero(foreach.ADAM), zero(foreach.ADAMW)
ZERO_COMPILED, ZERO_COMPILED_ADAMW = zero(compiled.ADAM), zero(compiled.ADAMW)
ZERO_TRITON, ZERO_TRITON_ADAMW = zero(triton_fused.ADAM), zero(triton_fused.ADAMW)
ZERO_TORCH, ZERO_TORCH_ADAMW = zero(TORCH), zero(TORCH_ADAMW)
FSDP2_TORCH, FSDP2_TORCH_ADAMW = (
    Implementation(f"fsdp2-{impl.name}", impl.factory, f"{impl.description}, over FSDP2 / DTensor Shard(0) "
                   "parameters", impl.spec, impl.claims - {"complex"}, ("cpu", "cuda"), sharding=DTENSOR)
    for impl in (TORCH, TORCH_ADAMW))
