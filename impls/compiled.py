"""``compiled``: the Adam step of each parameter compiled with ``torch.compile``.

The math is ``eager``'s (see its docstring). The update of one parameter is one
compiled graph (inductor fuses it into a single pass over θ, g, m and v), built so that
training never recompiles:

* every hyperparameter and step-dependent scalar (lr/(1-β₁ᵗ), √(1-β₂ᵗ), ...) enters
  as a 0-d tensor, so new values, lr schedules and new steps reuse the graph;
* tensors enter as 1-D views with a dynamic size, so new shapes reuse the graph;
* what changes the graph's code is static: dtype, maximize, the decay mode
  (none, coupled, decoupled) and amsgrad, plus dynamo's own specialisation of
  size-1 tensors. That bounds the graphs at 4 × 2 × 3 × 2 × 2 = 96 per process; a
  training run uses one or two.

Where compilation is impossible (dynamo unsupported on this Python, no C++ compiler
for inductor, a backend failure) it warns once and runs the same function uncompiled.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from impls.base import AdamBase, GroupStep, as_1d, forms

#: The most graphs `_adam_tensor_step` can need (see the module docstring).
MAX_GRAPHS = 96


def _adam_tensor_step(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None,
    decay: Tensor,
    one_minus_beta1: Tensor,
    beta2: Tensor,
    one_minus_beta2: Tensor,
    eps: Tensor,
    neg_step_size: Tensor,
    bias_correction2_sqrt: Tensor,
    maximize: bool,
    decay_mode: str,
) -> None:
    """One Adam step of one parameter, in place. ``decay`` is λ (coupled) or 1-γλ (decoupled)."""
    if maximize:
        grad = -grad
    if decay_mode == "decoupled":
        param.mul_(decay)
    elif decay_mode == "coupled":
        grad = grad + decay * param
    exp_avg.lerp_(grad, one_minus_beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=one_minus_beta2)
    second_moment = exp_avg_sq
    if max_exp_avg_sq is not None:
        max_exp_avg_sq.copy_(torch.maximum(max_exp_avg_sq, exp_avg_sq))
        second_moment = max_exp_avg_sq
    denom = (second_moment.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=neg_step_size)


_compiled_step = None  # built on first use: torch.compile is not free at import time


def _step_function():
    """The compiled step, or the plain one (with a warning, once) where compiling is impossible."""
    global _compiled_step
    if _compiled_step is None:
        if torch._dynamo.is_dynamo_supported():
            _compiled_step = torch.compile(_adam_tensor_step, dynamic=True, fullgraph=True)
        else:
            _fall_back("torch.compile is not supported on this Python or platform")
    return _compiled_step


def _fall_back(reason: str) -> None:
    global _compiled_step
    warnings.warn(f"compiled Adam: {reason}; running the step uncompiled", RuntimeWarning, stacklevel=3)
    _compiled_step = _adam_tensor_step


class CompiledAdam(AdamBase):
    """torch.optim.Adam whose per-parameter update is a torch.compile'd (inductor) graph."""

    def _update(self, work: GroupStep) -> None:
        hp = work.hp
        scalar = lambda x: torch.tensor(x, dtype=torch.float64)  # 0-d, CPU
        decay_mode, decay = hp.decay()
        shared = (scalar(decay), scalar(1 - hp.beta1), scalar(hp.beta2), scalar(1 - hp.beta2), scalar(hp.eps))
        for i, param in enumerate(work.params):
            if param.numel() == 0:
                continue
            t = work.steps[i]
            state = [work.exp_avgs[i], work.exp_avg_sqs[i]]
            if work.max_exp_avg_sqs is not None:
                state.append(work.max_exp_avg_sqs[i])
            (grad,), (p, m, v, *vmax), finish = as_1d([work.grads[i]], [param, *state])
            per_step = (scalar(-hp.lr / (1 - hp.beta1**t)), scalar((1 - hp.beta2**t) ** 0.5))
            args = (p, grad, m, v, vmax[0] if vmax else None, *shared, *per_step, hp.maximize, decay_mode)
            _run(args)
            finish()


def _run(args: tuple) -> None:
    step = _step_function()
    try:
        with torch._dynamo.config.patch(recompile_limit=MAX_GRAPHS):
            step(*args)
    except (torch._dynamo.exc.TorchDynamoException, torch._dynamo.exc.FailOnRecompileLimitHit) as e:
        if step is _adam_tensor_step:
            raise
        _fall_back(f"torch.compile failed ({_root_cause(e)})")
        _adam_tensor_step(*args)


def _root_cause(e: BaseException) -> str:
    """`Type: first line` of the innermost cause of `e`."""
    while (inner := e.__cause__ or getattr(e, "inner_exception", None)) is not None:
        e = inner
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _how(devices) -> str:
    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile unsupported here: runs uncompiled"
    cuda = "cuda" if torch.cuda.is_available() else "cuda not available"
    return f"torch.compile (inductor) on cpu; {cuda}"


ADAM, ADAMW = forms("compiled", CompiledAdam,
                    "per-parameter step compiled by torch.compile (inductor), no recompiles across steps", how=_how)
