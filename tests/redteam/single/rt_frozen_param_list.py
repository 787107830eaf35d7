"""Optax-port AdamW that captures its parameter "pytree" (groups and their params) once in __init__ and steps only those.

Bug: parameters added later with add_param_group (or appended to a group's "params" list) are
never updated, without any error.
Modelled on: optax's `opt_state = tx.init(params)` captured once, ported to torch; apex amp
replacing param groups (pytorch/ignite#545); torch's add_param_group docs (fine-tuning adds
unfrozen layers during training).
Spec: adamw.
"""
import torch


def adamw_update(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, *, lr, beta1, beta2,
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


class AdamW(torch.optim.Optimizer):
    """optax.adamw semantics on torch tensors; the parameter pytree is fixed at construction."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 *, maximize=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("invalid AdamW hyperparameters")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize))
        # like optax's opt_state, the leaves are captured once
        self._tree = [(group, list(group["params"])) for group in self.param_groups]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group, leaves in self._tree:
            ps, gs, ms, vs, vmaxs, ts = [], [], [], [], [], []
            for p in leaves:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        st["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                ps.append(p); gs.append(p.grad); ms.append(st["exp_avg"]); vs.append(st["exp_avg_sq"])
                ts.append(st["step"]); vmaxs.append(st.get("max_exp_avg_sq"))
            b1, b2 = group["betas"]
            adamw_update(ps, gs, ms, vs, vmaxs, ts, lr=group["lr"], beta1=b1, beta2=b2, eps=group["eps"],
                        weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
                        maximize=group["maximize"], decoupled=True)
        return loss


TARGET = AdamW
