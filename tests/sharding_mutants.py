"""The sharding mutant zoo: distributed optimizers, each one small change from a correct one,
each a bug of sharded training documented in one line. At world size 2 the suite must catch
every one at the quick profile (tests/test_kill_matrix.py, tests/test_distributed.py), and
certify the correct ones at the end.

`Zero` is torch's ZeroRedundancyOptimizer over torch.optim.Adam (every rank holds every
parameter whole); `Sharded` is the textbook Adam of tests/mutants.py stepping DTensor
``Shard(0)`` parameters, each rank its own rows. A mutant overrides one piece of either.
"""

from __future__ import annotations

import subprocess

import torch
from torch.distributed.optim import ZeroRedundancyOptimizer

from conformance.registry import Implementation
from impls import sharded
from tests.mutants import Textbook


class Zero(ZeroRedundancyOptimizer):
    """ZeroRedundancyOptimizer over torch.optim.Adam's single-tensor path."""

    SHARDING = sharded.ZERO
    CLAIMS = sharded.ZERO_TORCH.claims
    LOCAL = torch.optim.Adam

    def __init__(self, params, **defaults):
        super().__init__(params, optimizer_class=self.LOCAL, foreach=False, **defaults)


class Sharded(Textbook):
    """torch.optim.Adam's step over DTensor Shard(0) parameters, each rank stepping its own rows."""

    SHARDING = sharded.DTENSOR
    CLAIMS = sharded.ZERO_TORCH.claims  # float32 only: the textbook's view_as_real is not DTensor's


class StaleReplica(Zero):
    """The last rank keeps its stale copies of the shards other ranks own: it drops their broadcast."""

    def _sync_params(self):
        if self.rank != self.world_size - 1 or self.world_size == 1:
            return super()._sync_params()
        owned = {p for group in self.optim.param_groups for p in group["params"]}
        kept = {p: p.detach().clone() for p in self._all_params if p not in owned}
        super()._sync_params()
        with torch.no_grad():
            for p, stale in kept.items():
                p.copy_(stale)


class RestoresByOldPartition(Zero):
    """A checkpoint's state goes back to the ranks that owned it when saved, so a resharded one loses state."""

    def state_dict(self):
        state = super().state_dict()
        state["saved_partition"] = [[self._param_to_index[p] for group in groups for p in group["params"]]
                                    for groups in self._partition_parameters()]
        return state

    def load_state_dict(self, state_dict):
        partition = state_dict.pop("saved_partition", None)
        if partition is not None:
            mine = set(partition[self.rank]) if self.rank < len(partition) else set()
            state_dict["state"] = {i: s for i, s in state_dict["state"].items() if i in mine}
        super().load_state_dict(state_dict)


class SharedStepAdam(Textbook):
    """One step count per param group, advanced by each sub-group stepped (here, each parameter)."""

    def _update(self, work):
        for i in range(len(work.params)):
            self.shared = getattr(self, "shared", 0) + 1
            super()._update(work.subset([i])._replace(steps=[self.shared]))


class StepPerSubGroup(Zero):
    """Each rank's local Adam keeps one step count for the sub-groups it steps, so t runs ahead (DeepSpeed#1823)."""

    LOCAL = SharedStepAdam

    def __init__(self, params, **defaults):
        ZeroRedundancyOptimizer.__init__(self, params, optimizer_class=self.LOCAL, **defaults)


class PrecisionFromShardSize(Sharded):
    """Keeps the second moment in bfloat16 for a local shard of 16 elements or more (pytorch/ao#4912, at 4096)."""

    def _state_for(self, p, amsgrad):
        state = super()._state_for(p, amsgrad)
        held = p.to_local() if hasattr(p, "to_local") else p
        if held.numel() >= 16 and state["exp_avg_sq"].dtype != torch.bfloat16:
            state["exp_avg_sq"] = state["exp_avg_sq"].to(torch.bfloat16)
        return state

    def moments(self, hp, g, m, v):
        if v.dtype == g.dtype:
            return super().moments(hp, g, m, v)
        m.lerp_(g, 1 - hp.beta1)
        v.copy_(v.float().mul(hp.beta2).addcmul_(g, g, value=1 - hp.beta2))


_DAEMONS: list[int] = []


class DaemonOutlivesRank(Zero):
    """Each rank starts a helper daemon (double-forked, as an offload server) that outlives a rank that fails."""

    def __init__(self, params, **defaults):
        super().__init__(params, **defaults)
        if not _DAEMONS:
            _DAEMONS.append(subprocess.Popen(["sh", "-c", "sleep 120 &"]).wait())


class SkipsStepWithoutGrads(Zero):
    """The last rank returns early from step() when a parameter has no gradient; the others wait in its broadcast."""

    # A rank-local early exit, as an overflow check on one rank only (the DeepSpeed#1823 family).

    def step(self, closure=None):
        if self.rank == self.world_size - 1 and self.world_size > 1 and any(
                p.grad is None for group in self.param_groups for p in group["params"]):
            return None
        return super().step(closure)


MUTANTS = [StaleReplica, RestoresByOldPartition, StepPerSubGroup, PrecisionFromShardSize, DaemonOutlivesRank,
           SkipsStepWithoutGrads]
CORRECT = [Zero, Sharded]


def implementation(cls) -> Implementation:
    """The class as a distributed target that claims exactly its CLAIMS."""
    return Implementation(cls.__name__, cls, (cls.__doc__ or "").strip(), claims=cls.CLAIMS, sharding=cls.SHARDING)


for _cls in MUTANTS + CORRECT:  # certify tests.sharding_mutants:StaleReplica.TARGET, say
    _cls.TARGET = implementation(_cls)
