"""``eager``: Adam as a plain per-parameter loop, the seed notebook's code completed.

This is the loop from *Understanding Adam* with what the notebook removed put back
(maximize, AMSGrad, decoupled weight decay, complex parameters, per-parameter step
counts, closures). It is meant to be read. For parameter θ with gradient ∇f(θ) at
step t (counted per parameter, starting at 1):

    g  ← -∇f(θ) if maximize else ∇f(θ)
    Adam  (L2, "coupled"):     g ← g + λθ
    AdamW ("decoupled"):       θ ← θ(1 - γλ)            (arXiv 1711.05101, scaled by lr γ)
    m  ← β₁m + (1-β₁)g                                   first moment   (arXiv 1412.6980)
    v  ← β₂v + (1-β₂)g²                                  second moment
    v̄  ← max(v̄, v) if amsgrad else v                     max of the *raw* v
    θ  ← θ - γ/(1-β₁ᵗ) · m / (√v̄/√(1-β₂ᵗ) + ε)           ε added after bias correction

The notebook calls its code AdamW. It is not: adding λθ to the gradient is Adam with
L2 decay, which is what ``torch.optim.Adam`` does. AdamW decays θ directly.

Extra memory: the denominator, one parameter's worth at a time, and before it g's copy
when maximize or coupled decay needs one (both at once only for maximize with coupled decay).
"""

from __future__ import annotations

import math

import torch

from impls.base import AdamBase, GroupStep, forms


class EagerAdam(AdamBase):
    """torch.optim.Adam as a per-parameter Python loop of in-place tensor ops."""

    def _update(self, work: GroupStep) -> None:
        hp = work.hp
        for i, param in enumerate(work.params):
            grad = -work.grads[i] if hp.maximize else work.grads[i]  # a new tensor: p.grad is untouched
            exp_avg, exp_avg_sq, t = work.exp_avgs[i], work.exp_avg_sqs[i], work.steps[i]

            if hp.weight_decay != 0:
                if hp.decoupled:
                    param.mul_(1 - hp.lr * hp.weight_decay)  # AdamW: shrink θ itself
                else:
                    grad = grad.add(param, alpha=hp.weight_decay)  # Adam: L2 term in g

            exp_avg.lerp_(grad, 1 - hp.beta1)  # m + (1-β₁)(g - m) = β₁m + (1-β₁)g
            exp_avg_sq.mul_(hp.beta2).addcmul_(grad, grad, value=1 - hp.beta2)

            bias_correction1 = 1 - hp.beta1**t
            bias_correction2 = 1 - hp.beta2**t
            step_size = hp.lr / bias_correction1

            second_moment = exp_avg_sq
            if work.max_exp_avg_sqs is not None:
                second_moment = work.max_exp_avg_sqs[i]
                torch.maximum(second_moment, exp_avg_sq, out=second_moment)
            del grad  # g's temporary, if any, is freed before the denominator's
            denom = second_moment.sqrt().div_(math.sqrt(bias_correction2)).add_(hp.eps)

            param.addcdiv_(exp_avg, denom, value=-step_size)


ADAM, ADAMW = forms("eager", EagerAdam,
                    "per-parameter loop of in-place tensor ops (the seed notebook's loop, completed)")
