"""``foreach``: multi-tensor Adam with ``torch._foreach_*`` ops.

The same step as ``eager`` (see its docstring for the math), applied to whole lists
of tensors at once. Tensors are grouped by (device, dtype) so that each group is a
handful of multi-tensor kernel launches instead of a loop over parameters.
Per-parameter step counts stay per parameter: the bias corrections are lists.
"""

from __future__ import annotations

import torch

from impls.base import AdamBase, GroupStep, forms


class ForeachAdam(AdamBase):
    """torch.optim.Adam with multi-tensor (_foreach) kernels, grouped by device and dtype."""

    def _update(self, work: GroupStep) -> None:
        for part in work.by_device_dtype():
            _foreach_adam(part)


def _foreach_adam(work: GroupStep) -> None:
    """One Adam step over tensors of one device and dtype."""
    hp, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps = work
    # New lists of new tensors: the caller's gradients are never written.
    grads = torch._foreach_neg(grads) if hp.maximize else list(grads)
    mode, factor = hp.decay()
    if mode == "decoupled":
        # A tensor factor: torch._foreach_mul_ rounds a Python scalar to the tensors'
        # dtype first on CPU (0.99 becomes 0.98828 in bfloat16); torch.mul_ does not.
        torch._foreach_mul_(params, torch.tensor(factor, dtype=torch.float64, device=params[0].device))
    elif mode == "coupled":
        grads = torch._foreach_add(grads, params, alpha=factor)

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


ADAM, ADAMW = forms("foreach", ForeachAdam, "multi-tensor torch._foreach_* kernels, grouped by device and dtype")
