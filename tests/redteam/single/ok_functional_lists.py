"""Correct: optax-style Adam/AdamW: step() gathers lists and calls a pure function written with rearranged algebra (bias-corrected moments first).

Bug: none intended (m_hat / (sqrt(v_hat) + eps) computed as written in the paper; the
difference from torch's sqrt(v)/sqrt(bc2) + eps order is rounding only).
Modelled on: optax.scale_by_adam (eps outside the sqrt, eps_root = 0) ported to torch tensors.
Spec: adam.
"""
import torch


def adam(params, grads, mus, nus, nu_maxs, counts, *, lr, b1, b2, eps, wd, amsgrad, maximize, decoupled):
    for p, g, mu, nu, nu_max, count in zip(params, grads, mus, nus, nu_maxs, counts):
        if maximize:
            g = -g
        count += 1
        t = count.item()
        if wd != 0:
            if decoupled:
                p.mul_(1 - lr * wd)
            else:
                g = g + wd * p
        if torch.is_complex(p):
            p, g, mu, nu = (torch.view_as_real(x) for x in (p, g, mu, nu))
            nu_max = torch.view_as_real(nu_max) if nu_max is not None else None
        mu.mul_(b1).add_(g, alpha=1 - b1)
        nu.mul_(b2).add_(g * g, alpha=1 - b2)
        if amsgrad:
            torch.maximum(nu_max, nu, out=nu_max)
        mu_hat = mu / (1 - b1 ** t)
        nu_hat = (nu_max if amsgrad else nu) / (1 - b2 ** t)
        p.sub_(lr * mu_hat / (nu_hat.sqrt() + eps))


class Adam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 *, maximize=False, decoupled_weight_decay=False):
        if not (lr >= 0 and eps >= 0 and weight_decay >= 0):
            raise ValueError("lr, eps and weight_decay must be >= 0")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Invalid beta parameters: {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lists = ([], [], [], [], [], [])
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:  # (added: the red team's first version took sparse gradients)
                    raise RuntimeError("sparse gradients are not supported")
                s = self.state[p]
                if not s:
                    s["step"] = torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64
                                             else torch.float32)
                    s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        s["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                for lst, x in zip(lists, (p, p.grad, s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq"), s["step"])):
                    lst.append(x)
            b1, b2 = group["betas"]
            adam(*lists, lr=group["lr"], b1=b1, b2=b2, eps=group["eps"], wd=group["weight_decay"],
                 amsgrad=group["amsgrad"], maximize=group["maximize"], decoupled=group["decoupled_weight_decay"])
        return loss


TARGET = Adam
