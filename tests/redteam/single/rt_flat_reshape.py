"""Flat-buffer style Adam: step() flattens every parameter, gradient and moment with reshape(-1) and calls a pure list update.

Bug: reshape(-1) returns a copy for a non-contiguous parameter (a transposed or sliced one), so
the in-place update lands in the copy and such parameters never change (their moments and step
counters do advance).
Modelled on: pytorch/xla#870 ("Loss doesn't backprop through copy-based reshapes"),
pytorch/pytorch#126625 / #130346 (view(-1) vs reshape(-1) on non-contiguous tensors in
optimizers).
Spec: adam.
"""
import torch


def adam_update(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, *, lr, beta1, beta2,
                eps, weight_decay, amsgrad, maximize, decoupled):
    for i, p in enumerate(params):
        g = -grads[i] if maximize else grads[i]
        m, v, t = exp_avgs[i], exp_avg_sqs[i], steps[i]
        t += 1
        if weight_decay != 0:
            if decoupled:
                p.mul_(1 - lr * weight_decay)
            else:
                g = g.add(p, alpha=weight_decay)
        vmax = max_exp_avg_sqs[i] if amsgrad else None
        if torch.is_complex(p):
            p, g, m, v = (torch.view_as_real(x) for x in (p, g, m, v))
            vmax = torch.view_as_real(vmax) if vmax is not None else None
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        n = t.item()
        if vmax is not None:
            torch.maximum(vmax, v, out=vmax)
            v = vmax
        denom = (v.sqrt() / (1 - beta2 ** n) ** 0.5).add_(eps)
        p.addcdiv_(m, denom, value=-(lr / (1 - beta1 ** n)))


class FlatAdam(torch.optim.Optimizer):
    """Runs the update on flattened 1-d views, so one code path serves every shape."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 *, maximize=False, decoupled_weight_decay=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("invalid Adam hyperparameters")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            ps, gs, ms, vs, vmaxs, ts = [], [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                    if group["amsgrad"]:
                        st["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
                flat = lambda t: t.reshape(-1) if t is not None else None  # noqa: E731
                ps.append(flat(p)); gs.append(flat(p.grad)); ms.append(flat(st["exp_avg"]))
                vs.append(flat(st["exp_avg_sq"])); ts.append(st["step"]); vmaxs.append(flat(st.get("max_exp_avg_sq")))
            b1, b2 = group["betas"]
            adam_update(ps, gs, ms, vs, vmaxs, ts, lr=group["lr"], beta1=b1, beta2=b2, eps=group["eps"],
                        weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                        maximize=group["maximize"], decoupled=group["decoupled_weight_decay"])
        return loss


TARGET = FlatAdam
