"""JAX-style AdamW: a pure function returns new parameters and moments, and the wrapper rebinds them with p.data = new_p.

Bug: the values are right, but parameters are replaced instead of updated in place: p.data now
points at new storage, so views of the parameter (tied/sliced weights, p.view(...) held by a
module, buffers shared with another model, data_ptr-based bucketing) keep the old values.
Modelled on: optax `apply_updates` ports (params = tree_map(lambda p, u: p + u, ...)) and the
`p.data = ...` idiom; torch docs (optimizers must update parameters in place).
Spec: adamw.
"""
import torch


def adamw(p, g, m, v, vmax, t, *, lr, beta1, beta2, eps, wd):
    """Pure AdamW step: returns (new_p, new_m, new_v, new_vmax). t is the 1-based step."""
    real = torch.view_as_real if p.is_complex() else (lambda x: x)
    x, g, m, v = real(p), real(g), real(m), real(v)
    x = x * (1 - lr * wd)
    m = m.lerp(g, 1 - beta1)
    v = v.mul(beta2).addcmul(g, g, value=1 - beta2)
    if vmax is not None:
        vmax = torch.maximum(real(vmax), v)
    denom = ((vmax if vmax is not None else v).sqrt() / (1 - beta2 ** t) ** 0.5).add(eps)
    x = x.addcdiv(m, denom, value=-(lr / (1 - beta1 ** t)))
    back = torch.view_as_complex if p.is_complex() else (lambda y: y)
    return back(x), back(m), back(v), (back(vmax) if vmax is not None else None)


class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 *, maximize=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("invalid AdamW hyperparameters")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                s = self.state[p]
                if not s:
                    s["step"] = torch.tensor(0.0)
                    s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        s["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s["step"] += 1
                g = -p.grad if group["maximize"] else p.grad
                new_p, s["exp_avg"], s["exp_avg_sq"], vmax = adamw(
                    p.detach(), g, s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq"), s["step"].item(),
                    lr=group["lr"], beta1=b1, beta2=b2, eps=group["eps"], wd=group["weight_decay"])
                if vmax is not None:
                    s["max_exp_avg_sq"] = vmax
                p.data = new_p
        return loss


TARGET = AdamW
