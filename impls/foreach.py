"""``foreach``: multi-tensor Adam with ``torch._foreach_*`` ops, in cache-sized blocks.

The same step as ``eager`` (see its docstring for the math), applied to lists of
tensors at once. Tensors are grouped by (device, dtype) and cut, as 1-D tensors, into
blocks of at most ``BLOCK`` elements; consecutive blocks totalling at most ``BLOCK``
elements form a batch, and each batch is a handful of multi-tensor kernel launches
whose passes over θ, g, m, v can stay in cache. Per-parameter step counts stay per
parameter: the bias corrections are lists.

Extra memory per step: one scratch buffer of min(``BLOCK``, largest parameter) elements
per (device, dtype), which holds g's copy (when maximize or coupled decay needs one) and
then the denominator. Parameters whose layout is not dense are updated through
contiguous copies, a batch's worth at a time.
"""

from __future__ import annotations

import torch
from torch import Tensor

from impls.base import AdamBase, GroupStep, Hyper, as_1d, forms

#: Elements per block and per batch: few enough launches, and a batch's θ, g, m, v and
#: scratch (20 MiB in float32) can stay in a server's last-level cache between passes.
BLOCK = 1 << 20


class ForeachAdam(AdamBase):
    """torch.optim.Adam with multi-tensor (_foreach) kernels, grouped by device and dtype."""

    def _update(self, work: GroupStep) -> None:
        for part in work.by_device_dtype():
            _foreach_adam(part)


def _foreach_adam(work: GroupStep) -> None:
    """One Adam step over tensors of one device and dtype, batch by batch."""
    largest = max(p.numel() for p in work.params)
    if largest == 0:
        return
    scratch = torch.empty(min(BLOCK, largest), dtype=work.params[0].dtype, device=work.params[0].device)
    batch: list[tuple[list[Tensor], int]] = []  # (g, θ, m, v[, v̄]) blocks and their step
    size, finishes = 0, []
    for i, param in enumerate(work.params):
        states = [work.exp_avgs[i], work.exp_avg_sqs[i]]
        if work.max_exp_avg_sqs is not None:
            states.append(work.max_exp_avg_sqs[i])
        inputs, outputs, finish = as_1d([work.grads[i]], [param, *states])
        for start in range(0, param.numel(), BLOCK):
            block = [t[start : start + BLOCK] for t in inputs + outputs]
            if size + block[0].numel() > scratch.numel():
                _step_batch(work.hp, batch, scratch)
                for done in finishes:  # every parameter before this one is complete
                    done()
                batch, size, finishes = [], 0, []
            batch.append((block, work.steps[i]))
            size += block[0].numel()
        finishes.append(finish)
    _step_batch(work.hp, batch, scratch)
    for done in finishes:
        done()


def _step_batch(hp: Hyper, batch: list[tuple[list[Tensor], int]], scratch: Tensor) -> None:
    """One Adam step of each block in `batch`, with `scratch` for g's copy and the denominator."""
    blocks, steps = zip(*batch)
    grads, params, exp_avgs, exp_avg_sqs, *max_exp_avg_sqs = map(list, zip(*blocks))
    sizes = [g.numel() for g in grads]
    temps = list(scratch[: sum(sizes)].split(sizes))
    mode, factor = hp.decay()
    if hp.maximize or mode == "coupled":
        torch._foreach_copy_(temps, grads)  # the caller's gradients are never written
        grads = temps
        if hp.maximize:
            torch._foreach_neg_(grads)
        if mode == "coupled":
            torch._foreach_add_(grads, params, alpha=factor)
    if mode == "decoupled":
        # A tensor factor: torch._foreach_mul_ rounds a Python scalar to the tensors'
        # dtype first on CPU (0.99 becomes 0.98828 in bfloat16); torch.mul_ does not.
        torch._foreach_mul_(params, torch.tensor(factor, dtype=torch.float64, device=params[0].device))

    torch._foreach_lerp_(exp_avgs, grads, 1 - hp.beta1)
    torch._foreach_mul_(exp_avg_sqs, hp.beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - hp.beta2)

    second_moments = exp_avg_sqs
    if max_exp_avg_sqs:
        second_moments = max_exp_avg_sqs[0]
        torch._foreach_maximum_(second_moments, exp_avg_sqs)
    denom = temps  # g's copy is no longer needed
    torch._foreach_copy_(denom, second_moments)
    torch._foreach_sqrt_(denom)
    torch._foreach_div_(denom, [(1 - hp.beta2**t) ** 0.5 for t in steps])
    torch._foreach_add_(denom, hp.eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, [-hp.lr / (1 - hp.beta1**t) for t in steps])


ADAM, ADAMW = forms("foreach", ForeachAdam,
                    "multi-tensor torch._foreach_* kernels over cache-sized blocks, grouped by device and dtype")
