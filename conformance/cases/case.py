"""Case: what a run is given, as pure data (what it produced is a `trace.Trace`).

A `Case` fully describes one optimization run: every parameter (shape, dtype, memory
layout of the parameter and, independently, of its gradient, initial values), the
param groups and their hyperparameters, and for every step each parameter's gradient
or None, the hyperparameter changes made before it, and events (a state_dict round
trip into a fresh optimizer, directly or through ``torch.save`` /
``torch.load(weights_only=True)``; ``zero_grad``; a group joining through
``add_param_group``). A closed-loop Case takes its gradients from an objective instead.
A resumed Case starts from a loaded state_dict, as a run resumed late in training does.

A Case serialises to JSON metadata plus named numpy arrays, without pickle. Values are
float64 / complex128 arrays holding values exactly representable in the case's dtypes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping

import numpy as np

from conformance import dtypes
from conformance.vocabulary import EDGES, SPECS, TORCH_DEFAULTS

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
    lr: float = TORCH_DEFAULTS["adam"]["lr"]
    betas: tuple[float, float] = TORCH_DEFAULTS["adam"]["betas"]
    eps: float = TORCH_DEFAULTS["adam"]["eps"]
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
class Resume:
    """A run that starts from a state_dict saved late in training: every parameter stepped
    ``step`` times before, with ``moments[i]`` its state tensors (exp_avg, exp_avg_sq, and
    max_exp_avg_sq where its group uses AMSGrad), as torch's state_dict holds them."""

    step: int
    moments: tuple[Mapping[str, np.ndarray], ...]


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
    resume: Resume | None = None

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
                 + (f", closed loop {self.objective.kind}" if self.objective else "")
                 + (f", resumed from a state_dict saved after step {self.resume.step}" if self.resume else "")]
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
        if self.resume is not None:
            meta["resume"] = dict(step=self.resume.step, keys=[sorted(m) for m in self.resume.moments])
            arrays.update({f"resume/{k}/{i}": a for i, m in enumerate(self.resume.moments) for k, a in m.items()})
        return meta, arrays

    @classmethod
    def from_json(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> Case:
        """Rebuild a Case; raises CaseError naming what is wrong with malformed input."""
        check_format(meta, "case")
        try:
            params = tuple(
                Param(
                    init=named_array(arrays, f"init/{i}", p["shape"]),
                    dtype=p["dtype"],
                    layout=p["layout"],
                    grad_layout=p["grad_layout"],
                )
                for i, p in enumerate(meta["params"])
            )
            objective = None
            if meta["objective"] is not None:
                objective = Objective(
                    kind=meta["objective"]["kind"],
                    inputs=named_array(arrays, "objective/inputs"),
                    targets=named_array(arrays, "objective/targets"),
                )
            return cls(
                spec=meta["spec"],
                params=params,
                groups=tuple(_group_from_json(g) for g in meta["groups"]),
                steps=_steps_from_json(meta["steps"], arrays, len(params)),
                objective=objective,
                record=None if meta["record"] is None else tuple(meta["record"]),
                name=meta.get("name", ""),
                resume=_resume_from_json(meta.get("resume"), arrays, params),
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


def check_format(meta, what: str) -> None:
    if not isinstance(meta, Mapping) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, Mapping) else type(meta).__name__
        raise CaseError(f"unsupported {what} format {found!r} (expected {FORMAT})")


def _group_json(g: Group) -> dict:
    d = dataclasses.asdict(g)
    d["params"] = list(g.params)
    d["betas"] = list(g.betas)
    return d


def _steps_from_json(steps: list, arrays: Mapping[str, np.ndarray], n: int) -> tuple[Step, ...]:
    """A Case's steps, each present gradient taken in turn from ``grads/i``."""
    grads = {i: iter(arrays.get(f"grads/{i}", ())) for i in range(n)}
    return tuple(
        Step(
            grads=tuple(np.asarray(next(grads[i])) if present else None for i, present in enumerate(s["grads"])),
            set=tuple((int(g), str(k), tuple(v) if isinstance(v, list) else v) for g, k, v in s["set"]),
            events=tuple(s["events"]),
            closure=bool(s["closure"]),
        )
        for s in steps
    )


def _resume_from_json(resume: Mapping | None, arrays: Mapping[str, np.ndarray], params) -> Resume | None:
    """A resumed Case's step count and moments (``resume/KEY/i``), or None."""
    if resume is None:
        return None
    return Resume(int(resume["step"]), tuple({k: named_array(arrays, f"resume/{k}/{i}", params[i].shape) for k in ks}
                                             for i, ks in enumerate(resume["keys"])))


def _group_from_json(d: Mapping) -> Group:
    d = dict(d)
    d["params"] = tuple(d["params"])
    d["betas"] = tuple(d["betas"])
    return Group(**d)


def named_array(arrays: Mapping[str, np.ndarray], name: str, shape=None) -> np.ndarray:
    if name not in arrays:
        raise CaseError(f"malformed case: array {name!r} is missing")
    a = np.asarray(arrays[name])
    if shape is not None and list(a.shape) != list(shape):
        raise CaseError(f"malformed case: array {name!r} has shape {a.shape}, metadata says {tuple(shape)}")
    return a


def _validate(case: Case) -> None:
    """Raise CaseError naming the first inconsistency of `case`."""
    for problem in itertools.chain(_param_problems(case), _group_problems(case), _step_problems(case),
                                   _run_problems(case), _resume_problems(case)):
        raise CaseError(f"invalid case{' ' + repr(case.name) if case.name else ''}: {problem}")


def _param_problems(case: Case) -> Iterator[str]:
    if case.spec not in SPECS:
        yield f"spec {case.spec!r} is not one of {sorted(SPECS)}"
    for i, p in enumerate(case.params):
        if p.dtype not in dtypes.ALL:
            yield f"param {i} has unknown dtype {p.dtype!r}"
            continue
        for layout in (p.layout, p.grad_layout):
            if layout not in LAYOUTS:
                yield f"param {i} has unknown layout {layout!r}; known: {LAYOUTS}"
            elif not _layout_fits(layout, p.shape):
                yield f"param {i}: layout {layout!r} does not fit shape {p.shape}"
        if not _holds(p.init, p.shape, p.dtype):
            yield f"param {i}: initial values are not {dtypes.storage(p.dtype).__name__} values exact in {p.dtype}"


def _group_problems(case: Case) -> Iterator[str]:
    if sorted(i for g in case.groups for i in g.params) != list(range(len(case.params))):
        yield "every parameter must belong to exactly one group"
    if not case.groups or case.groups[0].added_at != 1:
        yield "the first group must be given to the constructor (added_at=1)"
    for j, g in enumerate(case.groups):
        if not 1 <= g.added_at <= max(1, len(case.steps)):
            yield f"group {j} joins at step {g.added_at}, outside 1..{len(case.steps)}"
        if g.tensor_lr and not dtypes.representable(g.lr, "float32"):
            yield f"group {j}: a tensor lr is float32, and {g.lr!r} is not a float32 value"


def _step_problems(case: Case) -> Iterator[str]:
    n = len(case.params)
    for t, s in enumerate(case.steps, start=1):
        if case.objective is None and len(s.grads) != n:
            yield f"step {t} has {len(s.grads)} gradients for {n} parameters"
        if case.objective is not None and s.grads:
            yield f"step {t} gives gradients, but a closed-loop case takes them from its objective"
        for i, grad in enumerate(s.grads[:n]):
            if grad is not None and not _holds(grad, case.params[i].shape, case.params[i].dtype):
                yield f"step {t}: the gradient of param {i} is not a {case.params[i].shape} array of " \
                      f"{case.params[i].dtype} values"
        yield from (f"step {t}: unknown event {event!r}; known: {EVENTS}" for event in s.events if event not in EVENTS)
        for g, key, value in s.set:
            if key not in SETTABLE or not 0 <= g < len(case.groups):
                yield f"step {t}: cannot set {key!r} of group {g}"
            elif key == "lr" and case.groups[g].tensor_lr and not dtypes.representable(value, "float32"):
                yield f"step {t}: a tensor lr is float32, and {value!r} is not a float32 value"


def _run_problems(case: Case) -> Iterator[str]:
    """The objective of a closed loop, and the steps recorded."""
    if case.objective is not None:
        if case.objective.kind not in OBJECTIVES:
            yield f"unknown objective {case.objective.kind!r}; known: {OBJECTIVES}"
        shapes = [p.shape for p in case.params]
        x, y = case.objective.inputs, case.objective.targets
        if len(shapes) != 4 or shapes[0] != (shapes[1][0], x.shape[1]) or shapes[2] != (y.shape[1], shapes[0][0]) \
                or shapes[3] != (y.shape[1],):
            yield "an mlp-mse objective needs params (W1 [H, D_in], b1 [H], W2 [D_out, H], b2 [D_out])"
    record = case.record
    if record is not None and (not record or any(not 1 <= t <= len(case.steps) for t in record)
                               or list(record) != sorted(set(record))):
        yield f"record must list increasing steps within 1..{len(case.steps)}"


def _resume_problems(case: Case) -> Iterator[str]:
    """A resumed run: every group given to the constructor, and torch's state for every parameter."""
    resume = case.resume
    if resume is None:
        return
    if not isinstance(resume.step, int) or resume.step < 1:
        yield f"resume.step must be a positive integer, not {resume.step!r}"
    if any(g.added_at != 1 for g in case.groups):
        yield "a resumed case's groups must all be given to the constructor"
    if len(resume.moments) != len(case.params):
        yield f"resume holds the state of {len(resume.moments)} parameters, the case has {len(case.params)}"
        return
    for g in case.groups:
        wanted = {"exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if g.amsgrad else set())
        for i in g.params:
            p, moments = case.params[i], resume.moments[i]
            if set(moments) != wanted:
                yield f"resume: param {i} needs {sorted(wanted)}, has {sorted(moments)}"
            elif not all(_holds(a, p.shape, p.dtype) for a in moments.values()):
                yield f"resume: param {i}'s moments are not {p.shape} arrays of {p.dtype} values"
            elif np.any(dtypes.components(moments["exp_avg_sq"]) < 0) or "max_exp_avg_sq" in moments and np.any(
                    dtypes.components(moments["max_exp_avg_sq"]) < dtypes.components(moments["exp_avg_sq"])):
                yield f"resume: param {i}'s exp_avg_sq is negative, or above its max_exp_avg_sq"


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
