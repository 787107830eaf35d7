"""BUG: fairscale-OSS-style wrapper around a torch.optim.Adam over this rank's parameters that never
copies the exposed param_groups' hyperparameters into the wrapped optimizer's groups: an lr (or any
hyperparameter) changed after construction, or restored by load_state_dict, is ignored.
add_param_group *is* forwarded, so the parameters themselves are all stepped.
"""
import torch
import torch.distributed as dist
from conformance import Implementation, Sharding

from tests.redteam.sharded._common import consolidated


class ShardedAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        self.rank, self.world, self.optim = dist.get_rank(), dist.get_world_size(), None
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)
        self.optim = torch.optim.Adam([self._owned(g) for g in self.param_groups], foreach=False, **defaults)
        self.state = self.optim.state

    def _index(self):
        return {p: i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}

    def _owned(self, group):
        index = self._index()
        return {**group, "params": [p for p in group["params"] if index[p] % self.world == self.rank]}

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if self.optim is not None:
            self.optim.add_param_group(self._owned(self.param_groups[-1]))

    @torch.no_grad()
    def step(self, closure=None):
        loss = self.optim.step(closure)
        for p, i in self._index().items():
            buf = p if p.is_contiguous() else p.contiguous()
            dist.broadcast(buf, src=i % self.world)
            if buf is not p:
                p.copy_(buf)
        return loss

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        index = self._index()
        self.optim.state.clear()
        self.optim.state.update({p: s for p, s in self.state.items() if index[p] % self.world == self.rank})
        self.state = self.optim.state


def sharded_adam(params, **kw):
    return ShardedAdam(params, **kw)


def owned_state(opt):
    return opt.optim.state


TARGET = Implementation("rt-zero-unsynced-groups", sharded_adam, "ZeRO wrapper over torch.optim.Adam", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "tensor_lr",
                                "closure", "float64", "noncontiguous", "param_groups", "zero_dim", "empty"},
                        sharding=Sharding("full", state=owned_state, save=consolidated))
