"""``foreach``: multi-tensor Adam with ``torch._foreach_*`` ops, in batches of at most ``BLOCK`` elements.

The same step as ``eager`` (see its docstring for the math), applied to lists of
tensors at once. Tensors are grouped by (device, dtype), then:

* parameters of 1 to ``SMALL`` elements are taken whole, in their own shapes and
  layouts, consecutive ones of at most ``BLOCK`` elements in all to a batch, with no
  Python work per tensor; their temporaries are new tensors;
* the others are taken as 1-D tensors (a 0-d one too: with a 0-d tensor, a 0-d float64
  factor would set the arithmetic's dtype) cut into blocks of at most ``BLOCK`` elements,
  consecutive blocks of at most ``BLOCK`` elements in all to a batch; their temporaries
  share one scratch buffer.

A batch is a handful of multi-tensor kernel calls whose passes over θ, g, m, v can stay
in cache. Per-parameter step counts stay per parameter: where a batch's parameters are
at different steps, the bias corrections are lists.

Extra memory per step, per (device, dtype), at most ``BLOCK`` elements at a time: for a
batch of small parameters, g's copy (only when maximize or coupled decay needs one) and
then the denominator; for the large ones, one scratch buffer of min(``BLOCK``, largest
parameter) elements that holds the same. Large parameters whose layout is not dense are
updated through contiguous copies, a batch's worth at a time.
"""

from __future__ import annotations

from itertools import accumulate

import torch
from torch import Tensor

from impls.base import AdamBase, GroupStep, Hyper, as_1d, forms

#: Elements per batch: few enough kernel calls, and a batch's θ, g, m, v and denominator
#: (5 MiB in float32) can stay in cache between passes. Measured on the transformer set
#: (docs/performance.md): 2^18 to 2^20 alike in float32; in bfloat16 2^20 is 10% slower.
BLOCK = 1 << 18
#: Parameters of at most this many elements are taken whole, their temporaries new tensors
#: (64 KiB at most in float32): small allocations, which the allocator serves from memory it
#: holds, where large ones would be fresh pages, faulted in at every step.
SMALL = 1 << 14


class ForeachAdam(AdamBase):
    """torch.optim.Adam with multi-tensor (_foreach) kernels, grouped by device and dtype."""

    def _update(self, work: GroupStep) -> None:
        for part in work.by_device_dtype():
            _foreach_adam(part)


def _foreach_adam(work: GroupStep) -> None:
    """One Adam step over tensors of one device and dtype, batch by batch."""
    sizes = [p.numel() for p in work.params]
    whole = [0 < n <= SMALL and p.dim() > 0 for n, p in zip(sizes, work.params)]  # 0-d: as 1-D (see above)
    if all(whole):  # the common case for small tensors: no index lists
        _small(work, sizes)
        return
    small = [i for i, w in enumerate(whole) if w]
    large = [i for i, w in enumerate(whole) if not w]
    if small:
        _small(work.subset(small), [sizes[i] for i in small])
    if large:
        _large(work.subset(large), [sizes[i] for i in large])


def _small(work: GroupStep, sizes: list[int]) -> None:
    """Whole parameters, in their own shapes, in batches of consecutive ones of at most BLOCK elements."""
    start, ends = 0, list(accumulate(sizes))
    for i, end in enumerate(ends):
        if end - (ends[start - 1] if start else 0) > BLOCK:  # parameter i starts the next batch
            _step_batch(work.hp, work.part(start, i))
            start = i
    _step_batch(work.hp, work.part(start, len(sizes)))


def _large(work: GroupStep, sizes: list[int]) -> None:
    """Parameters as 1-D tensors cut into blocks of at most BLOCK elements, consecutive blocks of at
    most BLOCK elements in all to a batch, with one scratch buffer for g's copy and the denominator."""
    scratch = work.params[0].new_empty(min(BLOCK, max(sizes)))
    batch: list[tuple[list[Tensor], int]] = []  # (θ, g, m, v[, v̄]) blocks and their step
    size, finishes = 0, []
    for i, param in enumerate(work.params):
        states = [work.exp_avgs[i], work.exp_avg_sqs[i], *([work.max_exp_avg_sqs[i]] if _ams(work) else [])]
        (grad,), (param, *states), finish = as_1d([work.grads[i]], [param, *states])
        for start in range(0, sizes[i], BLOCK):
            block = [t[start : start + BLOCK] for t in (param, grad, *states)]
            if size + block[0].numel() > scratch.numel():
                _step_batch(work.hp, _batch(work.hp, batch), scratch)
                for done in finishes:  # every parameter before this one is complete
                    done()
                batch, size, finishes = [], 0, []
            batch.append((block, work.steps[i]))
            size += block[0].numel()
        finishes.append(finish)
    if batch:
        _step_batch(work.hp, _batch(work.hp, batch), scratch)
    for done in finishes:
        done()


