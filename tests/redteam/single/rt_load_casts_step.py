"""From-scratch Adam whose load_state_dict override casts every state tensor, step included, to the parameter's dtype and device.

Bug: after load_state_dict the step counter of a float16/bfloat16/float64 parameter takes the
parameter's dtype (bfloat16 stops counting at 256, float16 at 2048; complex params get a complex
step), so resumed runs diverge and the reloaded state_dict has the wrong step dtype.
Modelled on: pytorch/pytorch#74424 and PR #75214 ("Fix casting bug for state['step'] of
optimizers when loading state dict"), NVIDIA/apex#459 (state moved to the param in
load_state_dict).
Spec: adam.
"""
import torch


class Adam(torch.optim.Optimizer):
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

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        # checkpoints may come from another device / precision: match every state tensor to its param
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p, {})
                for k, v in st.items():
                    if torch.is_tensor(v):
                        st[k] = v.to(device=p.device, dtype=p.dtype)

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
                        p.mul_(1 - lr * wd)
                    else:
                        grad = grad.add(p, alpha=wd)
                param, m, v = p, state["exp_avg"], state["exp_avg_sq"]
                vmax = state.get("max_exp_avg_sq")
                if torch.is_complex(p):
                    param, grad, m, v = (torch.view_as_real(t) for t in (p, grad, m, v))
                    vmax = torch.view_as_real(vmax) if vmax is not None else None
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
        return loss


TARGET = Adam
