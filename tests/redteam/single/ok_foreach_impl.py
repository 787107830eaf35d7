"""Correct: "fused-like" multi-tensor AdamW built on torch._foreach_* ops, exported as an Implementation declaring float64/bfloat16.

Bug: none intended (mirrors torch's _multi_tensor_adam: tensors bucketed by dtype, complex via
view_as_real, per-parameter step tensors; a Tensor lr is read with .item()).
Modelled on: torch/optim/adam.py `_multi_tensor_adam`, apex FusedAdam's multi-tensor layout.
Spec: adamw.
"""
from collections import defaultdict

import torch

from conformance import Implementation


class ForeachAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 *, maximize=False):
        if not 0.0 <= lr or not 0.0 <= eps or not 0.0 <= weight_decay:
            raise ValueError("lr, eps and weight_decay must be >= 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Invalid beta parameters: {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = group["lr"].item() if torch.is_tensor(group["lr"]) else group["lr"]
            buckets = defaultdict(lambda: ([], [], [], [], [], []))
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64
                                              else torch.float32)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        st["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                g = -p.grad if group["maximize"] else p.grad
                ts = [p, g, st["exp_avg"], st["exp_avg_sq"]] + ([st["max_exp_avg_sq"]] if group["amsgrad"] else [])
                if p.is_complex():
                    ts = [torch.view_as_real(t) for t in ts]
                b = buckets[ts[0].dtype]
                for lst, t in zip(b, ts):
                    lst.append(t)
                b[5].append(st["step"])
            for ps, gs, ms, vs, vmaxs, steps in buckets.values():
                torch._foreach_add_(steps, 1)
                if group["weight_decay"] != 0:
                    torch._foreach_mul_(ps, 1 - lr * group["weight_decay"])
                torch._foreach_lerp_(ms, gs, 1 - beta1)
                torch._foreach_mul_(vs, beta2)
                torch._foreach_addcmul_(vs, gs, gs, 1 - beta2)
                if group["amsgrad"]:
                    torch._foreach_maximum_(vmaxs, vs)
                    vs = vmaxs
                ns = [s.item() for s in steps]
                step_sizes = [-(lr / (1 - beta1 ** n)) for n in ns]
                denom = torch._foreach_sqrt(vs)
                torch._foreach_div_(denom, [(1 - beta2 ** n) ** 0.5 for n in ns])
                torch._foreach_add_(denom, group["eps"])
                torch._foreach_addcdiv_(ps, ms, denom, step_sizes)
        return loss


TARGET = Implementation(
    name="foreach-adamw",
    factory=ForeachAdamW,
    description="multi-tensor AdamW on torch._foreach ops",
    spec="adamw",
    claims={"weight_decay", "amsgrad", "maximize", "complex", "tensor_lr", "closure", "float16", "bfloat16",
            "float64", "noncontiguous", "param_groups", "zero_dim", "empty"},
)
