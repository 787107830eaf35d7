"""``foreach``: multi-tensor Adam with ``torch._foreach_*`` ops.

The same step as ``eager`` (see its docstring for the math), applied to whole lists
of tensors at once. Tensors are grouped by (device, dtype) so that each group is a
handful of multi-tensor kernel launches instead of a loop over parameters.
Per-parameter step counts stay per parameter: the bias corrections are lists.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from conformance.registry import Implementation
from impls.base import AdamBase, Hyper, adamw


class ForeachAdam(AdamBase):
    """torch.optim.Adam with multi-tensor (_foreach) kernels, grouped by device and dtype."""

    def _update(
        self,
        hp: Hyper,
        params: list[Tensor],
        grads: list[Tensor],
        exp_avgs: list[Tensor],
        exp_avg_sqs: list[Tensor],
        max_exp_avg_sqs: list[Tensor] | None,
        steps: list[int],
    ) -> None:
        by_device_dtype: dict[tuple, list[int]] = defaultdict(list)
        for i, p in enumerate(params):
            by_device_dtype[(p.device, p.dtype)].append(i)
        for index in by_device_dtype.values():
            lists = [params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps]
            _foreach_adam(hp, *[None if xs is None else [xs[i] for i in index] for xs in lists])


def _foreach_adam(hp, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps):
    """One Adam step over tensors of one device and dtype."""
    # New lists of new tensors: the caller's gradients are never written.
    grads = torch._foreach_neg(grads) if hp.maximize else list(grads)
    if hp.weight_decay != 0:
        if hp.decoupled:
            # A tensor factor: torch._foreach_mul_ rounds a Python scalar to the tensors'
            # dtype first on CPU (0.99 becomes 0.98828 in bfloat16); torch.mul_ does not.
            decay = torch.tensor(1 - hp.lr * hp.weight_decay, dtype=torch.float64, device=params[0].device)
            torch._foreach_mul_(params, decay)
        else:
            grads = torch._foreach_add(grads, params, alpha=hp.weight_decay)

    torch._foreach_lerp_(exp_avgs, grads, 1 - hp.beta1)
    torch._foreach_mul_(exp_avg_sqs, hp.beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - hp.beta2)

    if max_exp_avg_sqs is not None:
        torch._foreach_maximum_(max_exp_avg_sqs, exp_avg_sqs)
        denom = torch._foreach_sqrt(max_exp_avg_sqs)
    else:
        denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [(1 - hp.beta2**t) ** 0.5 for t in steps])
    torch._foreach_add_(denom, hp.eps)
    step_sizes = [-hp.lr / (1 - hp.beta1**t) for t in steps]
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)


ForeachAdamW = adamw(ForeachAdam)

ADAM = Implementation(
    name="foreach",
    factory=ForeachAdam,
    description="multi-tensor torch._foreach_* kernels, grouped by device and dtype",
    spec="adam",
)
ADAMW = Implementation(
    name="foreach-adamw",
    factory=ForeachAdamW,
    description="foreach with decoupled weight decay (AdamW)",
    spec="adamw",
    claims=ADAM.claims - {"decoupled_weight_decay"},
)
