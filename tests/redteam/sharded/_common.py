"""Shared pieces of the red-team optimizers (not a target itself).

`LoopAdam`   a per-parameter Adam loop, torch.optim.Adam's single-tensor path op for op.
`ZeroAdam`   ZeRO-1 over whole parameters: parameter i is owned by rank i % world, the owner
             keeps its state and steps it, then every parameter is broadcast from its owner.
`ShardAdam`  Adam over DTensor Shard(0) parameters: the math runs on each rank's local rows,
             the state is DTensor (zeros_like of the parameter).
`consolidated(opt)` the whole state_dict of a ZeroAdam on every rank (all_gather_object).

Each is correct; the rt_* modules subclass them and change one thing.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # pragma: no cover
    DTensor = ()


def local(t):
    """The local shard of a DTensor, or `t` itself."""
    return t.to_local() if isinstance(t, DTensor) else t


def check(lr, betas, eps, weight_decay):
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")


def init_state(p, amsgrad, dtype=None):
    """Adam's state for `p`: step (0-d float32) and zero moments in p's layout."""
    z = lambda: torch.zeros_like(p, dtype=dtype, memory_format=torch.preserve_format)
    st = {"step": torch.tensor(0.0, dtype=torch.float32), "exp_avg": z(), "exp_avg_sq": z()}
    if amsgrad:
        st["max_exp_avg_sq"] = z()
    return st


def adam_update(param, grad, st, group, step=None):
    """One step of torch.optim.Adam (foreach=False) on one tensor; st["step"] already counted."""
    lr, eps, wd = float(group["lr"]), group["eps"], group["weight_decay"]
    beta1, beta2 = (float(b) for b in group["betas"])
    step = float(st["step"]) if step is None else step
    if group["maximize"]:
        grad = -grad
    if wd != 0:
        if group["decoupled_weight_decay"]:
            param.mul_(1 - lr * wd)
        else:
            grad = grad.add(param, alpha=wd)
    exp_avg, exp_avg_sq, mx = st["exp_avg"], st["exp_avg_sq"], st.get("max_exp_avg_sq")
    if torch.is_complex(param):
        grad, exp_avg, exp_avg_sq, param = map(torch.view_as_real, (grad, exp_avg, exp_avg_sq, param))
        mx = None if mx is None else torch.view_as_real(mx)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    if group["amsgrad"]:
        torch.maximum(mx, exp_avg_sq, out=mx)
        denom = (mx.sqrt() / bias_correction2_sqrt).add_(eps)
    else:
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


class LoopAdam(torch.optim.Optimizer):
    """torch.optim.Adam as a per-parameter loop (the single-tensor path)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        check(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def steps_here(self, p):
        """Whether this process steps `p` (every parameter, in one process)."""
        return True

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.before_step()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and self.steps_here(p):
                    self.update(p, p.grad, group)
        self.after_step()
        return loss

    def before_step(self):
        pass

    def after_step(self):
        pass

    def state_for(self, p, group):
        st = self.state[p]
        if not st:
            st.update(init_state(p, group["amsgrad"]))
        return st

    def update(self, p, grad, group):
        st = self.state_for(p, group)
        st["step"] += 1
        self.math(p, grad, st, group)

    def math(self, p, grad, st, group):
        adam_update(p, grad, st, group)


class ZeroAdam(LoopAdam):
    """ZeRO-1 over whole parameters: round-robin owners, owner steps, broadcast from the owner."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()

    def owners(self):
        """Owner rank of each parameter (global index i -> i % world); stable under add_param_group."""
        return {p: i % self.world for i, p in enumerate(self.all_params())}

    def before_step(self):
        self._owners = self.owners()

    def steps_here(self, p):
        return self._owners.get(p) == self.rank

    def after_step(self):
        self.sync(self._owners)

    def sync(self, owners):
        for p, src in owners.items():
            buf = p if p.is_contiguous() else p.contiguous()
            dist.broadcast(buf, src=src)
            if buf is not p:
                p.copy_(buf)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)  # the whole state, then keep what this rank owns
        owners = self.owners()
        for p in list(self.state):
            if owners.get(p) != self.rank:
                del self.state[p]


class ShardAdam(LoopAdam):
    """Adam over DTensor Shard(0) parameters, elementwise on each rank's local rows."""

    def math(self, p, grad, st, group):
        adam_update(local(p), local(grad), {k: local(v) for k, v in st.items()}, group)


def owned_state(opt):
    return opt.state


def consolidated(opt):
    """The whole state_dict on every rank: each rank's owned state, all-gathered."""
    sd = opt.state_dict()
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, sd["state"])
    state = {}
    for part in parts:
        state.update(part)
    return {"state": dict(sorted(state.items())), "param_groups": sd["param_groups"]}
