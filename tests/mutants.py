"""The mutant zoo: wrong Adams, each one small change from a correct one, each documented in
one line with the real bug it is modelled on. The suite must catch every one at the quick
profile (tests/test_kill_matrix.py); the correct-but-different implementations at the end
must all pass.

`Textbook` is torch's Adam cut at the points where bugs live; a mutant overrides one piece.
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np
import torch

from conformance.truth import precision
from impls.base import AdamBase, GroupStep, Hyper, adamw, hyper


class Textbook(AdamBase):
    """torch.optim.Adam's step as overridable pieces (the arithmetic of impls.eager)."""

    def _update(self, work: GroupStep):
        hp = work.hp
        for i, p in enumerate(work.params):
            v_max = None if work.max_exp_avg_sqs is None else work.max_exp_avg_sqs[i]
            g = self.direction(hp, work.grads[i])
            g = self.decay(hp, p, g)
            self.moments(hp, g, work.exp_avgs[i], work.exp_avg_sqs[i])
            t = work.steps[i]
            denom = self.denominator(hp, self.second_moment(hp, work.exp_avg_sqs[i], v_max, t), t)
            self.apply(hp, p, work.exp_avgs[i], denom, t)
            self.after(hp, p)

    def direction(self, hp: Hyper, grad):
        return -grad if hp.maximize else grad

    def decay(self, hp: Hyper, p, g):
        if hp.weight_decay == 0:
            return g
        if hp.decoupled:
            p.mul_(1 - hp.lr * hp.weight_decay)
            return g
        return g.add(p, alpha=hp.weight_decay)

    def moments(self, hp: Hyper, g, m, v):
        m.lerp_(g, 1 - hp.beta1)
        v.mul_(hp.beta2).addcmul_(g, g, value=1 - hp.beta2)

    def second_moment(self, hp: Hyper, v, v_max, t: int):
        if v_max is None:
            return v
        torch.maximum(v_max, v, out=v_max)
        return v_max

    def denominator(self, hp: Hyper, second, t: int):
        return (second.sqrt() / math.sqrt(1 - hp.beta2**t)).add_(hp.eps)

    def apply(self, hp: Hyper, p, m, denom, t: int):
        p.addcdiv_(m, denom, value=-hp.lr / (1 - hp.beta1**t))

    def after(self, hp: Hyper, p):
        pass


# -- eps and bias correction -----------------------------------------------------------


class EpsBeforeBiasCorrection(Textbook):
    """eps added before bias correction, TensorFlow style (pytorch #22628)."""

    def denominator(self, hp, second, t):
        return (second.sqrt() + hp.eps) / math.sqrt(1 - hp.beta2**t)


class EpsInsideSqrt(Textbook):
    """eps inside the square root, sqrt(v̂ + eps) (pytorch_optimizer #397)."""

    def denominator(self, hp, second, t):
        return (second / (1 - hp.beta2**t) + hp.eps).sqrt()


class EpsAsFloor(Textbook):
    """eps as a floor, max(sqrt(v̂), eps), instead of added."""

    def denominator(self, hp, second, t):
        return (second.sqrt() / math.sqrt(1 - hp.beta2**t)).clamp_min(hp.eps)


class ZeroEpsBecomesDefault(Textbook):
    """eps = 0 silently becomes 1e-7 (`epsilon or backend.epsilon()`, as Keras' OptimizerV2 does)."""

    def denominator(self, hp, second, t):
        return super().denominator(hp._replace(eps=hp.eps or 1e-7), second, t)


class NoBiasCorrection(Textbook):
    """no bias correction at all."""

    def denominator(self, hp, second, t):
        return second.sqrt().add_(hp.eps)

    def apply(self, hp, p, m, denom, t):
        p.addcdiv_(m, denom, value=-hp.lr)


class FirstMomentNotBiasCorrected(Textbook):
    """the first moment is not bias-corrected (karpathy/nanochat #304 family)."""

    def apply(self, hp, p, m, denom, t):
        p.addcdiv_(m, denom, value=-hp.lr)


class SecondMomentNotBiasCorrected(Textbook):
    """the second moment is not bias-corrected."""

    def denominator(self, hp, second, t):
        return second.sqrt().add_(hp.eps)


class SecondCorrectionNotSquareRooted(Textbook):
    """sqrt(v) divided by (1 - beta2^t) instead of its square root."""

    def denominator(self, hp, second, t):
        return (second.sqrt() / (1 - hp.beta2**t)).add_(hp.eps)


class BetasSwapped(Textbook):
    """beta1 and beta2 swapped between the two moments."""

    def moments(self, hp, g, m, v):
        super().moments(hp._replace(beta1=hp.beta2, beta2=hp.beta1), g, m, v)


