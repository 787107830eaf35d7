"""BUG: Adam that caches its hyperparameters in __init__ ("no dict lookups in the hot loop") and
reads the cache in step(): per-group lr/betas/eps/weight_decay given as param-group dicts or by
add_param_group, and any later change to param_groups (an LR scheduler, a Tensor lr updated in
place), are ignored. Declares param_groups and tensor_lr.
"""
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam, adam_update


class CachedHparamAdam(LoopAdam):
    def __init__(self, params, *args, **kwargs):
        super().__init__(params, *args, **kwargs)
        self._hp = {k: v for k, v in self.defaults.items()}
        self._hp["lr"] = float(self._hp["lr"])

    def math(self, p, grad, st, group):
        adam_update(p, grad, st, self._hp)


TARGET = Implementation("rt-decl-cached-hparams", CachedHparamAdam, "Adam with cached hyperparameters", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "tensor_lr",
                                "param_groups", "closure", "float64", "zero_dim", "empty"})
