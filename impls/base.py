"""What every built-in Adam shares: torch.optim.Adam's constructor, lazy state and step loop.

A subclass supplies one method, ``_update(work)``, which applies one Adam step to the
parameters of one param group that have a gradient, handed over as one `GroupStep`
record. Everything around it follows ``torch.optim.Adam`` exactly:

* the constructor takes ``lr`` (float or 1-element tensor), ``betas``, ``eps``,
  ``weight_decay``, ``amsgrad``, ``maximize`` and ``decoupled_weight_decay`` and
  rejects invalid values with torch's ``ValueError`` messages;
* hyperparameters are read from each param group on every step;
* state lives in ``self.state[p]`` (``step``, ``exp_avg``, ``exp_avg_sq`` and, with
  amsgrad, ``max_exp_avg_sq``), so ``state_dict()`` round-trips; ``step`` is a 0-d
  float32 CPU tensor, counted per parameter;
* parameters without a grad are skipped (no state, no decay, no step);
* complex parameters are updated as ``torch.view_as_real`` pairs of reals;
* ``step(closure)`` evaluates the closure with grad enabled and returns its loss;
* parameters are updated in place and gradients are never written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from conformance.registry import Implementation


class Hyper(NamedTuple):
    """One param group's hyperparameters as Python numbers, read at each step."""

    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float
    amsgrad: bool
    maximize: bool
    decoupled: bool

    def decay(self) -> tuple[str, float]:
        """The decay and its factor: ("none", 0), ("coupled", λ) for g += λθ, or
        ("decoupled", 1 - γλ) for θ *= 1 - γλ."""
        if self.weight_decay == 0:
            return "none", 0.0
        if self.decoupled:
            return "decoupled", 1 - self.lr * self.weight_decay
        return "coupled", self.weight_decay


class GroupStep(NamedTuple):
    """One step of one param group: its hyperparameters and, for each of its parameters that
    has a gradient (complex ones as view_as_real), the tensors to update in place and the
    parameter's step count, this step counted. ``max_exp_avg_sqs`` is None without AMSGrad."""

    hp: Hyper
    params: list[Tensor]
    grads: list[Tensor]
    exp_avgs: list[Tensor]
    exp_avg_sqs: list[Tensor]
    max_exp_avg_sqs: list[Tensor] | None
    steps: list[int]

    def subset(self, index: list[int]) -> GroupStep:
        """The same step for the parameters at `index` only."""
        pick = lambda xs: None if xs is None else [xs[i] for i in index]
        return GroupStep(self.hp, *(pick(xs) for xs in self[1:]))

    def part(self, start: int, stop: int) -> GroupStep:
        """The same step for the parameters at `start` to `stop` (excluded) only."""
        cut = lambda xs: None if xs is None else xs[start:stop]
        return GroupStep(self.hp, *(cut(xs) for xs in self[1:]))

    def by_device_dtype(self) -> list[GroupStep]:
        """The step split by (device, dtype), each part in the parameters' order."""
        keys = [(p.device, p.dtype) for p in self.params]
        if keys.count(keys[0]) == len(keys):  # the common case: one part, as it is
            return [self]
        index: dict[tuple, list[int]] = {}
        for i, key in enumerate(keys):
            index.setdefault(key, []).append(i)
        return [self.subset(ix) for ix in index.values()]


def validate(lr, betas, eps, weight_decay) -> None:
    """Reject what torch.optim.Adam rejects, with torch's messages."""
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError("Tensor lr must be 1-element")
    if not 0.0 <= lr:
        raise ValueError(f"Invalid learning rate: {lr}")
    if not 0.0 <= eps:
        raise ValueError(f"Invalid epsilon value: {eps}")
    for i, beta in enumerate(betas):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
    if not 0.0 <= weight_decay:
        raise ValueError(f"Invalid weight_decay value: {weight_decay}")
    if isinstance(betas[0], Tensor) != isinstance(betas[1], Tensor):
        raise ValueError("betas must be either both floats or both Tensors")
    for i, beta in enumerate(betas):
        if isinstance(beta, Tensor) and beta.numel() != 1:
            raise ValueError(f"Tensor betas[{i}] must be 1-element")


class AdamBase(torch.optim.Optimizer):
    """torch.optim.Adam's interface; subclasses implement `_update`."""

    def __init__(self, params, lr: float | Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        validate(lr, betas, eps, weight_decay)
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        super().__init__(params, defaults)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)
            group.setdefault("maximize", False)
            group.setdefault("decoupled_weight_decay", False)
            for p in group["params"]:
                p_state = self.state.get(p, {})
                if p_state and not torch.is_tensor(p_state["step"]):
                    p_state["step"] = torch.tensor(float(p_state["step"]), dtype=torch.float32)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimization step; return the closure's loss if one is given."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            work = self._group_step(group)
            if work is not None:
                self._update(work)
        return loss

    def _group_step(self, group: dict) -> GroupStep | None:
        """The group's step (None if no parameter has a grad): state created where missing, each
        parameter's step counted. One pass per list, not per parameter: this is per-tensor overhead."""
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return None
        grads = [p.grad for p in params]
        if any(g.is_sparse for g in grads):
            raise RuntimeError(
                f"{type(self).__name__} does not support sparse gradients, please consider SparseAdam instead"
            )
        amsgrad, state_for = group["amsgrad"], self._state_for
        states = [state_for(p, amsgrad) for p in params]
        counters = [s["step"] for s in states]
        counts = [c.item() + 1 for c in counters]
        _count(counters, counts)
        lists = [params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                 [s["max_exp_avg_sq"] for s in states] if amsgrad else None]
        if any(p.is_complex() for p in params):
            lists = [None if xs is None else [_real(x) for x in xs] for xs in lists]
        return GroupStep(hyper(group), *lists, [int(c) for c in counts])

    @staticmethod
    def _evaluate(closure) -> Tensor | None:
        """The closure's loss, evaluated with grad enabled (None without a closure)."""
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def _state_for(self, p: Tensor, amsgrad: bool) -> dict:
        """The state of `p`, created as zeros (in p's layout) on its first step."""
        state = self.state[p]
        if not state:
            state["step"] = torch.tensor(0.0, dtype=torch.float32)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return state

    def _update(self, work: GroupStep) -> None:
        """Apply one Adam step in place. All tensors are real; ``work.steps`` counts this one."""
        raise NotImplementedError


