"""Correct: multi-tensor Adam with torch._foreach_* ops, one bucket per dtype (torch's foreach path)."""
import torch
from conformance import Implementation

from tests.redteam.sharded._common import LoopAdam


def _real(ts):
    return [torch.view_as_real(t) if torch.is_complex(t) else t for t in ts]


class ForeachAdam(LoopAdam):
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            buckets = {}
            for p in group["params"]:
                if p.grad is not None:
                    st = self.state_for(p, group)
                    st["step"] += 1
                    buckets.setdefault(p.dtype, []).append((p, st))
            for items in buckets.values():
                self._foreach(group, [p for p, _ in items], [p.grad for p, _ in items], [s for _, s in items])
        return loss

    @staticmethod
    def _foreach(group, params, grads, states):
        lr, eps, wd = float(group["lr"]), group["eps"], group["weight_decay"]
        beta1, beta2 = (float(b) for b in group["betas"])
        params, grads = _real(params), _real(grads)
        m, v = _real([s["exp_avg"] for s in states]), _real([s["exp_avg_sq"] for s in states])
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        if wd != 0:
            if group["decoupled_weight_decay"]:
                torch._foreach_mul_(params, 1 - lr * wd)
            else:
                grads = torch._foreach_add(grads, params, alpha=wd)
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, 1 - beta2)
        steps = [float(s["step"]) for s in states]
        step_size = [(lr / (1 - beta1**t)) * -1 for t in steps]
        bc2_sqrt = [(1 - beta2**t) ** 0.5 for t in steps]
        if group["amsgrad"]:
            mx = _real([s["max_exp_avg_sq"] for s in states])
            torch._foreach_maximum_(mx, v)
            denom = torch._foreach_sqrt(mx)
        else:
            denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, eps)
        torch._foreach_addcdiv_(params, m, denom, step_size)


TARGET = Implementation("ok-decl-foreach", ForeachAdam, "multi-tensor Adam (torch._foreach_*)", "adam",
                        claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "complex",
                                "tensor_lr", "closure", "float16", "bfloat16", "float64", "noncontiguous",
                                "param_groups", "zero_dim", "empty"})
