"""``compiled``: Adam as one ``torch.compile``'d update over many parameters at once.

The math is ``eager``'s (see its docstring): for each parameter θ with gradient g,
moments m, v (and v̄ with AMSGrad) at its own step t,

    g ← -g if maximize;  g ← g + λθ (coupled) or θ ← θ(1 - γλ) (decoupled)
    m ← m + (1-β₁)(g - m);  v ← β₂v + (1-β₂)g²;  v̄ ← max(v̄, v)
    θ ← θ + (-γ/(1-β₁ᵗ)) · m / (√v̄ / √(1-β₂ᵗ) + ε)

The parameters of one (device, dtype) are updated ``WIDTH`` at a time by one compiled
graph, which inductor fuses vertically (one pass over θ, g, m, v for each parameter)
and horizontally (one kernel for all ``WIDTH``), its loops parallel over the CPU's
threads. A group's last, partial chunk is padded with tiny dummy tensors, so one
graph serves every chunk. Training never recompiles:

* hyperparameters, maximize and the decay (λ for coupled decay, else 0; 1-γλ for
  decoupled decay, else 1) enter as 0-d tensors, and the per-parameter step sizes
  -γ/(1-β₁ᵗ) and √(1-β₂ᵗ) as ``WIDTH``-vectors, so new steps, per-parameter step
  counts, lr schedules and flags reuse the graph;
* tensors enter as 1-D tensors with their own dynamic sizes, traced size-obliviously
  (no specialisation on sizes 0 or 1), so any shapes and parameter counts reuse it;
* what changes the graph's code is static: device type, dtype and amsgrad. That
  bounds the graphs at 2 × 4 × 2 = 16 per process; a training run uses one or two.

Extra memory per step: two ``WIDTH``-vectors; parameters whose layout is not dense
are updated through contiguous copies, a chunk at a time.

Where compilation is impossible (dynamo unsupported on this Python, no C++ compiler
for inductor, a backend failure) it warns once and runs the same function uncompiled.
"""

from __future__ import annotations

import functools
import warnings

import torch
import torch.fx.experimental._config as fx_config
from torch import Tensor

from impls.base import AdamBase, GroupStep, as_1d, forms

#: Parameters updated by one call of the compiled graph.
WIDTH = 8

#: The most graphs `_adam_chunk_step` can need (see the module docstring).
MAX_GRAPHS = 16
#: The recompile limit by the name of the installed release (``cache_size_limit`` before 2.7),
#: and the shape options it has (torch 2.6 lacks ``backed_size_oblivious``: there sizes 0
#: and 1 are specialised, which costs graphs, not correctness).
DYNAMO_LIMIT = {("recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else "cache_size_limit"):
                MAX_GRAPHS}
SHAPES = {k: v for k, v in dict(backed_size_oblivious=True, use_duck_shape=False).items() if hasattr(fx_config, k)}


def _lerp_takes_a_double_weight() -> bool:
    """Whether lerp_ takes a float64 0-d weight on a float32 tensor (torch 2.6 requires the
    tensor's dtype; later releases take it as a scalar)."""
    try:
        torch.zeros(1).lerp_(torch.ones(1), torch.tensor(0.5, dtype=torch.float64))
    except RuntimeError:
        return False
    return True


#: Where lerp_ wants its weight in the moment's dtype, the weight is rounded to it: in float32
#: and float64 the precision later releases take it at too, in float16 and bfloat16 a rounding
#: of 1-β₁ they do not make (the error budget judges it).
DOUBLE_WEIGHT = _lerp_takes_a_double_weight()


def _adam_chunk_step(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    max_exp_avg_sqs: list[Tensor] | None,
    maximize: Tensor,
    weight_decay: Tensor,
    shrink: Tensor,
    one_minus_beta1: Tensor,
    beta2: Tensor,
    one_minus_beta2: Tensor,
    eps: Tensor,
    neg_step_sizes: Tensor,
    bias_correction2_sqrts: Tensor,
) -> None:
    """One Adam step of each parameter, in place. ``weight_decay`` is λ with coupled decay, else 0;
    ``shrink`` is 1-γλ with decoupled decay, else 1 (so θ·shrink is exact)."""
    for i, (param, grad, exp_avg, exp_avg_sq) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        grad = torch.where(maximize, -grad, grad)
        param.mul_(shrink)
        grad = torch.where(weight_decay != 0, grad + weight_decay * param, grad)
        exp_avg.lerp_(grad, one_minus_beta1 if DOUBLE_WEIGHT else one_minus_beta1.to(exp_avg.dtype))
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=one_minus_beta2)
        second_moment = exp_avg_sq
        if max_exp_avg_sqs is not None:
            second_moment = max_exp_avg_sqs[i]
            second_moment.copy_(torch.maximum(second_moment, exp_avg_sq))
        denom = (second_moment.sqrt() / bias_correction2_sqrts[i]).add_(eps)
        param.addcdiv_(exp_avg, denom, value=neg_step_sizes[i])


