"""Mutants that diagnose must see through, each modelled on a real package the field work met
(issue 24): float32 arithmetic inside, betas held in float32, no param-group dicts, and the
step counts real packages keep. Each is a wrong Adam that certify rejects on parity; they
live apart from tests/mutants.py, whose zoo the kill matrix holds to its own standard.
"""

from __future__ import annotations

import torch

from tests.mutants import GradModifiedInPlace, StepCountGlobal, Textbook, _ComputedIn


def _f32(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)


class Float32InsideFloat32Corrections(_ComputedIn):
    """computes in float32 whatever the parameters' dtype, 1-βᵗ and lr/(1-β₁ᵗ) too, from a float32 step (torchao)."""

    DTYPE = torch.float32

    def denominator(self, hp, second, t):
        return second.sqrt() / (1 - _f32(hp.beta2) ** _f32(t)).sqrt() + hp.eps

    def apply(self, hp, p, m, denom, t):
        p.sub_(_f32(hp.lr) / (1 - _f32(hp.beta1) ** _f32(t)) * m / denom)


class BetasHeldInFloat32(GradModifiedInPlace):
    """keeps β₁ and β₂ as float32 tensors (cast to the parameters' dtype where used) and writes decay into p.grad."""

    def _update(self, work):
        hp = work.hp._replace(beta1=_f32(work.hp.beta1).item(), beta2=_f32(work.hp.beta2).item())
        super()._update(work._replace(hp=hp))


class NoParamGroupDicts(StepCountGlobal):
    """takes a plain list of tensors only (a group dict raises AttributeError) and counts steps globally (TorchOpt)."""

    def __init__(self, params, *args, **kwargs):
        params = list(params)
        self._devices = {p.device for p in params}  # a dict has no .device
        super().__init__(params, *args, **kwargs)


class _StepsReplaced(Textbook):
    """A step count of its own: `counts()`, called once a step() call, gives each parameter's t
    (by data_ptr) before the step; the parameters stepped use it."""

    def step(self, closure=None):
        self._t = self.counts()
        return super().step(closure)

    def counts(self) -> dict[int, int]:
        raise NotImplementedError

    def _update(self, work):
        super()._update(work._replace(steps=[self._t[p.data_ptr()] for p in work.params]))


class StepCountPerGroupCall(_StepsReplaced):
    """one step count per param group, group['step'] += 1 at every step() call, gradients or not."""

    def counts(self):
        for group in self.param_groups:
            group["step"] = group.get("step", 0) + 1
        return {p.data_ptr(): group["step"] for group in self.param_groups for p in group["params"]}


class StepCountOnFirstParam(_StepsReplaced):
    """a group's step kept on its first parameter's state only, advanced when that one has a gradient."""

    def counts(self):
        kept, t = self.__dict__.setdefault("_kept", {}), {}  # by the first parameter
        for group in self.param_groups:
            first = group["params"][0]
            kept[first] = kept.get(first, 0) + (first.grad is not None)
            t |= {p.data_ptr(): max(kept[first], 1) for p in group["params"]}
        return t


class DebiasedBetas(StepCountPerGroupCall):
    """bias correction folded into debiased betas 1-(1-β)/(1-βᵗ), t per group per step() call (heavyball)."""

    def _update(self, work):
        for i, (p, g, m, v) in enumerate(zip(work.params, work.grads, work.exp_avgs, work.exp_avg_sqs)):
            hp, t = work.hp, self._t[p.data_ptr()]
            beta1, beta2 = (1 - (1 - b) / (1 - b**t) for b in (hp.beta1, hp.beta2))
            g = self.decay(hp, p, self.direction(hp, g))
            m.mul_(beta1).add_(g, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            second = v if work.max_exp_avg_sqs is None else torch.maximum(work.max_exp_avg_sqs[i], v,
                                                                          out=work.max_exp_avg_sqs[i])
            p.addcdiv_(m, second.sqrt().add_(hp.eps), value=-hp.lr)


#: The three cases of issue 24, then the step counts it catalogues.
MUTANTS = [Float32InsideFloat32Corrections, BetasHeldInFloat32, NoParamGroupDicts, StepCountPerGroupCall,
           StepCountOnFirstParam, DebiasedBetas]
