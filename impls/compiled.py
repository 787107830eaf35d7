"""``compiled``: Adam as one ``torch.compile``'d update over many parameters at once.

The math is ``eager``'s (see its docstring): for each parameter θ with gradient g,
moments m, v (and v̄ with AMSGrad) at its own step t,

    g ← -g if maximize;  g ← g + λθ (coupled) or θ ← θ(1 - γλ) (decoupled)
    m ← m + (1-β₁)(g - m);  v ← β₂v + (1-β₂)g²;  v̄ ← max(v̄, v)
    θ ← θ + (-γ/(1-β₁ᵗ)) · m / (√v̄ / √(1-β₂ᵗ) + ε)

The parameters of one (device, dtype) are updated in slots, ``WIDTH`` slots at a time by
one compiled graph, which inductor fuses vertically (one pass over θ, g, m, v for each
slot) and horizontally (one kernel for all ``WIDTH``), its loops parallel over the CPU's
threads. A slot is a parameter of more than ``SMALL`` elements, as 1-D tensors over its
memory; or all the parameters of at most ``SMALL`` elements at one step count, as flat
tensors, a workspace kept from step to step: θ and g are copied into it before the graph
runs and θ back after, a multi-tensor copy each, which costs less per parameter than a
slot of its own (the Python work and guards of a slot, a loop of its own in the kernel).
Their moments m, v (v̄) live in the workspace: their state tensors are views of it (for
contiguous real parameters with moments of their dtype; others' are copied in and out too,
and a state tensor replaced, by ``load_state_dict`` say, is copied in and adopted again). A
group's last, partial chunk is padded with tiny dummy tensors, so one graph serves every
chunk. Training never recompiles:

* hyperparameters, maximize and the decay (λ for coupled decay, else 0; 1-γλ for
  decoupled decay, else 1) enter as 0-d tensors, and the per-parameter step sizes
  -γ/(1-β₁ᵗ) and √(1-β₂ᵗ) as ``WIDTH``-vectors, so new steps, per-parameter step
  counts, lr schedules and flags reuse the graph;
* tensors enter as 1-D tensors with their own dynamic sizes, traced size-obliviously
  (no specialisation on sizes 0 or 1), so any shapes and parameter counts reuse it;
* what changes the graph's code is static: device type, dtype and amsgrad. That
  bounds the graphs at 2 × 4 × 2 = 16 per process; a training run uses one or two.

Extra memory: two ``WIDTH``-vectors per call, and the workspaces' θ and g (m, v and v̄ too
where not adopted) for the parameters of at most ``SMALL`` elements, kept from one step to
the next and dropped by a step that does not use them (one that changes which of them have
a gradient makes new ones; moments adopted by a dropped workspace keep its flat tensors
alive until they are adopted again). Parameters of more than ``SMALL`` elements whose
layout is not dense are updated through contiguous copies, a chunk at a time.

Where compilation is impossible (dynamo unsupported on this Python, no C++ compiler
for inductor, a backend failure) it warns once and runs the same function uncompiled.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.fx.experimental._config as fx_config
from torch import Tensor

from impls.base import AdamBase, GroupStep, as_1d, forms

#: Inductor's options. dynamic_threads: its loops over dynamic sizes are otherwise serial.
#: enable_loop_tail_vec off: a scalar loop, not a masked vector one, for each loop's last
#: elements, which lets a bfloat16 loop take 32 elements at a time, not 16 (half the loads
#: and conversions of the scalars, which it repeats at every step of its vector loop).
OPTIONS = {f"cpp.{k}": v for k, v in dict(dynamic_threads=True, enable_loop_tail_vec=False).items()
           if hasattr(torch._inductor.config.cpp, k)}

#: Slots updated by one call of the compiled graph.
WIDTH = 8
#: Parameters of at most this many elements share a slot (see the module docstring).
SMALL = 1 << 12

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
            _compiled_step = torch.compile(_adam_chunk_step, dynamic=True, fullgraph=True, options=OPTIONS)
        else:
            _fall_back("torch.compile is not supported on this Python or platform")
    return _compiled_step


def _fall_back(reason: str) -> None:
    global _compiled_step
    warnings.warn(f"compiled Adam: {reason}; running the step uncompiled", RuntimeWarning, stacklevel=3)
    _compiled_step = _adam_chunk_step


class Slot(NamedTuple):
    """One parameter's place in a call of the graph: θ, g, m, v (and v̄) as 1-D tensors, their
    step count, and what finishes the update once the graph has run (copies back, if any)."""

    tensors: list[Tensor]
    step: int
    finish: Callable[[], None]


class Workspace(NamedTuple):
    """Flat θ, g, m, v (and v̄) for the small parameters `params` of a slot, and views of them
    shaped as each parameter. `adopted`: whether the views of m, v (v̄) may serve as their state."""

    params: list[Tensor]
    sizes: list[int]
    flats: list[Tensor]
    views: list[list[Tensor]]
    adopted: bool


@dataclasses.dataclass
class Workspaces:
    """An optimizer's workspaces: those of its last step and of this one, by key, and its state."""

    state: dict
    last: dict
    used: dict = dataclasses.field(default_factory=dict)