_compiled_step = None  # built on first use: torch.compile is not free at import time


def _step_function():
    """The compiled step, or the plain one (with a warning, once) where compiling is impossible."""
    global _compiled_step
    if _compiled_step is None:
        if torch._dynamo.is_dynamo_supported():
            # dynamic_threads: inductor's loops over dynamic sizes are otherwise serial.
            _compiled_step = torch.compile(_adam_chunk_step, dynamic=True, fullgraph=True,
                                           options={"cpp.dynamic_threads": True})
        else:
            _fall_back("torch.compile is not supported on this Python or platform")
    return _compiled_step


def _fall_back(reason: str) -> None:
    global _compiled_step
    warnings.warn(f"compiled Adam: {reason}; running the step uncompiled", RuntimeWarning, stacklevel=3)
    _compiled_step = _adam_chunk_step


class CompiledAdam(AdamBase):
    """torch.optim.Adam whose update is a torch.compile'd (inductor) graph over WIDTH parameters."""

    def _update(self, work: GroupStep) -> None:
        hp = work.hp
        scalar = lambda x: torch.tensor(x, dtype=torch.float64)  # 0-d, CPU
        mode, factor = hp.decay()
        shared = (torch.tensor(hp.maximize), scalar(factor if mode == "coupled" else 0.0),
                  scalar(factor if mode == "decoupled" else 1.0),
                  scalar(1 - hp.beta1), scalar(hp.beta2), scalar(1 - hp.beta2), scalar(hp.eps))
        with torch._dynamo.config.patch(**DYNAMO_LIMIT), fx_config.patch(**SHAPES):
            for part in work.by_device_dtype():
                nonempty = [i for i, p in enumerate(part.params) if p.numel() > 0]
                for start in range(0, len(nonempty), WIDTH):
                    _run_chunk(part.subset(nonempty[start : start + WIDTH]), shared)


def _run_chunk(chunk: GroupStep, shared: tuple) -> None:
    """Update the (at most WIDTH) parameters of `chunk`, padded to WIDTH with dummies."""
    hp, amsgrad = chunk.hp, chunk.max_exp_avg_sqs is not None
    columns: list[list[Tensor]] = [[], [], [], [], []]  # θ, g, m, v, v̄ as 1-D tensors
    finishes = []
    for i, param in enumerate(chunk.params):
        max_exp_avg_sq = [chunk.max_exp_avg_sqs[i]] if amsgrad else []
        (grad,), (param, *state), finish = as_1d([chunk.grads[i]], [param, chunk.exp_avgs[i],
                                                                     chunk.exp_avg_sqs[i], *max_exp_avg_sq])
        for column, t in zip(columns, [param, grad, *state]):
            column.append(t)
        finishes.append(finish)
    device = chunk.params[0].device
    padding = _padding(device, chunk.params[0].dtype)[len(chunk.params) :]
    for dummies in padding:
        for column, t in zip(columns, dummies):
            column.append(t)
    params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs = columns
    neg_step_sizes = [-hp.lr / (1 - hp.beta1**t) for t in chunk.steps] + [0.0] * len(padding)
    bias_correction2_sqrts = [(1 - hp.beta2**t) ** 0.5 for t in chunk.steps] + [1.0] * len(padding)
    _run((params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else None, *shared,
          torch.tensor(neg_step_sizes, dtype=torch.float64, device=device),
          torch.tensor(bias_correction2_sqrts, dtype=torch.float64, device=device)))
    for finish in finishes:
        finish()


@functools.cache
def _padding(device: torch.device, dtype: torch.dtype) -> list[list[Tensor]]:
    """WIDTH sets of distinct 2-element (θ, g, m, v, v̄) that pad a chunk; their values do not matter."""
    return [[torch.zeros(2, device=device, dtype=dtype) for _ in range(5)] for _ in range(WIDTH)]


def _run(args: tuple) -> None:
    step = _step_function()
    try:
        step(*args)
    except (torch._dynamo.exc.TorchDynamoException, torch._dynamo.exc.FailOnRecompileLimitHit) as e:
        if step is _adam_chunk_step:
            raise
        _fall_back(f"torch.compile failed ({_root_cause(e)})")
        _adam_chunk_step(*args)


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
                    f"{WIDTH} parameters per torch.compile'd (inductor) update, no recompiles across steps",
                    how=_how)
