"""Case and Trace: what a run is given and what it produced, as pure data.

A `Case` fully describes one optimization run: every parameter (shape, dtype, memory
layout of the parameter and, independently, of its gradient, initial values), the
param groups and their hyperparameters, and for every step each parameter's gradient
or None, the hyperparameter changes made before it, and events (a state_dict round
trip into a fresh optimizer, directly or through ``torch.save`` /
``torch.load(weights_only=True)``; ``zero_grad``; a group joining through
``add_param_group``). A closed-loop Case takes its gradients from an objective instead.

A `Trace` holds every parameter and optimizer state tensor after every recorded step,
plus what the run observed (exceptions; a parameter whose storage, dtype, shape or
strides changed; a gradient the optimizer wrote to).

Both serialise to JSON metadata plus named numpy arrays, without pickle. Values are
float64 / complex128 arrays holding values exactly representable in the case's dtypes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping

import numpy as np

from conformance import dtypes
from conformance.vocabulary import EDGES, SPECS

FORMAT = 1
LAYOUTS = ("contiguous", "transposed", "sliced", "channels_last")
EVENTS = ("zero_grad", "reload", "reload_file")
#: Hyperparameters a Case may change between steps, as torch's schedulers do.
SETTABLE = ("lr", "betas", "eps", "weight_decay", "maximize")
OBJECTIVES = ("mlp-mse",)


class CaseError(ValueError):
    """A Case (or its serialised form) is inconsistent."""


@dataclasses.dataclass(frozen=True, eq=False)
class Param:
    """One parameter: initial values (shape from them), dtype, memory layouts."""

    init: np.ndarray
    dtype: str = "float32"
    layout: str = "contiguous"
    grad_layout: str = "contiguous"

    def __post_init__(self):  # numpy arithmetic on 0-d arrays returns scalars
        if isinstance(self.init, np.generic):
            object.__setattr__(self, "init", np.asarray(self.init))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.init.shape)


@dataclasses.dataclass(frozen=True)
class Group:
    """A param group: indices into Case.params and its hyperparameters.

    ``added_at`` is the step before which the group joins through ``add_param_group``
    (1: it is given to the constructor). ``tensor_lr`` passes lr as a 0-d float32 tensor.
    """

    params: tuple[int, ...]
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    maximize: bool = False
    decoupled_weight_decay: bool = False
    tensor_lr: bool = False
    added_at: int = 1


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    """One optimizer step: each parameter's gradient (None: no grad), and what comes first.

    ``set`` holds (group index, key, value) changes applied before the step; ``events``
    run before the gradients are assigned; ``closure`` steps through ``step(closure)``,
    the closure assigning the gradients and returning a loss.
    """

    grads: tuple[np.ndarray | None, ...]
    set: tuple[tuple[int, str, object], ...] = ()
    events: tuple[str, ...] = ()
    closure: bool = False

    def __post_init__(self):  # numpy arithmetic on 0-d arrays returns scalars
        object.__setattr__(self, "grads", tuple(np.asarray(g) if isinstance(g, np.generic) else g for g in self.grads))


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
    """A closed loop: gradients come from the model. ``mlp-mse``: parameters are
    (W1, b1, W2, b2) and loss = Σ (relu(x W1ᵀ + b1) W2ᵀ + b2 - y)², as in the seed notebook."""

    kind: str
    inputs: np.ndarray
    targets: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    """One optimization run, fully described. Steps are numbered from 1."""

    spec: str
    params: tuple[Param, ...]
    groups: tuple[Group, ...]
    steps: tuple[Step, ...]
    objective: Objective | None = None
    #: Steps after which a snapshot is recorded; None records every step.
    record: tuple[int, ...] | None = None
    name: str = ""

    def __post_init__(self):
        _validate(self)

    def __repr__(self) -> str:
        return f"<Case {self.describe().splitlines()[0]}>"

    def _repr_pretty_(self, printer, cycle) -> None:  # how hypothesis prints a falsifying example
        printer.text("\n".join(["<Case", *self.describe().splitlines(), ">"]))

    def describe(self) -> str:
        """A few readable lines: what a person needs to see of a (minimal) Case."""
        lines = [f"{self.name + ': ' if self.name else ''}spec {self.spec}, {len(self.params)} param(s), "
                 f"{len(self.groups)} group(s), {len(self.steps)} step(s)"
                 + (f", closed loop {self.objective.kind}" if self.objective else "")]
        for i, p in enumerate(self.params):
            layout = "" if p.layout == p.grad_layout == "contiguous" else f", {p.layout} (grad {p.grad_layout})"
            lines.append(f"  param {i}: {p.dtype} {p.shape}{layout}")
        for j, g in enumerate(self.groups):
            flags = [f for f in ("amsgrad", "maximize", "decoupled_weight_decay", "tensor_lr") if getattr(g, f)]
            joins = f", joins before step {g.added_at}" if g.added_at > 1 else ""
            lines.append(f"  group {j}: params {list(g.params)} lr={g.lr!r} betas={g.betas!r} eps={g.eps!r} "
                         f"weight_decay={g.weight_decay!r}{''.join(' ' + f for f in flags)}{joins}")
        shown = [t for t in range(1, len(self.steps) + 1) if t <= 8 or t == len(self.steps)]
        for t in shown:
            s = self.steps[t - 1]
            if t == len(self.steps) and t > 9:
                lines.append(f"  ... {t - 9} more step(s)")
            parts = []
            if s.grads:
                parts.append("grads " + ", ".join(_grad_summary(g) for g in s.grads))
            parts += [f"set group {g} {k}={v!r}" for g, k, v in s.set] + list(s.events)
            parts += ["through step(closure)"] if s.closure else []
            lines.append(f"  step {t}: " + "; ".join(parts or ["from the objective"]))
        return "\n".join(lines)

    @property
    def recorded(self) -> tuple[int, ...]:
        return tuple(range(1, len(self.steps) + 1)) if self.record is None else self.record

    def features(self) -> frozenset[str]:
        """The registry features this Case exercises (an implementation must claim them)."""
        used = set()
        for j, group in enumerate(self.groups):
            changes = [(k, v) for s in self.steps for g, k, v in s.set if g == j]
            for key in ("weight_decay", "maximize"):
                if getattr(group, key) or any(v for k, v in changes if k == key):
                    used.add(key)
            used |= {key for key in ("amsgrad", "decoupled_weight_decay", "tensor_lr") if getattr(group, key)}
        for p in self.params:
            if p.dtype in ("float16", "bfloat16", "float64"):
                used.add(p.dtype)
            if dtypes.is_complex(p.dtype):
                used.add("complex")
                if dtypes.real(p.dtype) == "float64":
                    used.add("float64")
            if p.layout != "contiguous" or p.grad_layout != "contiguous":
                used.add("noncontiguous")
            if p.shape == ():
                used.add("zero_dim")
            if p.init.size == 0:
                used.add("empty")
        if len(self.groups) > 1:
            used.add("param_groups")
        if any(s.closure for s in self.steps):
            used.add("closure")
        return frozenset(used)

    def edges(self) -> frozenset[str]:
        """The edges of the valid range (`registry.EDGES`) this Case's hyperparameters touch."""
        values = {key: set() for key, _ in EDGES.values()}
        settings = [dataclasses.asdict(g) for g in self.groups]
        settings += [{k: v} for s in self.steps for _, k, v in s.set]
        for h in settings:
            if "betas" in h:
                values["beta1"].add(float(h["betas"][0]))
                values["beta2"].add(float(h["betas"][1]))
            for key in ("lr", "eps", "weight_decay"):
                if key in h:
                    values[key].add(float(h[key]))
        return frozenset(name for name, (key, value) in EDGES.items() if value in values[key])

    # -- serialisation -------------------------------------------------------------

    def to_json(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able metadata and named arrays; `from_json` inverts it exactly."""
        arrays: dict[str, np.ndarray] = {}
        params = []
        for i, p in enumerate(self.params):
            arrays[f"init/{i}"] = p.init
            params.append(dict(dtype=p.dtype, shape=list(p.shape), layout=p.layout, grad_layout=p.grad_layout))
            present = [s.grads[i] for s in self.steps if s.grads and s.grads[i] is not None]
            if present:
                arrays[f"grads/{i}"] = np.stack(present)
        steps = [
            dict(
                grads=[g is not None for g in s.grads],
                set=[[g, k, list(v) if isinstance(v, tuple) else v] for g, k, v in s.set],
                events=list(s.events),
                closure=s.closure,
            )
            for s in self.steps
        ]
        objective = None
        if self.objective is not None:
            objective = dict(kind=self.objective.kind)
            arrays["objective/inputs"] = self.objective.inputs
            arrays["objective/targets"] = self.objective.targets
        meta = dict(
            format=FORMAT,
            name=self.name,
            spec=self.spec,
            params=params,
            groups=[_group_json(g) for g in self.groups],
            steps=steps,
            objective=objective,
            record=None if self.record is None else list(self.record),
        )
        return meta, arrays

    @classmethod
    def from_json(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> Case:
        """Rebuild a Case; raises CaseError naming what is wrong with malformed input."""
        _check_format(meta, "case")
        try:
            params = tuple(
                Param(
                    init=_array(arrays, f"init/{i}", p["shape"]),
                    dtype=p["dtype"],
                    layout=p["layout"],
                    grad_layout=p["grad_layout"],
                )
                for i, p in enumerate(meta["params"])
            )
            grads = {i: iter(arrays.get(f"grads/{i}", ())) for i in range(len(params))}
            steps = tuple(
                Step(
                    grads=tuple(np.asarray(next(grads[i])) if present else None
                                for i, present in enumerate(s["grads"])),
                    set=tuple((int(g), str(k), tuple(v) if isinstance(v, list) else v) for g, k, v in s["set"]),
                    events=tuple(s["events"]),
                    closure=bool(s["closure"]),
                )
                for s in meta["steps"]
            )
            objective = None
            if meta["objective"] is not None:
                objective = Objective(
                    kind=meta["objective"]["kind"],
                    inputs=_array(arrays, "objective/inputs"),
                    targets=_array(arrays, "objective/targets"),
                )
            return cls(
                spec=meta["spec"],
                params=params,
                groups=tuple(_group_from_json(g) for g in meta["groups"]),
                steps=steps,
                objective=objective,
                record=None if meta["record"] is None else tuple(meta["record"]),
                name=meta.get("name", ""),
            )
        except CaseError:
            raise
        except (KeyError, TypeError, ValueError, StopIteration) as e:
            raise CaseError(f"malformed case: {type(e).__name__}: {e}") from None

    def fingerprint(self) -> str:
        """sha256 of the serialised form: equal fingerprints mean identical Cases."""
        return fingerprint(*self.to_json())


def _grad_summary(g: np.ndarray | None) -> str:
    if g is None:
        return "None"
    if g.size == 0:
        return "[]"
    if g.size <= 3:
        return np.array2string(np.asarray(g).ravel(), precision=3, separator=", ")
    finite = np.isfinite(g)
    special = "" if finite.all() else f" with {int((~finite).sum())} non-finite"
    return f"|g|≤{np.max(np.abs(g[finite])) if finite.any() else 0:.3g}{special}"


def fingerprint(meta: Mapping, arrays: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(arrays):
        a = np.require(arrays[name], requirements='C')
        digest.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _check_format(meta, what: str) -> None:
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, Mapping) else type(meta).__name__
        raise CaseError(f"unsupported {what} format {found!r} (expected {FORMAT})")


def _group_json(g: Group) -> dict:
    d = dataclasses.asdict(g)
    d["params"] = list(g.params)
    d["betas"] = list(g.betas)
    return d


def _group_from_json(d: Mapping) -> Group:
    d = dict(d)
    d["params"] = tuple(d["params"])
    d["betas"] = tuple(d["betas"])
    return Group(**d)


def _array(arrays: Mapping[str, np.ndarray], name: str, shape=None) -> np.ndarray:
    if name not in arrays:
        raise CaseError(f"malformed case: array {name!r} is missing")
    a = np.asarray(arrays[name])
    if shape is not None and list(a.shape) != list(shape):
        raise CaseError(f"malformed case: array {name!r} has shape {a.shape}, metadata says {tuple(shape)}")
    return a


def _validate(case: Case) -> None:
    def bad(msg: str):
        raise CaseError(f"invalid case{' ' + repr(case.name) if case.name else ''}: {msg}")

    if case.spec not in SPECS:
        bad(f"spec {case.spec!r} is not one of {sorted(SPECS)}")
    n = len(case.params)
    for i, p in enumerate(case.params):
        if p.dtype not in dtypes.ALL:
            bad(f"param {i} has unknown dtype {p.dtype!r}")
        for layout in (p.layout, p.grad_layout):
            if layout not in LAYOUTS:
                bad(f"param {i} has unknown layout {layout!r}; known: {LAYOUTS}")
            if not _layout_fits(layout, p.shape):
                bad(f"param {i}: layout {layout!r} does not fit shape {p.shape}")
        if not _holds(p.init, p.shape, p.dtype):
            bad(f"param {i}: initial values are not {dtypes.storage(p.dtype).__name__} values exact in {p.dtype}")
    owners = sorted(i for g in case.groups for i in g.params)
    if owners != list(range(n)):
        bad("every parameter must belong to exactly one group")
    if not case.groups or case.groups[0].added_at != 1:
        bad("the first group must be given to the constructor (added_at=1)")
    for j, g in enumerate(case.groups):
        if not 1 <= g.added_at <= max(1, len(case.steps)):
            bad(f"group {j} joins at step {g.added_at}, outside 1..{len(case.steps)}")
        if g.tensor_lr and not dtypes.representable(g.lr, "float32"):
            bad(f"group {j}: a tensor lr is float32, and {g.lr!r} is not a float32 value")
    for t, s in enumerate(case.steps, start=1):
        if case.objective is None and len(s.grads) != n:
            bad(f"step {t} has {len(s.grads)} gradients for {n} parameters")
        if case.objective is not None and s.grads:
            bad(f"step {t} gives gradients, but a closed-loop case takes them from its objective")
        for i, grad in enumerate(s.grads):
            if grad is None:
                continue
            p = case.params[i]
            if not _holds(grad, p.shape, p.dtype):
                bad(f"step {t}: the gradient of param {i} is not a {p.shape} array of {p.dtype} values")
        for event in s.events:
            if event not in EVENTS:
                bad(f"step {t}: unknown event {event!r}; known: {EVENTS}")
        for g, key, value in s.set:
            if key not in SETTABLE or not 0 <= g < len(case.groups):
                bad(f"step {t}: cannot set {key!r} of group {g}")
            if key == "lr" and case.groups[g].tensor_lr and not dtypes.representable(value, "float32"):
                bad(f"step {t}: a tensor lr is float32, and {value!r} is not a float32 value")
    if case.objective is not None:
        if case.objective.kind not in OBJECTIVES:
            bad(f"unknown objective {case.objective.kind!r}; known: {OBJECTIVES}")
        shapes = [p.shape for p in case.params]
        x, y = case.objective.inputs, case.objective.targets
        if len(shapes) != 4 or shapes[0] != (shapes[1][0], x.shape[1]) or shapes[2] != (y.shape[1], shapes[0][0]) \
                or shapes[3] != (y.shape[1],):
            bad("an mlp-mse objective needs params (W1 [H, D_in], b1 [H], W2 [D_out, H], b2 [D_out])")
    if case.record is not None and (not case.record or any(not 1 <= t <= len(case.steps) for t in case.record)
                                    or list(case.record) != sorted(set(case.record))):
        bad(f"record must list increasing steps within 1..{len(case.steps)}")


def _holds(values, shape: tuple[int, ...], dtype: str) -> bool:
    """Whether `values` is an array of `shape` in `dtype`'s storage holding values exact in `dtype`."""
    return (isinstance(values, np.ndarray) and values.shape == shape and values.dtype == dtypes.storage(dtype)
            and dtypes.representable(values, dtype))


def _layout_fits(layout: str, shape: tuple[int, ...]) -> bool:
    return {
        "contiguous": True,
        "transposed": len(shape) >= 2,
        "sliced": len(shape) >= 1,
        "channels_last": len(shape) == 4,
    }[layout]


# -- Trace -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Observation:
    """Something a run noticed about the optimizer's behaviour, beside the numbers."""

    step: int
    param: int | None
    kind: str  # see KINDS
    detail: str

    def __str__(self) -> str:
        where = f"step {self.step}" + ("" if self.param is None else f", param {self.param}")
        return f"{where}: {self.detail}"


KINDS = (
    "grad-modified",  # the optimizer wrote into a gradient
    "grad-removed",  # the optimizer set a gradient to None
    "param-replaced",  # a parameter's storage, dtype, shape or strides changed
    "closure",  # step(closure) did not call the closure once or did not return its loss
    "global-state",  # the optimizer changed torch's global state (default dtype, grad mode, RNG)
)


@dataclasses.dataclass(frozen=True, eq=False)
class Trace:
    """What a run produced.

    ``params[i]`` is an array [len(steps), *shape] of parameter i after each recorded
    step; ``state[i]`` maps each state key (exp_avg, exp_avg_sq, max_exp_avg_sq, step)
    the same way (absent state reads as zeros, step 0). ``losses`` holds a closed loop's
    loss before every step. ``error`` is the exception that stopped the run, if any.
    """

    steps: tuple[int, ...]
    params: tuple[np.ndarray, ...]
    state: tuple[Mapping[str, np.ndarray], ...]
    losses: np.ndarray | None = None
    observations: tuple[Observation, ...] = ()
    error: str | None = None

    def to_json(self) -> tuple[dict, dict[str, np.ndarray]]:
        arrays = {f"param/{i}": a for i, a in enumerate(self.params)}
        for i, state in enumerate(self.state):
            arrays.update({f"state/{i}/{k}": a for k, a in state.items()})
        if self.losses is not None:
            arrays["losses"] = self.losses
        meta = dict(
            format=FORMAT,
            steps=list(self.steps),
            state_keys=[sorted(s) for s in self.state],
            losses=self.losses is not None,
            observations=[dataclasses.asdict(o) for o in self.observations],
            error=self.error,
        )
        return meta, arrays

    @classmethod
    def from_json(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> Trace:
        _check_format(meta, "trace")
        try:
            n = len(meta["steps"])
            params = tuple(_array(arrays, f"param/{i}") for i in range(len(meta["state_keys"])))
            state = tuple({k: _array(arrays, f"state/{i}/{k}") for k in keys}
                          for i, keys in enumerate(meta["state_keys"]))
            for i, (p, s) in enumerate(zip(params, state)):
                for name, a in [("param", p), *s.items()]:
                    if len(a) != n:
                        raise CaseError(f"malformed trace: {name} of param {i} has {len(a)} snapshots for {n} steps")
            return cls(
                steps=tuple(meta["steps"]),
                params=params,
                state=state,
                losses=_array(arrays, "losses") if meta["losses"] else None,
                observations=tuple(Observation(**o) for o in meta["observations"]),
                error=meta["error"],
            )
        except CaseError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise CaseError(f"malformed trace: {type(e).__name__}: {e}") from None