def _ams(work: GroupStep) -> bool:
    return work.max_exp_avg_sqs is not None


def _batch(hp: Hyper, blocks: list[tuple[list[Tensor], int]]) -> GroupStep:
    """The step of `blocks`, each (θ, g, m, v[, v̄]) and its step count."""
    columns, steps = zip(*blocks)
    params, grads, exp_avgs, exp_avg_sqs, *max_exp_avg_sqs = map(list, zip(*columns))
    return GroupStep(hp, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs[0] if max_exp_avg_sqs else None,
                     list(steps))


def _step_batch(hp: Hyper, batch: GroupStep, scratch: Tensor | None = None) -> None:
    """One Adam step of every tensor of `batch` in multi-tensor kernels, g's copy and the denominator
    in `scratch` (1-D tensors only) or, without it, in new tensors."""
    params, exp_avgs, exp_avg_sqs = batch.params, batch.exp_avgs, batch.exp_avg_sqs
    sizes = [p.numel() for p in params] if scratch is not None else []
    temps = list(scratch[: sum(sizes)].split(sizes)) if scratch is not None else None
    number = _scalars(params[0].device)
    grads = _gradient(hp, batch.grads, params, temps)
    mode, factor = hp.decay()
    if mode == "decoupled":
        # A tensor factor: torch._foreach_mul_ rounds a Python scalar to the tensors'
        # dtype first on CPU (0.99 becomes 0.98828 in bfloat16); torch.mul_ does not.
        torch._foreach_mul_(params, torch.tensor(factor, dtype=torch.float64, device=params[0].device))

    torch._foreach_lerp_(exp_avgs, grads, 1 - hp.beta1)
    torch._foreach_mul_(exp_avg_sqs, number(hp.beta2))
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - hp.beta2)
    del grads  # g's copy, if any, is no longer needed

    second_moments = exp_avg_sqs
    if _ams(batch):
        second_moments = batch.max_exp_avg_sqs
        torch._foreach_maximum_(second_moments, exp_avg_sqs)
    denom = _square_root(second_moments, temps)
    steps = batch.steps
    if steps.count(steps[0]) == len(steps):  # one step count: scalars, not lists
        torch._foreach_div_(denom, number((1 - hp.beta2 ** steps[0]) ** 0.5))
        step_sizes = -hp.lr / (1 - hp.beta1 ** steps[0])
    else:
        torch._foreach_div_(denom, [(1 - hp.beta2**t) ** 0.5 for t in steps])
        step_sizes = [-hp.lr / (1 - hp.beta1**t) for t in steps]
    torch._foreach_add_(denom, number(hp.eps))
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)


def _gradient(hp: Hyper, grads: list[Tensor], params: list[Tensor], temps: list[Tensor] | None) -> list[Tensor]:
    """g or, where maximize or coupled decay change it, a copy (in `temps`, or new: the caller's
    gradients are never written): -g, then + λθ."""
    mode, factor = hp.decay()
    if not hp.maximize and mode != "coupled":
        return grads
    if temps is None:  # many small tensors: multi-tensor kernels
        temps = torch._foreach_neg(grads) if hp.maximize else torch._foreach_add(grads, params, alpha=factor)
    else:  # a few blocks: one pass each, per tensor
        for g, p, temp in zip(grads, params, temps):
            torch.neg(g, out=temp) if hp.maximize else torch.add(g, p, alpha=factor, out=temp)
    if hp.maximize and mode == "coupled":
        torch._foreach_add_(temps, params, alpha=factor)
    return temps


def _square_root(tensors: list[Tensor], temps: list[Tensor] | None) -> list[Tensor]:
    """√ of each tensor, in `temps` or in new tensors."""
    if temps is None:
        return torch._foreach_sqrt(tensors)
    for x, temp in zip(tensors, temps):  # a few blocks: one pass each, not a copy and then sqrt_
        torch.sqrt(x, out=temp)
    return temps


def _scalars(device: torch.device):
    """How a scalar operand of torch._foreach_{mul,div,add}_ is passed: on the CPU as a 0-d float64
    tensor, which those ops take as torch.mul_ does (a Python scalar they round to the tensors'
    dtype, as above, and wrap into a new tensor for every tensor of the list); elsewhere as is."""
    if device.type == "cpu":
        return lambda x: torch.tensor(x, dtype=torch.float64)
    return float


ADAM, ADAMW = forms("foreach", ForeachAdam,
                    "multi-tensor torch._foreach_* kernels over cache-sized blocks, grouped by device and dtype")
