"""AdamW (Implementation, declaring bfloat16) that writes bfloat16 weights back with stochastic rounding drawn from the global RNG.

Bug: for bfloat16 parameters the update is computed in fp32 and rounded stochastically, so the
weights differ from torch's deterministic bf16 AdamW (by up to one bf16 ulp per step, drifting),
and every step consumes the global torch RNG (torch.randint_like), changing the random stream
of the user's program; other dtypes are exact.
Modelled on: pytorch/ao PR #1124 ("Add BF16 stochastic rounding option for optimizers",
torchao _AdamW(bf16_stochastic_round=True)), karpathy/llm.c adamw stochastic rounding,
pytorch/pytorch#120376.
Spec: adamw.
"""
import torch

from conformance import Implementation


def _stochastic_round_to_bf16(x):
    """fp32 -> bf16 with stochastic rounding: add random low 16 bits, then truncate (llm.c / torchao)."""
    bits = x.view(torch.int32)
    noise = torch.randint_like(bits, 0, 1 << 16)
    return ((bits + noise) & -65536).view(torch.float32).to(torch.bfloat16)


class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameters: {betas}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize)
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
                if wd != 0 and p.dtype != torch.bfloat16:
                    p.mul_(1 - lr * wd)
                sr = p.dtype == torch.bfloat16
                if sr:  # do the math in fp32, write the weight back with stochastic rounding
                    param, grad = p.float(), grad.float()
                    m32, v32 = state["exp_avg"].float(), state["exp_avg_sq"].float()
                    m, v = m32, v32
                else:
                    param, m, v = p, state["exp_avg"], state["exp_avg_sq"]
                vmax = state.get("max_exp_avg_sq")
                if torch.is_complex(p):
                    param, grad, m, v = (torch.view_as_real(t) for t in (p, grad, m, v))
                    vmax = torch.view_as_real(vmax) if vmax is not None else None
                if sr and wd != 0:
                    param.mul_(1 - lr * wd)
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = state["step"].item()
                bc1 = 1 - beta1 ** step
                bc2_sqrt = (1 - beta2 ** step) ** 0.5
                if vmax is not None:
                    vmax_dst = vmax
                    vmax = vmax.float()
                    torch.maximum(vmax, v, out=vmax)
                    vmax_dst.copy_(vmax)
                    denom = (vmax.sqrt() / bc2_sqrt).add_(eps)
                else:
                    denom = (v.sqrt() / bc2_sqrt).add_(eps)
                param.addcdiv_(m, denom, value=-(lr / bc1))
                if sr:
                    p.copy_(_stochastic_round_to_bf16(param))
                    state["exp_avg"].copy_(m32)
                    state["exp_avg_sq"].copy_(v32)
        return loss


TARGET = Implementation(
    name="sr-bf16-adamw",
    factory=AdamW,
    description="AdamW with bf16 stochastic rounding for bf16 weights",
    spec="adamw",
    claims={"weight_decay", "amsgrad", "maximize", "complex", "tensor_lr", "closure", "float16", "bfloat16", "float64", "noncontiguous", "param_groups", "zero_dim", "empty"},
)
