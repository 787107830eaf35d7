"""Correct: the wrapper of rt_zero_unsynced_groups with its fix, ZeroRedundancyOptimizer's
_sync_param_groups: before each step the exposed groups' hyperparameters are copied into the
wrapped optimizer's groups."""
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import consolidated
from tests.redteam.sharded.rt_zero_unsynced_groups import ShardedAdam, owned_state


class SyncedShardedAdam(ShardedAdam):
    def step(self, closure=None):
        for group, inner in zip(self.param_groups, self.optim.param_groups):
            inner.update({k: v for k, v in group.items() if k != "params"})
        return super().step(closure)


def synced_sharded_adam(params, **kw):
    return SyncedShardedAdam(params, **kw)


TARGET = Implementation("ok-zero-wrap", synced_sharded_adam, "ZeRO wrapper over torch.optim.Adam, groups synced",
                        "adam", claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "tensor_lr",
                                        "closure", "float64", "noncontiguous", "param_groups", "zero_dim", "empty"},
                        sharding=Sharding("full", state=owned_state, save=consolidated))