class CompiledAdam(AdamBase):
    """torch.optim.Adam whose update is a torch.compile'd (inductor) graph over WIDTH slots at a time."""

    def step(self, closure=None):
        """Perform one optimization step; the workspaces this step did not use are dropped."""
        self._spaces = Workspaces(self.state, getattr(self, "_workspaces", {}))
        loss = super().step(closure)
        self._workspaces = self._spaces.used
        return loss

    def _update(self, work: GroupStep) -> None:
        hp = work.hp
        scalar = lambda x: torch.tensor(x, dtype=torch.float64)  # 0-d, CPU
        mode, factor = hp.decay()
        shared = (torch.tensor(hp.maximize), scalar(factor if mode == "coupled" else 0.0),
                  scalar(factor if mode == "decoupled" else 1.0),
                  scalar(1 - hp.beta1), scalar(hp.beta2), scalar(1 - hp.beta2), scalar(hp.eps))
        spaces = getattr(self, "_spaces", None) or Workspaces(self.state, {})
        with torch._dynamo.config.patch(**DYNAMO_LIMIT), fx_config.patch(**SHAPES):
            for part in work.by_device_dtype():
                slots = _slots(part, spaces)
                for start in range(0, len(slots), WIDTH):
                    _run_chunk(hp, slots[start : start + WIDTH], shared)


def _slots(part: GroupStep, spaces: Workspaces) -> list[Slot]:
    """The slots of one (device, dtype): one per parameter of more than SMALL elements, one per
    step count for those of at most SMALL (empty parameters have nothing to update)."""
    sizes = [p.numel() for p in part.params]
    slots = []
    for i, size in enumerate(sizes):
        if size > SMALL:
            states = [part.exp_avgs[i], part.exp_avg_sqs[i], *([part.max_exp_avg_sqs[i]] if _ams(part) else [])]
            (grad,), (param, *states), finish = as_1d([part.grads[i]], [part.params[i], *states])
            slots.append(Slot([param, grad, *states], part.steps[i], finish))
    if max(sizes) <= SMALL and part.steps.count(part.steps[0]) == len(sizes):  # the common case, at once
        buckets = {part.steps[0]: part if min(sizes) > 0 else part.subset([i for i, n in enumerate(sizes) if n])}
    else:
        index: dict[int, list[int]] = {}
        for i, (size, t) in enumerate(zip(sizes, part.steps)):
            if 0 < size <= SMALL:
                index.setdefault(t, []).append(i)
        buckets = {t: part.subset(ix) for t, ix in index.items()}
    return slots + [_small_slot(bucket, t, spaces) for t, bucket in buckets.items() if bucket.params]