class FactoredSecondMoment(Textbook):
    """a matrix's second moment kept as row and column means, as Adafactor saves memory: not Adam."""

    def moments(self, hp, g, m, v):
        m.lerp_(g, 1 - hp.beta1)
        sq = g * g
        if sq.dim() >= 2 and sq.numel():
            rows, cols = sq.mean(dim=-1, keepdim=True), sq.mean(dim=-2, keepdim=True)
            sq = rows * cols / rows.mean(dim=-2, keepdim=True).clamp_min(1e-30)
        v.mul_(hp.beta2).add_(sq, alpha=1 - hp.beta2)


class Beta2InBfloat16(Textbook):
    """beta2 stored in bfloat16: 0.999 becomes 0.99609 (tenstorrent tt-metal #55935)."""

    def moments(self, hp, g, m, v):
        super().moments(hp._replace(beta2=torch.tensor(hp.beta2, dtype=torch.bfloat16).item()), g, m, v)


class BiasCorrectionInFloat32(Textbook):
    """bias corrections computed in float32 instead of double (pytorch PR #88173)."""

    def denominator(self, hp, second, t):
        bc2 = 1 - torch.tensor(hp.beta2, dtype=torch.float32) ** t
        return (second.sqrt() / bc2.sqrt().item()).add_(hp.eps)

    def apply(self, hp, p, m, denom, t):
        bc1 = 1 - torch.tensor(hp.beta1, dtype=torch.float32) ** t
        p.addcdiv_(m, denom, value=-hp.lr / bc1.item())


# -- weight decay ----------------------------------------------------------------------


class DecoupledDecayInAdam(Textbook):
    """Adam applies AdamW's decoupled decay (flagos-ai/FlagGems #4989)."""

    def decay(self, hp, p, g):
        return super().decay(hp._replace(decoupled=True), p, g)


class CoupledDecay(Textbook):
    """AdamW that adds wd·θ to the gradient: the seed notebook's "AdamW"."""

    def decay(self, hp, p, g):
        return super().decay(hp._replace(decoupled=False), p, g)


class DecayNotScaledByLr(Textbook):
    """decoupled decay θ *= 1 - wd, without lr (pytorch #38853, the paper's own form)."""

    def decay(self, hp, p, g):
        return super().decay(hp._replace(lr=1.0), p, g) if hp.decoupled else super().decay(hp, p, g)


class DecayAfterUpdate(Textbook):
    """decoupled decay applied to the updated weights (Odyssey PR #5674)."""

    def decay(self, hp, p, g):
        return g if hp.decoupled else super().decay(hp, p, g)

    def after(self, hp, p):
        if hp.decoupled and hp.weight_decay:
            p.mul_(1 - hp.lr * hp.weight_decay)


class DecayAppliedTwice(Textbook):
    """both decays at once: wd·θ added to the gradient and θ shrunk as well."""

    def decay(self, hp, p, g):
        if hp.decoupled and hp.weight_decay:
            g = g.add(p, alpha=hp.weight_decay)
        return super().decay(hp, p, g)


class SkipsAllZeroGradients(Textbook):
    """a parameter whose gradient is all zeros is skipped (a sparse-update shortcut), so it is not decayed."""

    def _update(self, work):
        keep = [i for i, g in enumerate(work.grads) if g.numel() == 0 or bool(g.ne(0).any())]
        if keep:
            super()._update(work.subset(keep))


class DecoupledFlagIgnored(Textbook):
    """Adam(decoupled_weight_decay=True) accepted but decays coupled."""

    def decay(self, hp, p, g):
        return super().decay(hp._replace(decoupled=False), p, g)


# -- maximize --------------------------------------------------------------------------


class MaximizeIgnored(Textbook):
    """maximize accepted and ignored (kozistr/pytorch_optimizer #527)."""

    def direction(self, hp, grad):
        return grad


class MaximizeByNegatingLr(Textbook):
    """maximize by negating lr, which also reverses decoupled decay (Paddle #79341, pytorch PR #68164)."""

    def direction(self, hp, grad):
        return grad

    def decay(self, hp, p, g):
        return super().decay(hp._replace(lr=-hp.lr) if hp.maximize else hp, p, g)

    def apply(self, hp, p, m, denom, t):
        super().apply(hp._replace(lr=-hp.lr) if hp.maximize else hp, p, m, denom, t)


class MaximizeAfterDecay(Textbook):
    """maximize negates the decayed gradient -(g + wd·θ), so L2 decay grows the weights."""

    def direction(self, hp, grad):
        return grad

    def decay(self, hp, p, g):
        g = super().decay(hp, p, g)
        return -g if hp.maximize else g


# -- AMSGrad ---------------------------------------------------------------------------


class AmsgradMaxNotPersisted(Textbook):
    """AMSGrad's max computed out of place and never written back (pytorch #78807)."""

    def second_moment(self, hp, v, v_max, t):
        return v if v_max is None else torch.maximum(v_max, v)


