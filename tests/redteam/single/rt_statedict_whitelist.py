"""From-scratch Adam whose state_dict keeps only the keys of a plain torch Adam checkpoint (step, exp_avg, exp_avg_sq).

Bug: with amsgrad=True, max_exp_avg_sq is missing from state_dict(); after a save/load round
trip it is lazily re-created as zeros, so the resumed run diverges from an uninterrupted one.
Modelled on: checkpoint "slimming" overrides; fairscale#50 and ParlAI#2512 (optimizer state not
round-tripping through state_dict), torchrec#2244 (optimizer state left out of checkpoints).
Spec: adam.
"""
import torch

# what a torch.optim.Adam checkpoint holds, so our checkpoints load into plain torch Adam
_CHECKPOINT_KEYS = ("step", "exp_avg", "exp_avg_sq")


class Adam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameters: {betas}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def state_dict(self):
        sd = super().state_dict()
        sd["state"] = {i: {k: v for k, v in s.items() if k in _CHECKPOINT_KEYS}
                       for i, s in sd["state"].items()}
        return sd

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["amsgrad"] and "max_exp_avg_sq" not in state:
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        p.mul_(1 - lr * wd)
                    else:
                        grad = grad.add(p, alpha=wd)
                param, m, v = p, state["exp_avg"], state["exp_avg_sq"]
                vmax = state.get("max_exp_avg_sq")
                if torch.is_complex(p):
                    param, grad, m, v = (torch.view_as_real(t) for t in (p, grad, m, v))
                    vmax = torch.view_as_real(vmax) if vmax is not None else None
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = state["step"].item()
                bc1 = 1 - beta1 ** step
                bc2_sqrt = (1 - beta2 ** step) ** 0.5
                if vmax is not None:
                    torch.maximum(vmax, v, out=vmax)
                    denom = (vmax.sqrt() / bc2_sqrt).add_(eps)
                else:
                    denom = (v.sqrt() / bc2_sqrt).add_(eps)
                param.addcdiv_(m, denom, value=-(lr / bc1))
        return loss


TARGET = Adam
