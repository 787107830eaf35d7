"""Mixed-precision Adam that keeps an fp32 master copy and fp32 moments for float16/bfloat16 parameters, updates the master and copies it back.

Bug: for half-precision parameters the arithmetic is done on an fp32 master copy (state gets an
extra "master_param" and fp32 exp_avg/exp_avg_sq), so small updates accumulate instead of being
rounded away; the parameters and state differ from torch.optim.Adam, which steps fp16/bf16
tensors in their own dtype. float32/float64 parameters follow torch exactly.
Modelled on: apex amp O2 / DeepSpeed FP16_Optimizer master weights, facebookresearch/fairscale#50
(fp32 state for fp16 params), mitsuba-renderer/drjit#411 ("keep the whole optimizer state in
fp32"), Nerogar/OneTrainer#1005.
Spec: adam.
"""
import torch

_HALF = (torch.float16, torch.bfloat16)


def adam_math(x, g, m, v, vmax, t, *, lr, beta1, beta2, eps, wd, decoupled):
    if wd != 0:
        if decoupled:
            x.mul_(1 - lr * wd)
        else:
            g = g.add(x, alpha=wd)
    if torch.is_complex(x):
        x, g, m, v = (torch.view_as_real(y) for y in (x, g, m, v))
        vmax = torch.view_as_real(vmax) if vmax is not None else None
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    if vmax is not None:
        torch.maximum(vmax, v, out=vmax)
        v = vmax
    x.addcdiv_(m, (v.sqrt() / (1 - beta2 ** t) ** 0.5).add_(eps), value=-(lr / (1 - beta1 ** t)))


class MasterWeightAdam(torch.optim.Optimizer):
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
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                half = p.dtype in _HALF
                s = self.state[p]
                if not s:
                    s["step"] = torch.tensor(0.0)
                    if half:
                        s["master_param"] = p.detach().float()
                    like = s["master_param"] if half else p
                    s["exp_avg"] = torch.zeros_like(like, memory_format=torch.preserve_format)
                    s["exp_avg_sq"] = torch.zeros_like(like, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        s["max_exp_avg_sq"] = torch.zeros_like(like, memory_format=torch.preserve_format)
                s["step"] += 1
                g = -p.grad if group["maximize"] else p.grad
                x = s["master_param"] if half else p
                adam_math(x, g.float() if half else g, s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq"),
                          s["step"].item(), lr=group["lr"], beta1=b1, beta2=b2, eps=group["eps"],
                          wd=group["weight_decay"], decoupled=group["decoupled_weight_decay"])
                if half:
                    p.copy_(x)
        return loss


TARGET = MasterWeightAdam
