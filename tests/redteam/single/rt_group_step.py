"""Python fallback of an apex/DeepSpeed-style FusedAdam that keeps one step counter per param group.

Bug: group["step"] is incremented once per step() for the whole group and used for every
parameter's bias correction, so a parameter that had no gradient on some steps (or first gets
one late) is bias-corrected with the group's count instead of its own; state has no "step".
Modelled on: deepspeedai/DeepSpeed PR #8471 ("track FusedAdam bias correction per parameter"),
NVIDIA/apex PR #1615 (move "step" from param_groups to state), NVIDIA/TransformerEngine #3318.
Spec: adam.
"""
import torch


class FusedAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8,
                 weight_decay=0.0, amsgrad=False, *, maximize=False):
        defaults = dict(lr=lr, bias_correction=bias_correction, betas=betas, eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if len(group["params"]) == 0:
                continue
            beta1, beta2 = group["betas"]
            # assume same step across group now to simplify things
            if "step" in group:
                group["step"] += 1
            else:
                group["step"] = 1
            step = group["step"]
            bc1 = 1 - beta1 ** step if group["bias_correction"] else 1.0
            bc2_sqrt = (1 - beta2 ** step) ** 0.5 if group["bias_correction"] else 1.0
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if wd != 0:
                    grad = grad.add(p, alpha=wd)
                param, m, v, vmax = p, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq")
                if torch.is_complex(p):
                    param, grad, m, v = (torch.view_as_real(t) for t in (p, grad, m, v))
                    vmax = torch.view_as_real(vmax) if vmax is not None else None
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if vmax is not None:
                    torch.maximum(vmax, v, out=vmax)
                    v = vmax
                denom = (v.sqrt() / bc2_sqrt).add_(eps)
                param.addcdiv_(m, denom, value=-(lr / bc1))
        return loss


TARGET = FusedAdam
