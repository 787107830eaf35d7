"""``triton``: Adam as one fused Triton kernel launch per dtype (the CUDA implementation).

The math is ``eager``'s (see its docstring); the kernel is ``impls.triton_kernel``.
Per step and param group, the tensors of each (device, dtype) are updated by a single
launch, whatever their number and sizes: bias corrections are per-tensor tables, so
per-parameter step counts cost nothing.

On a machine without CUDA the kernel runs under Triton's interpreter on CPU tensors
(``TRITON_INTERPRET=1``, which this module sets before the kernel is defined), so CI
tests the very kernel a GPU runs.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
from torch import Tensor

from impls.base import AdamBase, GroupStep, Hyper, as_1d, forms

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

try:
    import triton
    import triton.language as tl

    from impls import triton_kernel
except ImportError as e:  # the optional extra is not installed
    triton = None
    _IMPORT_ERROR = f"{e}"

#: Elements per program. The interpreter pays per program, not per element, so it takes
#: big blocks; a GPU wants blocks that fill its SMs.
BLOCK = 16384 if INTERPRETED else 1024


class TritonAdam(AdamBase):
    """torch.optim.Adam as a fused multi-tensor Triton kernel, one launch per dtype."""

    def __init__(self, params, *args, **kwargs):
        if triton is None:
            raise RuntimeError(f"the triton implementation needs Triton ({_IMPORT_ERROR}): pip install triton")
        super().__init__(params, *args, **kwargs)

    def _update(self, work: GroupStep) -> None:
        for part in work.by_device_dtype():
            part = part.subset([i for i, p in enumerate(part.params) if p.numel()])
            if not part.params:
                continue
            tensors = defaultdict(list)  # name -> 1-D tensors, in the parameters' order
            finishers = []
            for i, param in enumerate(part.params):
                state = [part.exp_avgs[i],
                         part.exp_avg_sqs[i]] + ([part.max_exp_avg_sqs[i]] if part.max_exp_avg_sqs else [])
                (g,), (p, m, v, *vmax), finish = as_1d([part.grads[i]], [param, *state])
                for name, t in zip(("param", "grad", "exp_avg", "exp_avg_sq", "max"), (p, g, m, v, *vmax)):
                    tensors[name].append(t)
                finishers.append(finish)
            device = part.params[0].device
            _launch(part.hp, tensors, part.steps, self.blocks([t.numel() for t in tensors["param"]], device), device,
                    part.params[0].dtype)
            for finish in finishers:
                finish()

    def blocks(self, numels: list[int], device) -> list[tuple[int, int]]:
        """The launch grid: (tensor, first element) of each block of BLOCK elements, the last
        block of each tensor partial."""
        return [(i, start) for i, n in enumerate(numels) for start in range(0, n, BLOCK)]


def _launch(hp: Hyper, tensors: dict[str, list[Tensor]], steps: list[int], blocks: list[tuple[int, int]], device,
            dtype) -> None:
    """One kernel launch over every tensor in `tensors` (all of one device and dtype), a
    program per block of `blocks`."""
    as_table = lambda xs, dt: torch.tensor(xs, dtype=dt, device=device)
    pointers = {name: as_table([t.data_ptr() for t in ts], torch.int64) for name, ts in tensors.items()}
    numels = [t.numel() for t in tensors["param"]]
    mode, decay = hp.decay()
    triton_kernel.adam_kernel[(len(blocks),)](
        pointers["param"],
        pointers["grad"],
        pointers["exp_avg"],
        pointers["exp_avg_sq"],
        pointers.get("max", pointers["param"]),
        as_table(numels, torch.int64),
        as_table([i for i, _ in blocks], torch.int32),
        as_table([start for _, start in blocks], torch.int64),
        as_table([-hp.lr / (1 - hp.beta1**t) for t in steps], torch.float64),
        as_table([(1 - hp.beta2**t) ** 0.5 for t in steps], torch.float64),
        as_table([decay, 1 - hp.beta1, hp.beta2, 1 - hp.beta2, hp.eps], torch.float64),
        DTYPE=_TL_DTYPES[dtype],
        COMPUTE=tl.float64 if dtype == torch.float64 else tl.float32,
        MAXIMIZE=hp.maximize,
        DECAY=triton_kernel.DECAY_MODES[mode],
        AMSGRAD=hp.amsgrad,
        BLOCK=BLOCK,
    )


_TL_DTYPES = (
    {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32, torch.float64: tl.float64}
    if triton is not None
    else {}
)

def _how(devices) -> str:
    if triton is None:
        return f"unavailable: Triton is not installed ({_IMPORT_ERROR})"
    if INTERPRETED:
        cuda = "CUDA available but TRITON_INTERPRET=1" if torch.cuda.is_available() else "CUDA not available"
        return f"Triton {triton.__version__} interpreter on CPU; {cuda}"
    return f"Triton {triton.__version__} on CUDA ({torch.cuda.get_device_name()})"


_DEVICES = ("cpu",) if INTERPRETED else ("cuda",)

ADAM, ADAMW = forms("triton", TritonAdam,
                    "fused multi-tensor Triton kernel, one launch per dtype (interpreted on CPU)",
                    devices=_DEVICES, how=_how)