class AmsgradMaxOfCorrected(Textbook):
    """AMSGrad keeps the max of the bias-corrected v̂ (pytorch #142041's doc formula)."""

    def second_moment(self, hp, v, v_max, t):
        if v_max is None:
            return v
        torch.maximum(v_max, v / (1 - hp.beta2**t), out=v_max)
        return v_max * (1 - hp.beta2**t)  # the textbook's correction then undoes itself


class AmsgradIgnored(Textbook):
    """amsgrad accepted and ignored."""

    def second_moment(self, hp, v, v_max, t):
        return v


class NaNDroppedFromAmsgradMax(Textbook):
    """AMSGrad's max with fmax, which drops NaN (torch's fused CPU kernel)."""

    def second_moment(self, hp, v, v_max, t):
        if v_max is None:
            return v
        torch.fmax(v_max, v, out=v_max)
        return v_max


class AmsgradMaxFlushedToZero(Textbook):
    """AMSGrad's running max stored flush-to-zero, as by a fast-math kernel: subnormals become 0."""

    def second_moment(self, hp, v, v_max, t):
        second = super().second_moment(hp, v, v_max, t)
        return second if v_max is None else v_max.masked_fill_(v_max.abs() < torch.finfo(v_max.dtype).tiny, 0)


# -- complex ---------------------------------------------------------------------------


def _complex_view(x) -> bool:
    """Whether `x` is the view_as_real of a complex tensor (as the base hands state over)."""
    return x._base is not None and x._base.is_complex()


class ComplexSquared(Textbook):
    """complex gradients squared as g·g instead of per component (pytorch #59998)."""

    def moments(self, hp, g, m, v):
        if not _complex_view(v):
            return super().moments(hp, g, m, v)
        m.lerp_(g, 1 - hp.beta1)
        g_complex = torch.view_as_complex(g.contiguous())
        torch.view_as_complex(v).mul_(hp.beta2).add_(g_complex * g_complex, alpha=1 - hp.beta2)


class ComplexAmsgradMaxSkipped(Textbook):
    """AMSGrad's max not updated for complex parameters (pytorch PR #104990 family)."""

    def second_moment(self, hp, v, v_max, t):
        if v_max is not None and _complex_view(v):
            return v_max
        return super().second_moment(hp, v, v_max, t)


# -- step counting, missing gradients, state -------------------------------------------


class StepCountPerGroup(Textbook):
    """one step count per param group, bumped when any of its params has a grad."""

    def step(self, closure=None):
        self._call = getattr(self, "_call", 0) + 1
        return super().step(closure)

    def _state_for(self, p, amsgrad):
        state = super()._state_for(p, amsgrad)
        group = next(g for g in self.param_groups if any(q is p for q in g["params"]))
        if group.get("last_call") != self._call:
            group["last_call"], group["count"] = self._call, group.get("count", 0) + 1
        state["step"].fill_(group["count"] - 1)  # the base then adds this step
        return state


class StepCountGlobal(StepCountPerGroup):
    """one global step count, bumped by every step() call (optax's and Keras's convention)."""

    def _state_for(self, p, amsgrad):
        state = Textbook._state_for(self, p, amsgrad)
        state["step"].fill_(self._call - 1)
        return state


