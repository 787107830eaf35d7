"""The CUDA mutant zoo: bugs that show only on a GPU, each one small change from a correct
GPU optimizer, each documented in one line. On the CPU every one of them passes parity
(tests/test_cuda.py shows it); with CUDA the suite must catch every one at the quick
profile (tests/test_kill_matrix.py, which skips them where CUDA is absent).

`DeviceAdam` is a capturable Adam: the step count, the bias corrections and a tensor lr
stay on the device, so that step() can be captured in a CUDA graph and replayed. It takes
the bias corrections in float64, as torch's fused kernels do, so that it is within the
for-loop path's budget on the CPU too.
"""

from __future__ import annotations

import torch

from conformance.registry import Implementation
from impls import triton_fused


class DeviceAdam(torch.optim.Optimizer):
    """A capturable Adam: step count, bias corrections (in float64) and lr on the device."""

    CLAIMS = frozenset({"param_groups", "tensor_lr", "weight_decay", "capturable"})

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def new_step(self, p: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=torch.float32, device=p.device)

    def lr(self, group: dict):
        return group["lr"]

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr = self.lr(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = self.new_step(p)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t, m, v = state["step"].double(), state["exp_avg"], state["exp_avg_sq"]
                grad = p.grad if group["weight_decay"] == 0 else p.grad.add(p, alpha=group["weight_decay"])
                m.lerp_(grad, 1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size_neg = -(lr / (1 - beta1**t))
                denom = (v.sqrt() / ((1 - beta2**t).sqrt() * step_size_neg)).add_(group["eps"] / step_size_neg)
                p.addcdiv_(m, denom)


class HostStepCounter(DeviceAdam):
    """Keeps state['step'] on the host: under capture it advances once and the graph bakes in its bias corrections."""

    def new_step(self, p):
        return torch.zeros((), dtype=torch.float32)


class LrBakedIntoGraph(DeviceAdam):
    """Reads lr on the host and reuses it under capture: the graph bakes in the first lr, a fill_ is lost."""

    def lr(self, group):
        if not (torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()):
            group["host_lr"] = float(group["lr"])
        return group["host_lr"]


class TemporariesInStep(DeviceAdam):
    """Declares allocation_free (a fused kernel's promise) yet makes temporaries in every step."""

    CLAIMS = DeviceAdam.CLAIMS | {"allocation_free"}


class TailSkippedOnDevice(triton_fused.TritonAdam):
    """The Triton kernel's grid counts whole blocks only on the device: every tensor's last partial block is skipped."""

    CLAIMS = triton_fused.ADAM.claims

    def blocks(self, numels, device):
        whole = lambda b: b[1] + triton_fused.BLOCK <= numels[b[0]]
        return [b for b in super().blocks(numels, device) if device.type != "cuda" or whole(b)]


MUTANTS = [HostStepCounter, LrBakedIntoGraph, TemporariesInStep, TailSkippedOnDevice]
CORRECT = [DeviceAdam]


def implementation(cls) -> Implementation:
    """The class as a target that claims exactly its CLAIMS."""
    devices = triton_fused.ADAM.devices if issubclass(cls, triton_fused.TritonAdam) else ("cpu", "cuda")
    return Implementation(cls.__name__, cls, (cls.__doc__ or "").strip(), claims=cls.CLAIMS, devices=devices)