def hyper(group: dict) -> Hyper:
    beta1, beta2 = group["betas"]
    return Hyper(
        lr=float(group["lr"]),
        beta1=float(beta1),
        beta2=float(beta2),
        eps=float(group["eps"]),
        weight_decay=float(group["weight_decay"]),
        amsgrad=bool(group["amsgrad"]),
        maximize=bool(group["maximize"]),
        decoupled=bool(group["decoupled_weight_decay"]),
    )


#: The step counters' increment: a 0-d tensor, which torch._foreach_add_ takes without
#: wrapping a Python 1 into a new tensor for every counter on the CPU.
_ONE = torch.tensor(1.0)


def _count(counters: list[Tensor], counts: list[float]) -> None:
    """Count this step: each counter, read as ``counts`` - 1, += 1 in its own dtype (as
    ``fill_(count)`` rounds it). One that cannot take a float (an integer tensor) is filled instead."""
    try:
        torch._foreach_add_(counters, _ONE, alpha=1)
    except RuntimeError:
        for counter, count in zip(counters, counts):
            counter.fill_(count)


def _real(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def forms(name: str, adam_cls: type[AdamBase], description: str, **fields) -> tuple[Implementation, Implementation]:
    """`adam_cls` and its AdamW form (`adamw`) as the Implementations `name` and `name-adamw`."""
    return Implementation.pair(name, adam_cls, adamw(adam_cls), description, **fields)


def adamw(adam_cls: type[AdamBase]) -> type[AdamBase]:
    """The AdamW form of `adam_cls`: the same class with decoupled weight decay, as in torch.

    Its constructor is torch.optim.AdamW's: weight_decay defaults to 1e-2 and there is no
    ``decoupled_weight_decay`` keyword.
    """

    def __init__(self, params, lr: float | Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        adam_cls.__init__(self, params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                          decoupled_weight_decay=True)

    def __setstate__(self, state):
        adam_cls.__setstate__(self, state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True

    name = adam_cls.__name__.removesuffix("Adam") + "AdamW"
    doc = f"{adam_cls.__name__} with decoupled weight decay (torch.optim.AdamW semantics)."
    return type(
        name,
        (adam_cls,),
        {"__init__": __init__, "__setstate__": __setstate__, "__doc__": doc,
         "__module__": adam_cls.__module__},
    )


def as_1d(inputs: list[Tensor], outputs: list[Tensor]) -> tuple[list[Tensor], list[Tensor], Callable[[], None]]:
    """1-D tensors aliasing `inputs` and `outputs` for elementwise kernels, and a function to finish.

    When every tensor shares one dense memory layout (contiguous, transposed,
    channels_last, ...), the 1-D tensors alias their memory in storage order and
    finishing does nothing. Otherwise they alias contiguous copies, and finishing
    copies the outputs back. The 1-D tensors are not views (no ``_base``), so
    torch.compile sees every parameter alike, whatever its original shape.
    """
    tensors = inputs + outputs
    if all(t.is_contiguous() for t in tensors):  # the common case, without _is_dense's cost
        flat = [_alias_1d(t) for t in tensors]
        return flat[: len(inputs)], flat[len(inputs) :], _nothing
    if not all(_is_dense(t) and t.stride() == tensors[0].stride() for t in tensors):
        copies = [t.contiguous() for t in outputs]
        flat_in = [_alias_1d(t.contiguous()) for t in inputs]
        flat_out = [_alias_1d(c) for c in copies]

        def write_back() -> None:
            for t, c in zip(outputs, copies):
                if c is not t:
                    t.copy_(c)

        return flat_in, flat_out, write_back
    flat = [_alias_1d(t) for t in tensors]
    return flat[: len(inputs)], flat[len(inputs) :], _nothing


def _nothing() -> None:
    pass


def _alias_1d(t: Tensor) -> Tensor:
    """A 1-D tensor over the memory of dense `t`, in storage order."""
    return t.new_empty(0).set_(t.untyped_storage(), t.storage_offset(), (t.numel(),), (1,))


def _is_dense(t: Tensor) -> bool:
    """Whether `t` covers its memory without gaps or overlaps (in some dimension order)."""
    expected = 1
    for stride, size in sorted((s, n) for s, n in zip(t.stride(), t.shape) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True