class NoneGradTreatedAsZero(Textbook):
    """parameters without a grad stepped as if their gradient were zero."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = self._evaluate(closure)
        missing = [p for group in self.param_groups for p in group["params"] if p.grad is None]
        for p in missing:
            p.grad = torch.zeros_like(p)
        super().step()
        for p in missing:
            p.grad = None
        return loss


class GradModifiedInPlace(Textbook):
    """maximize and decay written into p.grad in place (pytorch PR #92706)."""

    def direction(self, hp, grad):
        return grad.neg_() if hp.maximize else grad

    def decay(self, hp, p, g):
        if hp.weight_decay and not hp.decoupled:
            return g.add_(p, alpha=hp.weight_decay)
        return super().decay(hp, p, g)


class ParamReplaced(Textbook):
    """the update builds a new tensor and rebinds p.data instead of writing in place."""

    def apply(self, hp, p, m, denom, t):
        new = p.addcdiv(m, denom, value=-hp.lr / (1 - hp.beta1**t))
        if p._base is None:
            p.data = new.contiguous()
        else:
            p.copy_(new)


class StateInBfloat16(Textbook):
    """moments kept in bfloat16 whatever the parameter's dtype (low-precision state, torchao style)."""

    def _state_for(self, p, amsgrad):
        return _state_in(super()._state_for(p, amsgrad), torch.bfloat16, lambda x: not x.is_complex())

    def _update(self, work):
        _in_dtype_of(work, super()._update)


def _state_in(state: dict, dtype, applies) -> dict:
    """`state` with its moments converted to `dtype` where `applies`."""
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        if key in state and applies(state[key]) and state[key].dtype != dtype:
            state[key] = state[key].to(dtype)
    return state


def _in_dtype_of(work, update):
    """Run `update` on copies of the moments in their parameters' dtypes, and store them back."""
    wide = lambda xs: None if xs is None else [x.to(p.dtype) for x, p in zip(xs, work.params)]
    moments = [work.exp_avgs, work.exp_avg_sqs, work.max_exp_avg_sqs]
    copies = [wide(xs) for xs in moments]
    update(work._replace(exp_avgs=copies[0], exp_avg_sqs=copies[1], max_exp_avg_sqs=copies[2]))
    for xs, ws in zip(moments, copies):
        for x, w in zip(xs or [], ws or []):
            x.copy_(w)


class StoresBiasCorrectedMoments(Textbook):
    """keeps the bias-corrected moments m̂ and v̂ under torch's state keys (right parameters, unlike torch's state)."""

    def _update(self, work):
        hp = work.hp
        for m, v, t in zip(work.exp_avgs, work.exp_avg_sqs, work.steps):  # back to the raw moments of step t-1
            m.mul_(1 - hp.beta1 ** (t - 1) if t > 1 else 1.0)
            v.mul_(1 - hp.beta2 ** (t - 1) if t > 1 else 1.0)
        super()._update(work)
        for m, v, t in zip(work.exp_avgs, work.exp_avg_sqs, work.steps):
            m.div_(1 - hp.beta1**t)
            v.div_(1 - hp.beta2**t)


class ReloadDropsAmsgradMax(Textbook):
    """a state_dict without max_exp_avg_sq: after a reload AMSGrad's running max starts again from 0."""

    def state_dict(self):
        saved = super().state_dict()
        for state in saved["state"].values():
            state.pop("max_exp_avg_sq", None)
        return saved


class CheckpointStoresSqrt(Textbook):
    """the checkpoint keeps √v (a cached denominator) and squares it back on load: v loses its last bits."""

    def state_dict(self):
        saved = super().state_dict()
        for state in saved["state"].values():
            state["exp_avg_sq"] = state["exp_avg_sq"].sqrt()
        return saved

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for state in self.state.values():
            state["exp_avg_sq"].copy_(state["exp_avg_sq"] * state["exp_avg_sq"])


class LoadStateDictResetsStep(Textbook):
    """load_state_dict resets step counts, so a resumed run restarts bias correction (pytorch #5627)."""

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for state in self.state.values():
            state["step"].zero_()


class ZeroGradFillsZeros(Textbook):
    """zero_grad() fills gradients with zeros instead of setting them to None."""

    def zero_grad(self, set_to_none=True):
        super().zero_grad(set_to_none=False)


class HyperparametersReadOnce(Textbook):
    """lr read once, at a parameter's first step, so schedulers changing param_groups do nothing."""

    def _update(self, work):
        first = self.__dict__.setdefault("_first_lr", {})
        for p in work.params:
            first.setdefault(p.data_ptr(), work.hp.lr)
        super()._update(work._replace(hp=work.hp._replace(lr=first[work.params[0].data_ptr()])))


class ClosureLossNotReturned(Textbook):
    """step(closure) evaluates the closure but returns None."""

    def step(self, closure=None):
        super().step(closure)


class ClosureCalledTwice(Textbook):
    """step(closure) evaluates the closure twice (SAM-style wrappers' first pass kept by mistake: sam#90)."""

    @staticmethod
    def _evaluate(closure):
        if closure is None:
            return None
        with torch.enable_grad():
            closure()
            return closure()


class ClosureUnderNoGrad(Textbook):
    """step(closure) calls the closure inside its own no_grad, so loss.backward() fails (Lightning#18254)."""

    @staticmethod
    def _evaluate(closure):
        return None if closure is None else closure()


class StepInFloat16(Textbook):
    """keeps state["step"] as a float16 tensor, which stops counting at 2048 (pytorch#74424)."""

    def _state_for(self, p, amsgrad):
        state = super()._state_for(p, amsgrad)
        if state["step"].dtype != torch.float16:  # fill_(2049) on it then rounds to 2048
            state["step"] = state["step"].to(torch.float16)
        return state


class StepAsPythonInt(Textbook):
    """keeps state["step"] as a Python int, as transformers' AdamW did (torch keeps a float32 tensor)."""

    def step(self, closure=None):
        for state in self.state.values():
            if isinstance(state.get("step"), int):
                state["step"] = torch.tensor(float(state["step"]))
        loss = super().step(closure)
        for state in self.state.values():
            state["step"] = int(state["step"].item())
        return loss


class DefaultDecayOfAdamW(Textbook):
    """an Adam whose weight_decay defaults to AdamW's 1e-2 (an L2 default copied from an AdamW port)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, **kw):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **kw)


class BiasCorrectionDroppedLate(Textbook):
    """drops both bias corrections after step 1000, taking them as converged (1 - β₂ᵗ is still 0.63 there)."""

    def denominator(self, hp, second, t):
        return second.sqrt().add_(hp.eps) if t > 1000 else super().denominator(hp, second, t)

    def apply(self, hp, p, m, denom, t):
        p.addcdiv_(m, denom, value=-hp.lr if t > 1000 else -hp.lr / (1 - hp.beta1**t))


class InvalidHyperparametersAccepted(Textbook):
    """no validation of hyperparameters: a negative lr or beta >= 1 is accepted."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        torch.optim.Optimizer.__init__(self, params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                                         amsgrad=amsgrad, maximize=maximize,
                                                         decoupled_weight_decay=decoupled_weight_decay))


