"""What the installed torch's Adam can do, asked of torch itself, not read off its version.

Between nearby releases Adam drifts in features, signatures, errors and state layout far
more often than in numbers (``decoupled_weight_decay`` and ``AdamW(Adam)`` came in 2.7,
a one-element Tensor lr in 2.8, ...). So the suite asks: the constructor's signature, the
class hierarchy, the devices torch's fused kernels run on, and small probes where no
signature shows the answer. A feature the installed torch lacks cannot be held against a
target, since torch's own path sets every budget: checks that need it are skipped with
that reason (`lacking`).
"""

from __future__ import annotations

import functools
import inspect
import io

import torch

#: Features of torch's Adam, each with what it means.
FEATURES = {
    "decoupled_weight_decay": "Adam takes decoupled_weight_decay (torch 2.7)",
    "adamw_is_adam": "AdamW is a subclass of Adam (torch 2.7)",
    "fused_cpu": "fused=True runs on the CPU (torch 2.4)",
    "tensor_lr": "lr may be a 0-d Tensor on the single-tensor path",
    "tensor_betas": "betas may be Tensors (torch 2.6)",
    "weights_only": "torch.load(weights_only=True) loads a state_dict",
    "param_names": "param groups carry param_names into the state_dict (torch 2.6)",
}

#: The registry features that need one of torch's: without it, torch's reference path
#: cannot run the Cases that exercise them.
NEEDED_BY = {"decoupled_weight_decay": "decoupled_weight_decay", "tensor_lr": "tensor_lr"}


@functools.cache
def detect() -> dict[str, bool]:
    """Each of `FEATURES`: whether the installed torch has it."""
    adam = torch.optim.Adam
    return {
        "decoupled_weight_decay": "decoupled_weight_decay" in inspect.signature(adam).parameters,
        "adamw_is_adam": issubclass(torch.optim.AdamW, adam),
        "fused_cpu": "cpu" in fused_devices(),
        "tensor_lr": _runs(lambda p: adam([p], lr=torch.tensor(1e-3), foreach=False)),
        "tensor_betas": _runs(lambda p: adam([p], betas=(torch.tensor(0.9), torch.tensor(0.999)), foreach=False)),
        "weights_only": _loads_weights_only(),
        "param_names": _runs(lambda p: adam([{"params": [p], "param_names": ["w"]}]),
                             lambda opt: "param_names" in opt.state_dict()["param_groups"][0]),
    }


def lacking() -> dict[str, str]:
    """Registry features the installed torch's reference path cannot run, and why."""
    found = detect()
    return {feature: f"the installed torch {torch.__version__} lacks it: {FEATURES[need]} is not so"
            for need, feature in NEEDED_BY.items() if not found[need]}


def cuda_unusable() -> str | None:
    """Why CUDA cannot be used here, in one line (None: it can): a CPU-only torch build, no
    driver, a driver too old, no device visible."""
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return f"torch {torch.__version__} is a CPU-only build (install a CUDA build of torch)"
    try:
        torch.cuda.init()
    except Exception as e:  # torch says which: no driver, a driver too old, no device
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) cannot use CUDA here: {reason}"
    if torch.cuda.device_count() == 0:
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no CUDA device"
    return None


@functools.cache
def fused_devices() -> tuple[str, ...]:
    """The device types torch's fused Adam kernels run on."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # a private helper: where it is gone, probe the CPU only
        return ("cpu",) if _runs(lambda p: torch.optim.Adam([p], fused=True)) else ()
    return tuple(_get_fused_kernels_supported_devices())


def _runs(build, holds=lambda opt: True) -> bool:
    """Whether an Adam built by `build` over one small CPU parameter takes two steps (and `holds`)."""
    param = torch.ones(3, requires_grad=True)
    try:
        opt = build(param)
        for _ in range(2):
            param.grad = torch.full_like(param, 0.5)
            opt.step()
        return bool(holds(opt))
    except Exception:
        return False


def _loads_weights_only() -> bool:
    if "weights_only" not in inspect.signature(torch.load).parameters:
        return False
    param = torch.ones(3, requires_grad=True)
    param.grad = torch.ones(3)
    opt = torch.optim.Adam([param])
    opt.step()
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, weights_only=True)
    except Exception:
        return False
    return True
