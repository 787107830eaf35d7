"""Wrong Adams: each one small, realistic change from a correct one, documented in one line.

The suite's checks must catch every one of them (a check that cannot fail is a defect).
"""

from __future__ import annotations

import torch

from impls.base import Hyper
from impls.eager import EagerAdam


class _HyperMutant(EagerAdam):
    """EagerAdam whose hyperparameters pass through `mutate` before each step."""

    @staticmethod
    def mutate(hp: Hyper) -> Hyper:
        return hp

    def _update(self, hp, *tensors):
        super()._update(self.mutate(hp), *tensors)


class Beta2InBfloat16(_HyperMutant):
    """beta2 stored in bfloat16 (0.999 becomes 0.99609), as in tt-metal #55935."""

    mutate = staticmethod(lambda hp: hp._replace(beta2=torch.tensor(hp.beta2, dtype=torch.bfloat16).item()))


class MaximizeIgnored(_HyperMutant):
    """maximize accepted but ignored (pytorch_optimizer #527)."""

    mutate = staticmethod(lambda hp: hp._replace(maximize=False))


class EpsBeforeBiasCorrection(EagerAdam):
    """eps added before bias correction, TF style: effective eps is eps·√(1-β₂ᵗ) (pytorch #22628)."""

    def _update(self, hp, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps):
        # eps/√(1-β₂ᵗ) after correction equals eps before it; one eps per step count.
        for t in sorted(set(steps)):
            index = [i for i, s in enumerate(steps) if s == t]
            pick = lambda xs: None if xs is None else [xs[i] for i in index]  # noqa: E731
            eps = hp.eps / (1 - hp.beta2**t) ** 0.5
            super()._update(hp._replace(eps=eps), pick(params), pick(grads), pick(exp_avgs),
                            pick(exp_avg_sqs), pick(max_exp_avg_sqs), pick(steps))