class SparseGradientDensified(Textbook):
    """a sparse gradient silently densified instead of rejected."""

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    p.grad = p.grad.to_dense()
        return super().step(closure)


class ChangesDefaultDtype(Textbook):
    """switches torch's default dtype to float64 for its scalar arithmetic and never switches back."""

    def _update(self, work):
        torch.set_default_dtype(torch.float64)
        super()._update(work)


class SetsThreads(Textbook):
    """sets torch's number of threads to one more than the program chose, for its own kernel, and leaves it."""

    def _update(self, work):
        torch.set_num_threads(torch.get_num_threads() + 1)
        super()._update(work)


class ChangesDirectory(Textbook):
    """changes the working directory to write a scratch file and never changes back."""

    def _update(self, work):
        os.chdir(tempfile.gettempdir())
        super()._update(work)


class StochasticRounding(Textbook):
    """each update dithered by a fraction of an ulp (stochastic rounding): within budget, nondeterministic."""

    def apply(self, hp, p, m, denom, t):
        if not hasattr(self, "_noise"):
            self._noise = torch.Generator().manual_seed(time.time_ns())
        step = m / denom * (-hp.lr / (1 - hp.beta1**t))
        dither = torch.rand(step.shape, generator=self._noise, dtype=torch.float64) - 0.5
        p.add_(step + (dither * torch.finfo(p.dtype).eps * step.abs().double()).to(p.dtype))


# -- kernels: tails, empty tensors, strides --------------------------------------------


class GradReadOneElementOff(Textbook):
    """a vectorised load off by one: element i reads the gradient of element i+1 (the last wraps round)."""

    def _update(self, work):
        super()._update(work._replace(grads=[g.flatten().roll(-1).view_as(g) for g in work.grads]))


class TailNotUpdated(Textbook):
    """blocks of 1024 and the partial last block of a larger tensor dropped (pytorch #119885 family)."""

    BLOCK = 1024

    def _update(self, work):
        lists = [list(xs) for xs in work[1:6] if xs is not None]
        for i, p in enumerate(work.params):
            tensors = [xs[i] for xs in lists]
            if p.numel() > self.BLOCK and all(x.is_contiguous() for x in tensors):
                kept = p.numel() // self.BLOCK * self.BLOCK
                for xs, x in zip(lists, tensors):
                    xs[i] = x.reshape(-1)[:kept]
        super()._update(GroupStep(work.hp, *lists[:4], lists[4] if len(lists) > 4 else None, work.steps))


class SkipsGroupEndingWithEmptyTensor(Textbook):
    """no update for a group whose last tensor is empty (pytorch #100701, TransformerEngine #3207)."""

    def _update(self, work):
        if work.params[-1].numel() == 0:
            return
        super()._update(work)


class GradReadWithParamStrides(Textbook):
    """the gradient read with the parameter's strides (torch's fused CPU kernel, found here)."""

    def _update(self, work):
        misread = [g.contiguous().as_strided(p.shape, p.stride()) if g.stride() != p.stride() and _dense(p) else g
                   for p, g in zip(work.params, work.grads)]
        super()._update(work._replace(grads=misread))


def _dense(t) -> bool:
    """Whether `t` covers its memory without gaps (as reading it with other strides stays in bounds)."""
    return t.numel() == 0 or sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1 == t.numel()


# -- branch-confined: each bug lives on one branch only, which the covering examples reach at quick --


class GradWrittenOnL2Path(Textbook):
    """the L2 term added into the gradient in place, grad.add_(p, alpha=wd), on the coupled-decay path only."""

    def decay(self, hp, p, g):
        if hp.weight_decay != 0 and not hp.decoupled:
            return g.add_(p, alpha=hp.weight_decay)
        return super().decay(hp, p, g)


