"""Optax-port Adam that names its state mu/nu/count and translates to torch names only in state_dict().

Bug: state_dict() writes torch's keys (exp_avg, exp_avg_sq, step) so checkpoints look like
torch's, but load_state_dict() is inherited and step() looks for "mu": after a save/load round
trip the moments and count silently restart from zero.
Modelled on: optax `ScaleByAdamState(count, mu, nu)` ports to torch; checkpoint/resume bugs such
as tensorflow/tensorflow#48947 (optimizer.iterations not restored) and
titu1994/keras-adabound#4.
Spec: adam.
"""
import torch

_TORCH_NAMES = {"mu": "exp_avg", "nu": "exp_avg_sq", "nu_max": "max_exp_avg_sq", "count": "step"}


class Adam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        if not 0.0 <= lr or not 0.0 <= eps or not 0.0 <= weight_decay:
            raise ValueError("invalid hyperparameter")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Invalid beta parameters: {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def state_dict(self):
        sd = super().state_dict()
        sd["state"] = {i: {_TORCH_NAMES.get(k, k): v for k, v in s.items()} for i, s in sd["state"].items()}
        return sd

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = -p.grad if group["maximize"] else p.grad
                s = self.state[p]
                if "mu" not in s:
                    s["count"] = torch.tensor(0.0)
                    s["mu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    s["nu"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        s["nu_max"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s["count"] += 1
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        p.mul_(1 - lr * wd)
                    else:
                        g = g.add(p, alpha=wd)
                x, mu, nu, nu_max = p, s["mu"], s["nu"], s.get("nu_max")
                if torch.is_complex(p):
                    x, g, mu, nu = (torch.view_as_real(t) for t in (p, g, mu, nu))
                    nu_max = torch.view_as_real(nu_max) if nu_max is not None else None
                mu.lerp_(g, 1 - b1)
                nu.mul_(b2).addcmul_(g, g, value=1 - b2)
                t = s["count"].item()
                if nu_max is not None:
                    torch.maximum(nu_max, nu, out=nu_max)
                    nu = nu_max
                denom = (nu.sqrt() / (1 - b2 ** t) ** 0.5).add_(eps)
                x.addcdiv_(mu, denom, value=-(lr / (1 - b1 ** t)))
        return loss


TARGET = Adam