def _ams(work: GroupStep) -> bool:
    return work.max_exp_avg_sqs is not None


def _small_slot(bucket: GroupStep, t: int, spaces: Workspaces) -> Slot:
    """One slot for the small parameters of `bucket`, all at step `t`, through a flat workspace:
    θ and g copied in, θ copied back when the graph has run; m, v (and v̄) too, unless their
    state tensors are the workspace's views (adopted: then they are updated where they are)."""
    columns = [bucket.params, bucket.grads, bucket.exp_avgs, bucket.exp_avg_sqs,
               *([bucket.max_exp_avg_sqs] if _ams(bucket) else [])]
    key = (len(columns), *map(id, bucket.params))  # the workspace holds them: no id is reused while it lives
    space = spaces.last.get(key) or spaces.used.get(key)
    if space is None or space.sizes != [p.numel() for p in bucket.params]:
        space = _workspace(columns, spaces.state)
    spaces.used[key] = space
    moments = columns[2:]
    resident = all(all(map(operator.is_, views, column)) for views, column in zip(space.views[2:], moments))
    for views, column in zip(space.views, columns[:2] if resident else columns):
        torch._foreach_copy_(views, column)
    if not resident and space.adopted:
        _adopt(space, spaces.state)
        resident = True
    back = [0] if resident else [0, *range(2, len(columns))]

    def finish() -> None:
        for k in back:
            torch._foreach_copy_(columns[k], space.views[k])

    return Slot(space.flats, t, finish)


def _workspace(columns: list[list[Tensor]], state: dict) -> Workspace:
    """A workspace for `columns`, θ, g, m, v (and v̄); the moments' views may be adopted as their
    state where each parameter is a contiguous real parameter (in `state`) with moments of its dtype."""
    params = columns[0]
    sizes = [p.numel() for p in params]
    flats = [params[0].new_empty(sum(sizes)) for _ in columns]
    views = [list(torch._utils._unflatten_dense_tensors(flat, params)) for flat in flats]
    adopted = all(p.is_contiguous() and p in state for p in params) and all(
        m.dtype == p.dtype for column in columns[2:] for m, p in zip(column, params))
    return Workspace(list(params), sizes, flats, views, adopted)


def _adopt(space: Workspace, state: dict) -> None:
    """Make the workspace's views of m, v (and v̄), which hold their values, the parameters' state."""
    keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    for p, *moments in zip(space.params, *space.views[2:]):
        entry = state[p]
        for key, moment in zip(keys, moments):
            entry[key] = moment


def _run_chunk(hp, slots: list[Slot], shared: tuple) -> None:
    """Update the (at most WIDTH) slots, padded to WIDTH with dummies."""
    first = slots[0].tensors[0]
    width = len(slots[0].tensors)  # 5 with AMSGrad
    padding = _padding(first.device, first.dtype)[len(slots) :]
    rows = [s.tensors for s in slots] + [dummies[:width] for dummies in padding]
    params, grads, exp_avgs, exp_avg_sqs, *max_exp_avg_sqs = map(list, zip(*rows))
    steps = [s.step for s in slots]
    neg_step_sizes = [-hp.lr / (1 - hp.beta1**t) for t in steps] + [0.0] * len(padding)
    bias_correction2_sqrts = [(1 - hp.beta2**t) ** 0.5 for t in steps] + [1.0] * len(padding)
    _run((params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs[0] if max_exp_avg_sqs else None, *shared,
          torch.tensor(neg_step_sizes, dtype=torch.float64, device=first.device),
          torch.tensor(bias_correction2_sqrts, dtype=torch.float64, device=first.device)))
    for slot in slots:
        slot.finish()


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
                    f"{WIDTH} slots per torch.compile'd (inductor) update (small parameters share one), "
                    "no recompiles across steps",
                    how=_how)