class UndecayedFastPathNoBiasCorrection(Textbook):
    """a fast path for weight_decay == 0 that forgets the first moment's bias correction."""

    def apply(self, hp, p, m, denom, t):
        if hp.weight_decay == 0:
            return p.addcdiv_(m, denom, value=-hp.lr)
        return super().apply(hp, p, m, denom, t)


class TensorLrPathNoBiasCorrection(Textbook):
    """with lr given as a Tensor, a path of its own forgets the first moment's bias correction."""

    def _update(self, work):
        tensor_lr = {p.data_ptr() for g in self.param_groups if torch.is_tensor(g["lr"]) for p in g["params"]}
        self._tensor_lr = work.params[0].data_ptr() in tensor_lr
        super()._update(work)

    def apply(self, hp, p, m, denom, t):
        if self._tensor_lr:
            return p.addcdiv_(m, denom, value=-hp.lr)
        return super().apply(hp, p, m, denom, t)


class _DtypePath(Textbook):
    """A kernel path of one parameter dtype (DTYPE) that forgets the first moment's bias correction."""

    DTYPE = None

    def apply(self, hp, p, m, denom, t):
        if p.dtype == self.DTYPE:
            return p.addcdiv_(m, denom, value=-hp.lr)
        return super().apply(hp, p, m, denom, t)


class HalfPathNoBiasCorrection(_DtypePath):
    """float16 parameters take a kernel path of their own that forgets the first moment's bias correction."""

    DTYPE = torch.float16


class Bfloat16PathNoBiasCorrection(_DtypePath):
    """bfloat16 parameters take a kernel path of their own that forgets the first moment's bias correction."""

    DTYPE = torch.bfloat16


class Float64PathNoBiasCorrection(_DtypePath):
    """float64 parameters take a kernel path of their own that forgets the first moment's bias correction."""

    DTYPE = torch.float64


class ZeroDimPathNoBiasCorrection(Textbook):
    """0-d parameters take a scalar path that forgets the first moment's bias correction."""

    def apply(self, hp, p, m, denom, t):
        if p.dim() == 0:
            return p.addcdiv_(m, denom, value=-hp.lr)
        return super().apply(hp, p, m, denom, t)


class NonContiguousParamNotUpdated(Textbook):
    """a non-contiguous parameter is updated through a contiguous copy never written back (a real CPU Adam's bug)."""

    def _update(self, work):
        super()._update(work._replace(params=[p if p.is_contiguous() else p.contiguous() for p in work.params]))


class GroupsShareFirstGroupsHyperparameters(Textbook):
    """every param group stepped with the first group's hyperparameters."""

    def _update(self, work):
        super()._update(work._replace(hp=hyper(self.param_groups[0])))


class LateGroupCountsGlobalSteps(Textbook):
    """a param group added after the first step counts its steps from the optimizer's step() calls so far."""

    def step(self, closure=None):
        self._calls = getattr(self, "_calls", 0) + 1
        return super().step(closure)

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        late = self.__dict__.setdefault("_late", {})
        late.update({p.data_ptr(): getattr(self, "_calls", 0) for p in self.param_groups[-1]["params"]})

    def _update(self, work):
        late = self.__dict__.get("_late", {})
        super()._update(work._replace(steps=[t + late.get(p.data_ptr(), 0) for p, t in zip(work.params, work.steps)]))


#: Each branch a target may claim, and the branch-confined mutant that lives on it: all
#: must be killed at the quick profile (tests/test_kill_matrix.py).
BRANCHES = {
    "weight decay zero": UndecayedFastPathNoBiasCorrection,
    "coupled (L2) weight decay": GradWrittenOnL2Path,
    "decoupled weight decay": DecayAfterUpdate,
    "amsgrad": AmsgradMaxNotPersisted,
    "maximize": MaximizeIgnored,
    "tensor lr": TensorLrPathNoBiasCorrection,
    "float16": HalfPathNoBiasCorrection,
    "bfloat16": Bfloat16PathNoBiasCorrection,
    "float64": Float64PathNoBiasCorrection,
    "complex": ComplexSquared,
    "parameter layout": NonContiguousParamNotUpdated,
    "gradient layout": GradReadWithParamStrides,
    "closure": ClosureLossNotReturned,
    "several groups": GroupsShareFirstGroupsHyperparameters,
    "a group added late": LateGroupCountsGlobalSteps,
    "missing gradients": NoneGradTreatedAsZero,
    "0-d parameters": ZeroDimPathNoBiasCorrection,
    "empty parameters": SkipsGroupEndingWithEmptyTensor,
}


# -- what the preflight and diagnose must see through --------------------------------------


class RejectsZeroLr(Textbook):
    """rejects lr = 0, which torch accepts (a validation written as 0 < lr)."""

    def __init__(self, params, lr=1e-3, *args, **kwargs):
        if not lr > 0:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, lr, *args, **kwargs)


