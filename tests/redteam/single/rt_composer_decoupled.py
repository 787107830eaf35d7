"""Port of MosaicML Composer's DecoupledAdamW: weight decay scaled by lr / initial_lr instead of by lr.

Bug: each step multiplies the parameters by (1 - (lr / initial_lr) * weight_decay), i.e. by
(1 - weight_decay) at a constant lr, where torch.optim.AdamW uses (1 - lr * weight_decay); the
same weight_decay value decays ~1/lr times harder; param groups also gain an "initial_lr" key.
Modelled on: composer.optim.DecoupledAdamW docs ("fully decoupled" weight decay, decay scaled by
the schedule, not by lr); Loshchilov & Hutter's eta_t multiplier; pytorch/pytorch#21250
discussion of the three AdamW variants.
Spec: adamw.
"""
import torch
from torch.optim import AdamW


class DecoupledAdamW(AdamW):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-5, amsgrad=False):
        super().__init__(params=params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        for group in self.param_groups:
            group["initial_lr"] = group["lr"]

    @staticmethod
    def adamw(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, *, amsgrad, beta1, beta2,
              lr, initial_lr, weight_decay, eps):
        for i, param in enumerate(params):
            grad, exp_avg, exp_avg_sq = grads[i], exp_avgs[i], exp_avg_sqs[i]
            state_steps[i] += 1
            step = state_steps[i].item()
            # Perform stepweight decay, scaled by the schedule rather than by lr
            if weight_decay != 0:
                decay_factor = (lr / initial_lr) if initial_lr else 1.0
                param.mul_(1 - decay_factor * weight_decay)
            vmax = max_exp_avg_sqs[i] if amsgrad else None
            if torch.is_complex(param):
                param, grad, exp_avg, exp_avg_sq = map(torch.view_as_real, (param, grad, exp_avg, exp_avg_sq))
                vmax = torch.view_as_real(vmax) if vmax is not None else None
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1 ** step
            bias_correction2 = 1 - beta2 ** step
            if vmax is not None:
                torch.maximum(vmax, exp_avg_sq, out=vmax)
                exp_avg_sq = vmax
            denom = (exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(eps)
            param.addcdiv_(exp_avg, denom, value=-(lr / bias_correction1))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = [], [], [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                params.append(p); grads.append(p.grad); exp_avgs.append(state["exp_avg"])
                exp_avg_sqs.append(state["exp_avg_sq"]); steps.append(state["step"])
                max_exp_avg_sqs.append(state.get("max_exp_avg_sq"))
            beta1, beta2 = group["betas"]
            self.adamw(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, amsgrad=group["amsgrad"],
                       beta1=beta1, beta2=beta2, lr=group["lr"], initial_lr=group["initial_lr"],
                       weight_decay=group["weight_decay"], eps=group["eps"])
        return loss


TARGET = DecoupledAdamW
