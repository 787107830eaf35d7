"""Correct: from-scratch Adam that does each parameter's arithmetic in float64 and stores the results back in the parameter's dtype.

Bug: none intended (same algorithm as torch.optim.Adam; only the rounding of intermediate values
differs, and state keeps torch's keys, dtypes and layout). float16/bfloat16 parameters are
computed in their own dtype, as torch does: there eps=1e-8 underflows and a zero second moment
gives torch an inf/NaN update, which float64 arithmetic would not reproduce.
Modelled on: "compute in higher precision" reference optimizers used in tests.
Spec: adam.
"""
import torch


class Float64Adam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, b in enumerate(betas):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def load_state_dict(self, state_dict):
        for s in state_dict["state"].values():
            if "step" in s and not torch.is_tensor(s["step"]):
                s["step"] = torch.tensor(float(s["step"]))  # checkpoints written with an int step
        super().load_state_dict(state_dict)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = (float(b) for b in group["betas"])
            lr, eps, wd = float(group["lr"]), group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:  # (added: the red team's first version took sparse gradients)
                    raise RuntimeError("sparse gradients are not supported")
                st = self.state[p]
                if not st:
                    scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
                    st["step"] = torch.tensor(0.0, dtype=scalar)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        st["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                t = st["step"].item()
                real = torch.view_as_real if p.is_complex() else (lambda x: x)
                stored = [real(p), real(st["exp_avg"]), real(st["exp_avg_sq"])]
                if group["amsgrad"]:
                    stored.append(real(st["max_exp_avg_sq"]))
                work = p.dtype if p.dtype in (torch.float16, torch.bfloat16) else torch.float64
                x, m, v, *vm = (s.to(work) for s in stored)
                g = real(p.grad).to(work)
                if group["maximize"]:
                    g = -g
                if wd != 0:
                    if group["decoupled_weight_decay"]:
                        x = x * (1 - lr * wd)
                    else:
                        g = g + wd * x
                m = beta1 * m + (1 - beta1) * g
                v = beta2 * v + (1 - beta2) * g * g
                if vm:
                    vm[0] = torch.maximum(vm[0], v)
                vhat = (vm[0] if vm else v) / (1 - beta2 ** t)
                x = x - (lr / (1 - beta1 ** t)) * m / (vhat.sqrt() + eps)
                for dst, src in zip(stored, [x, m, v, *vm]):
                    dst.copy_(src)
        return loss


TARGET = Float64Adam