class _ComputedIn(Textbook):
    """Every step computed in DTYPE, whatever the parameters' dtype, and rounded once into it."""

    DTYPE = None

    def _update(self, work):
        cast = lambda xs: None if xs is None else [x.to(self.DTYPE) for x in xs]
        outs = [work.params, work.exp_avgs, work.exp_avg_sqs, work.max_exp_avg_sqs]
        copies = [cast(xs) for xs in outs]
        super()._update(GroupStep(work.hp, copies[0], cast(work.grads), *copies[1:], work.steps))
        for xs, ys in zip(outs, copies):
            for x, y in zip(xs or [], ys or []):
                x.copy_(y)


class Float32InsideEpsBeforeBiasCorrection(_ComputedIn):
    """computes in float32 whatever the parameter's dtype, and adds eps before the bias correction."""

    DTYPE = torch.float32

    def denominator(self, hp, second, t):
        return (second.sqrt() + hp.eps) / math.sqrt(1 - hp.beta2**t)

def _stored_blockwise(x, codes, block: int) -> None:
    """Round `x` in place as a blockwise format stores it: each block of `block` elements
    scaled to its largest |value|, each element to the nearest of `codes` (sorted, in [-1, 1])."""
    flat = x.reshape(-1).double()
    block = block or flat.numel()
    blocks = torch.nn.functional.pad(flat, (0, -flat.numel() % block)).view(-1, block)
    scale = blocks.abs().amax(1, keepdim=True).clamp_min(1e-12)
    table = torch.tensor(codes, dtype=torch.float64)
    rounded = table[torch.bucketize(blocks / scale, (table[1:] + table[:-1]) / 2)] * scale
    x.copy_(rounded.view(-1)[:flat.numel()].view(x.shape))


class Blockwise8bitState(Textbook):
    """stores m and v of 4096+ element tensors as 8-bit blockwise dynamic codes (as bnb, torchao) and declares it."""

    STATE_PRECISION = "8bit-dynamic"
    CODES = (precision.dynamic_map(signed=True), precision.dynamic_map(signed=False))
    FROM = 4096
    BLOCK = 256

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        if any(p.is_complex() for p in self.param_groups[-1]["params"]):
            raise TypeError("8-bit state holds real moments: complex parameters are not supported")

    def moments(self, hp, g, m, v):
        super().moments(hp, g, m, v)
        if m.numel() >= self.FROM and m.dtype in (torch.float32, torch.float64):  # low-precision params: torch's
            _stored_blockwise(m, self.CODES[0], self.BLOCK)
            _stored_blockwise(v, self.CODES[1], self.BLOCK)


class LinearCodesDeclaredDynamic(Blockwise8bitState):
    """8-bit state on a linear map (256 equal steps) declared dynamic (bnb's "linear" map where "dynamic" was meant)."""

    CODES = (tuple(np.linspace(-1, 1, 255)), tuple(np.linspace(0, 1, 256)))


class WholeTensorScaleDeclaredBlockwise(Blockwise8bitState):
    """8-bit state with one scale per tensor (bnb's block_wise=False) declared blockwise (a blind red team's find)."""

    BLOCK = None


class QuantizesBelowDeclaredSize(Blockwise8bitState):
    """8-bit state for tensors of every size, though it declares full precision below 4096 elements."""

    FROM = 1


ADAMW_MUTANTS = {CoupledDecay, DecayNotScaledByLr, DecayAfterUpdate, DecayAppliedTwice}

MUTANTS = [
    EpsBeforeBiasCorrection, EpsInsideSqrt, EpsAsFloor, ZeroEpsBecomesDefault, NoBiasCorrection,
    FirstMomentNotBiasCorrected, SecondMomentNotBiasCorrected, SecondCorrectionNotSquareRooted, BetasSwapped,
    FactoredSecondMoment, Beta2InBfloat16, BiasCorrectionInFloat32, DecoupledDecayInAdam, CoupledDecay,
    DecayNotScaledByLr, DecayAfterUpdate, DecayAppliedTwice, SkipsAllZeroGradients, DecoupledFlagIgnored,
    MaximizeIgnored, MaximizeByNegatingLr, MaximizeAfterDecay, AmsgradMaxNotPersisted, AmsgradMaxOfCorrected,
    AmsgradIgnored, NaNDroppedFromAmsgradMax, AmsgradMaxFlushedToZero, ComplexSquared, ComplexAmsgradMaxSkipped,
    StepCountPerGroup, StepCountGlobal, NoneGradTreatedAsZero, GradModifiedInPlace, ParamReplaced, StateInBfloat16,
    ReloadDropsAmsgradMax, CheckpointStoresSqrt, LoadStateDictResetsStep, ZeroGradFillsZeros,
    HyperparametersReadOnce, ClosureLossNotReturned, InvalidHyperparametersAccepted, SparseGradientDensified,
    ChangesDefaultDtype, SetsThreads, ChangesDirectory,
    StochasticRounding, GradReadOneElementOff, TailNotUpdated, SkipsGroupEndingWithEmptyTensor,
    GradReadWithParamStrides, GradWrittenOnL2Path, UndecayedFastPathNoBiasCorrection, TensorLrPathNoBiasCorrection,
    HalfPathNoBiasCorrection, Bfloat16PathNoBiasCorrection, Float64PathNoBiasCorrection, ZeroDimPathNoBiasCorrection,
    NonContiguousParamNotUpdated, GroupsShareFirstGroupsHyperparameters, LateGroupCountsGlobalSteps, RejectsZeroLr,
    Float32InsideEpsBeforeBiasCorrection, StoresBiasCorrectedMoments, ClosureCalledTwice, ClosureUnderNoGrad,
    StepInFloat16, StepAsPythonInt, DefaultDecayOfAdamW, BiasCorrectionDroppedLate, LinearCodesDeclaredDynamic,
    WholeTensorScaleDeclaredBlockwise, QuantizesBelowDeclaredSize,
]


