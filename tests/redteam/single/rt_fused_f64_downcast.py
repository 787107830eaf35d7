"""A "fused-like" Adam exported as an Implementation that declares float64 and bfloat16 support, but whose kernel does all arithmetic in float32.

Bug: every operand is loaded as float32 and stored back (apex's MATH_T = float), so float64
parameters and state are computed to ~1e-7 relative precision instead of float64's ~1e-16;
float16/bfloat16 are computed in fp32 and rounded once (differs from torch's CPU half path by
rounding); float32 is exact.
Modelled on: apex csrc/multi_tensor_adam.cu and torch's _fused_adam (fp32 math type for
reduced-precision inputs); deepspeedai/DeepSpeed PR #3434 (FusedAdam dtype support); the
Implementation(claims={"float64", "bfloat16"}) example in the suite's README.
Spec: adam.
"""
import torch

from conformance import Implementation


class FusedAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameters: {betas}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = -p.grad if group["maximize"] else p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        p.mul_(1 - lr * wd)  # (applied by the "kernel" prologue)
                    else:
                        grad = grad.add(p, alpha=wd)
                param, m, v = p, state["exp_avg"], state["exp_avg_sq"]
                vmax = state.get("max_exp_avg_sq")
                if torch.is_complex(p):
                    param, grad, m, v = (torch.view_as_real(t) for t in (p, grad, m, v))
                    vmax = torch.view_as_real(vmax) if vmax is not None else None
                # "kernel": load every operand as fp32 (MATH_T = float), store back in the tensor's dtype
                outs = (param, m, v, vmax)
                param, grad, m, v = (t.float() for t in (param, grad, m, v))
                vmax = vmax.float() if vmax is not None else None
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = state["step"].item()
                bc1 = 1 - beta1 ** step
                bc2_sqrt = (1 - beta2 ** step) ** 0.5
                if vmax is not None:
                    torch.maximum(vmax, v, out=vmax)
                    denom = (vmax.sqrt() / bc2_sqrt).add_(eps)
                else:
                    denom = (v.sqrt() / bc2_sqrt).add_(eps)
                param.addcdiv_(m, denom, value=-(lr / bc1))
                for dst, src in zip(outs, (param, m, v, vmax)):
                    if dst is not None and dst is not src:
                        dst.copy_(src)
        return loss


TARGET = Implementation(
    name="fusedlike-adam",
    factory=FusedAdam,
    description="fused-style multi-tensor Adam; fp32 math for every dtype",
    spec="adam",
    claims={"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "complex", "tensor_lr", "closure", "float16", "bfloat16", "float64", "noncontiguous", "param_groups", "zero_dim", "empty"},
)