# -- correct, but different: these must all be certified ---------------------------------


class Float64Inside(_ComputedIn):
    """computes every step in float64 and rounds once into the parameter's dtype."""

    DTYPE = torch.float64


class RearrangedAlgebra(Textbook):
    """θ -= (lr·√(1-β₂ᵗ)/(1-β₁ᵗ))·m / (√v + eps·√(1-β₂ᵗ)): the same formula, rearranged."""

    def denominator(self, hp, second, t):
        return second.sqrt().add_(hp.eps * math.sqrt(1 - hp.beta2**t))

    def apply(self, hp, p, m, denom, t):
        p.addcdiv_(m, denom, value=-hp.lr * math.sqrt(1 - hp.beta2**t) / (1 - hp.beta1**t))


class ChunkedLoop(Textbook):
    """updates every tensor in chunks of 7 elements, as a blocked kernel with a tail would."""

    def _update(self, work):
        for i, p in enumerate(work.params):
            one = work.subset([i])
            if not all(x.is_contiguous() for x in (p, one.grads[0], one.exp_avgs[0], one.exp_avg_sqs[0])):
                super()._update(one)
                continue
            for start in range(0, p.numel(), 7):
                chunks = [None if xs is None else [xs[0].reshape(-1)[start:start + 7]] for xs in one[1:6]]
                super()._update(GroupStep(work.hp, *chunks, one.steps))


class MomentsByMulAdd(Textbook):
    """the first moment as β₁m + (1-β₁)g instead of lerp."""

    def moments(self, hp, g, m, v):
        m.mul_(hp.beta1).add_(g, alpha=1 - hp.beta1)
        v.mul_(hp.beta2).addcmul_(g, g, value=1 - hp.beta2)


class SecondMomentByLerp(Textbook):
    """the second moment by lerp towards g², as torch's differentiable path does."""

    def moments(self, hp, g, m, v):
        m.lerp_(g, 1 - hp.beta1)
        v.lerp_(g * g, 1 - hp.beta2)


class Float32StateForLowPrecision(Textbook):
    """keeps float32 moments for float16 and bfloat16 parameters and computes in float32 (more accurate than torch)."""

    def _state_for(self, p, amsgrad):
        low = lambda x: x.dtype in (torch.float16, torch.bfloat16)
        return _state_in(super()._state_for(p, amsgrad), torch.float32, low)

    def load_state_dict(self, state_dict):
        """Keep the saved float32 moments: torch's loader casts state to each parameter's dtype."""
        super().load_state_dict(state_dict)
        ids = [i for group in state_dict["param_groups"] for i in group["params"]]
        params = [p for group in self.param_groups for p in group["params"]]
        for i, p in zip(ids, params):
            for key, saved in state_dict["state"].get(i, {}).items():
                if key != "step" and saved.dtype == torch.float32:
                    self.state[p][key] = saved.to(p.device, copy=True)

    def _update(self, work):
        wide = [p.to(m.dtype) for p, m in zip(work.params, work.exp_avgs)]
        super()._update(work._replace(params=wide, grads=[g.to(m.dtype) for g, m in zip(work.grads, work.exp_avgs)]))
        for p, w in zip(work.params, wide):
            if w is not p:
                p.copy_(w)


CORRECT = [Textbook, Float64Inside, RearrangedAlgebra, ChunkedLoop, MomentsByMulAdd, SecondMomentByLerp,
           Float32StateForLowPrecision, Blockwise8bitState]


def spec_of(cls) -> str:
    return "adamw" if cls in ADAMW_MUTANTS else "adam"


def factory(cls):
    """The mutant as the optimizer class a user would hand in: AdamW form for AdamW bugs."""
    return adamw(cls) if cls in ADAMW_MUTANTS else cls
