"""``adam-conformance diagnose``: which known Adam variant a target implements, point by point.

Each point of `conformance.spec.POINTS` has a probe: a small Case built so that the
choices at that point part ways (eps of the size of √v̂ for the eps point, steps with
missing gradients in two groups for step counting, ...). The target runs the probe
once; the oracle computes every candidate variant of it; the candidate whose
trajectory the target's matches, by a wide margin over the runner-up, is the finding.
Probes are in float64 where the target claims it, so rounding cannot blur a choice.
State precision and gradient handling are observed directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch

from conformance.cases.case import Case, Group, Param, Step
from conformance.dtypes import round_to
from conformance.run import runner
from conformance.run.target import Target
from conformance.spec import BY_NAME, POINTS, Spec
from conformance.truth import budget, oracle
from conformance.vocabulary import torch_class_name

#: What each choice is, and whose convention it is.
CONVENTIONS = {
    "weight_decay": {
        "coupled": "coupled L2: λθ added to the gradient (torch.optim.Adam)",
        "decoupled": "decoupled, scaled by lr: θ *= 1 - γλ (torch.optim.AdamW, optax.adamw)",
        "decoupled_unscaled": "decoupled, not scaled by lr: θ *= 1 - λ (the AdamW paper's own form)",
        "decoupled_after": "decoupled, applied to the weights after the update",
        "none": "none: weight_decay is accepted and has no effect",
    },
    "eps": {
        "after_bias_correction": "added after bias correction: √v̂ + ε (PyTorch)",
        "before_bias_correction": "added before bias correction: (√v + ε)/√(1-β₂ᵗ) (TensorFlow/Keras, PyTorch < 1.2)",
        "inside_sqrt": "inside the square root: √(v̂ + ε) (optax's eps_root, RMSProp style)",
        "floor": "a floor: max(√v̂, ε)",
    },
    "bias_correction": {
        "both": "both moments (the Adam paper, PyTorch)",
        "first": "the first moment only",
        "second": "the second moment only",
        "none": "none",
    },
    "amsgrad": {
        "raw_max": "max of the raw second moment (PyTorch; Reddi et al.)",
        "corrected_max": "max of the bias-corrected second moment (the formula torch's docs showed before #142041)",
        "ignored": "accepted and ignored: no running max is kept",
    },
    "step_count": {
        "per_param": "per parameter (PyTorch)",
        "per_group": "per param group",
        "global": "one global count of step() calls (optax, TensorFlow/Keras)",
    },
    "maximize": {
        "negate_grad": "negates the gradient (PyTorch)",
        "negate_lr": "negates the learning rate, which reverses weight decay too (Paddle before #79341)",
        "negate_after_decay": "negates the decayed gradient -(g + λθ), so L2 decay grows the weights",
        "ignored": "accepted and ignored: the target still minimises",
    },
    "missing_grad": {
        "skipped": "skipped: no decay, no moment update, no step count (PyTorch)",
        "zero": "stepped as if the gradient were zero: moments decay, the step count advances (optax, "
                "where every parameter has a gradient)",
    },
    "decoupled_flag": {
        "honoured": "decoupled_weight_decay=True gives AdamW's decay (PyTorch)",
        "ignored": "decoupled_weight_decay=True is accepted but the decay stays coupled",
    },
    "state_precision": {
        "param_dtype": "the parameters' dtype (PyTorch)",
        "float32": "float32 for low-precision parameters (more accurate than torch)",
        "wider": "wider than the parameters' dtype",
        "lower": "lower than the parameters' dtype (less accurate than torch)",
    },
    "gradients": {"untouched": "untouched (PyTorch)", "modified": "modified in place by step()",
                  "set_to_none": "set to None by step()"},
    "residual": {
        "none": "nothing: the variant found explains every probe",
        "unexplained": "a difference none of these points describes (a constant's precision, a swapped beta, ...)",
    },
}
NEEDS = {"weight_decay": {"weight_decay"}, "decoupled_flag": {"weight_decay", "decoupled_weight_decay"},
         "amsgrad": {"amsgrad"}, "maximize": {"maximize"}}
#: Accept a candidate when its distance from the target is this far below the runner-up's.
MARGIN = 100.0
#: Farther than this from every known choice (eps at scale, float64 probes), a point cannot
#: be told. A correct implementation is a few eps from torch's choice after six steps.
UNKNOWN = 1e3


@dataclasses.dataclass
class Finding:
    point: str
    found: str | None  # the choice the target makes (None: could not tell)
    expected: str  # torch's choice for the spec
    detail: str  # what was measured, or why the point was not probed
    probed: bool = True

    @property
    def differs(self) -> bool:
        return self.found is not None and self.found != self.expected

    def describe(self) -> str:
        return CONVENTIONS.get(self.point, {}).get(self.found, self.found or "could not tell")


def diagnose(target: Target) -> list[Finding]:
    """Findings for every point, state precision, gradient handling, and what none of them explains."""
    working = BY_NAME[target.spec]
    numeric: dict[str, tuple[Finding, float]] = {}
    for _ in range(2):  # a second pass, with the first pass's findings in place
        for point in POINTS:
            numeric[point] = _probe(target, point, working)
            if numeric[point][0].found:
                working = dataclasses.replace(working, **{point: numeric[point][0].found})
    findings = [numeric[p][0] for p in POINTS]
    return findings + [_state_precision(target), _gradient_handling(target),
                       _residual({p: d for p, (f, d) in numeric.items() if f.probed})]


def _probe(target: Target, point: str, working: Spec) -> tuple[Finding, float]:
    """The choice at `point` whose trajectory the target follows on the point's probe, and
    how far the target is from the best candidate (eps at scale; NaN when not probed).

    The probe runs in float64 where the target claims it, so that rounding cannot blur a
    choice; a target that computes in float32 whatever its parameters' dtype is far from
    every choice there, so the probe is run again in float32 and judged in its eps."""
    want = getattr(BY_NAME[target.spec], point)
    unclaimed = NEEDS.get(point, set()) - target.claims
    if unclaimed:
        reason = f"not probed: {', '.join(sorted(unclaimed))} not claimed"
        return Finding(point, None, want, reason, probed=False), np.nan
    tried = []
    for dtype in ("float64", "float32") if "float64" in target.claims else ("float32",):
        case = _probe_case(target, point, dtype)
        if not target.accepts(case):
            needs = ", ".join(sorted(case.features() - target.claims)) or "what the target rejects"
            return Finding(point, None, want, f"not probed: its probe needs {needs}", probed=False), np.nan
        trace = target.run(case)
        if trace.error:
            return Finding(point, None, want, f"the probe raised: {trace.error}"), np.inf
        distances = {choice: _distance(trace, oracle.run(case, dataclasses.replace(working, **{point: choice})), case)
                     for choice in POINTS[point]}
        ranked = sorted(distances, key=distances.get)
        best = distances[ranked[0]]
        shown = ", ".join(f"{c} {_eps(distances[c])}" for c in ranked)
        tied = [c for c in ranked if distances[c] <= 2 * best + 1]  # the probe cannot tell these apart
        rest = [c for c in ranked if c not in tied]
        if best <= UNKNOWN and not (rest and best * MARGIN > distances[rest[0]]):
            found = want if want in tied else tied[0]
            alike = f" ({', '.join(tied)} act alike here)" if len(tied) > 1 else ""
            return Finding(point, found, want, f"distance from each choice, in {dtype} eps: {shown}{alike}"), best
        why = "far from every known choice" if best > UNKNOWN else "no choice matches by a wide margin"
        tried.append(f"{dtype}: {why} ({shown})")
    return Finding(point, None, want, "; ".join(tried)), best


def _residual(distances: dict[str, float]) -> Finding:
    """Whether the variant found explains every probe: a target still far from it somewhere
    differs in a way no point describes (a constant's precision, a swapped beta, ...)."""
    if not distances:
        return Finding("residual", None, "none", "no numeric point was probed", probed=False)
    point = max(distances, key=distances.get)
    where = f"farthest on the {point} probe: {_eps(distances[point])} eps"
    if distances[point] > UNKNOWN:
        return Finding("residual", "unexplained", "none", f"{where} from the variant found")
    return Finding("residual", "none", "none", f"{where}, within {UNKNOWN:g} of the variant found")


def _distance(trace, variant_trace, case: Case) -> float:
    """How far the target's parameters are from a variant's, in eps at scale."""
    params_only = dataclasses.replace(variant_trace, state=tuple({} for _ in variant_trace.state))
    trace_params = dataclasses.replace(trace, state=tuple({} for _ in trace.state))
    error, deviations = budget.distance(trace_params, params_only, case)
    return np.inf if deviations else error


def _eps(x: float) -> str:
    return "inf" if not np.isfinite(x) else f"{x:.3g}"


def _probe_case(target: Target, point: str, dtype: str) -> Case:
    """A Case in `dtype` on which the choices at `point` part ways (see the module docstring)."""
    rs = np.random.RandomState(7)
    draw = lambda *shape, scale=1.0: round_to(rs.standard_normal(shape) * scale, dtype)
    params = (Param(draw(6), dtype), Param(draw(3, 4), dtype), Param(draw(5), dtype))
    group = dict(lr=0.01, eps=1e-12)
    scale = lambda t: 1.0
    absent: set[tuple[int, int]] = set()
    groups = None
    if point == "eps":
        group, scale = dict(lr=0.01, eps=0.1), (lambda t: 0.1)
    elif point in ("weight_decay", "decoupled_flag"):
        group = dict(lr=0.1, eps=1e-8, weight_decay=0.2, decoupled_weight_decay=point == "decoupled_flag")
    elif point == "amsgrad":
        group, scale = dict(lr=0.01, eps=1e-12, amsgrad=True), (lambda t: 0.5**t)
    elif point == "maximize":
        group = dict(lr=0.05, eps=1e-8, maximize=True, weight_decay=0.2 if "weight_decay" in target.claims else 0.0)
        if target.spec == "adam" and "decoupled_weight_decay" in target.claims:
            # Coupled decay cannot tell negating lr from negating the decayed gradient;
            # decoupled decay can (it reverses under a negated lr only): one group of each.
            groups = (Group((0, 1), **group), Group((2,), **group, decoupled_weight_decay=True))
    elif point in ("step_count", "missing_grad"):
        groups = (Group((0, 1), lr=0.01, eps=1e-12), Group((2,), lr=0.01, eps=1e-12))
        # (step, param): param 1 joins late, group 1 idles at first, param 0 pauses at step 4
        absent = {(1, 1), (2, 1), (1, 2), (2, 2), (3, 2), (4, 0)}
    grads = lambda t: tuple(None if (t, i) in absent else draw(*p.shape, scale=scale(t)) for i, p in enumerate(params))
    steps = tuple(Step(grads(t)) for t in range(1, 7))
    return Case(target.spec, params, groups or (Group((0, 1, 2), **group),), steps)


def _state_precision(target: Target) -> Finding:
    """The dtype the target keeps its moments in, against its parameters' dtypes."""
    dtypes = [torch.float32] + [getattr(torch, d) for d in ("bfloat16", "float16", "float64") if d in target.claims]
    params = [torch.ones(4, dtype=d, device=target.device, requires_grad=True) for d in dtypes]
    for p in params:
        p.grad = torch.full_like(p, 0.5)
    try:
        with runner.guarded_global_state([], step=1):  # a target that changes it must not change ours
            opt = target.optimizer(params)
            opt.step()
    except Exception as e:
        return Finding("state_precision", None, "param_dtype", f"the probe raised: {type(e).__name__}: {e}")
    state = getattr(opt, "state", None)
    if not isinstance(state, Mapping):
        return Finding("state_precision", None, "param_dtype", "no .state mapping to observe", probed=False)
    pairs = [(p.dtype, state.get(p, {}).get("exp_avg") if isinstance(state.get(p), Mapping) else None) for p in params]
    seen = [(d, s.dtype) for d, s in pairs if torch.is_tensor(s) and s.is_floating_point()]
    if not seen:
        return Finding("state_precision", None, "param_dtype", "no exp_avg state to observe", probed=False)
    lower = [(d, s) for d, s in seen if torch.finfo(s).eps > torch.finfo(d).eps]
    wider = [(d, s) for d, s in seen if torch.finfo(s).eps < torch.finfo(d).eps]
    name = lambda dtype: str(dtype).removeprefix("torch.")
    shown = ", ".join(f"{name(d)} params -> {name(s)} state" for d, s in seen)
    if lower:
        found = "lower"
    elif wider:
        found = "float32" if all(s == torch.float32 for _, s in wider) else "wider"
    else:
        found = "param_dtype"
    return Finding("state_precision", found, "param_dtype", shown)


#: The branches on which a step might write to its gradients: the decay path, AMSGrad, maximize.
BRANCHES = (
    ("the plain path", {}, ()),
    ("the weight-decay path", dict(weight_decay=0.1), ("weight_decay",)),
    ("the AMSGrad path", dict(amsgrad=True), ("amsgrad",)),
    ("the maximize path", dict(maximize=True), ("maximize",)),
)


def _gradient_handling(target: Target) -> Finding:
    """Whether step() writes to the gradients, or sets them to None (torch does neither), on
    each branch: plain, with weight decay, with AMSGrad, with maximize."""
    g = np.array([0.5, -1.0, 2.0])
    for branch, group, needs in BRANCHES:
        if set(needs) - target.claims:
            continue
        case = Case(target.spec, (Param(np.array([1.0, 2.0, 3.0])),), (Group((0,), **group),), (Step((g,)), Step((g,))))
        trace = target.run(case)
        if trace.error:
            return Finding("gradients", None, "untouched", f"the probe of {branch} raised: {trace.error}")
        touched = [o for o in trace.observations if o.kind in ("grad-modified", "grad-removed")]
        if touched:
            found = "set_to_none" if touched[0].kind == "grad-removed" else "modified"
            return Finding("gradients", found, "untouched", f"on {branch}: {touched[0]}")
    return Finding("gradients", "untouched", "untouched",
                   "gradients bitwise equal after step(), on every branch probed")


#: What a target is called, by the weight decay it was found to use.
FAMILIES = {
    "coupled": "Adam with coupled L2 weight decay",
    "decoupled": "AdamW (decoupled weight decay, scaled by lr)",
    "decoupled_unscaled": "AdamW with decay not scaled by lr",
    "decoupled_after": "AdamW with decay after the update",
    "none": "Adam without weight decay",
}


def verdict(target: Target, findings: list[Finding]) -> str:
    """One sentence: what the target implements."""
    reference = torch_class_name(target.spec)
    decay = next(f for f in findings if f.point == "weight_decay")
    family = FAMILIES.get(decay.found, "Adam (weight decay not told)")
    differs = [f for f in findings if f.differs]
    unknown = [f.point for f in findings if f.found is None and f.probed]
    tail = f"; could not tell: {', '.join(unknown)}" if unknown else ""
    numeric = [f for f in findings if f.point in POINTS and f.probed]
    residual = next((f for f in findings if f.point == "residual"), None)
    told = sum(f.found is not None for f in numeric)
    if residual is not None and residual.found == "unexplained" and 2 * told < len(numeric):
        return (f"{target.impl.name} matches no known Adam variant: it is far from every choice at "
                f"{len(numeric) - sum(f.found is not None for f in numeric)} of the {len(numeric)} points probed")
    if not differs:
        return f"{target.impl.name} implements {family}: {reference} at every point probed{tail}"
    return f"{target.impl.name} implements {family}, which differs from {reference} in " + "; ".join(
        f"{_name(f.point)}: {f.describe()}" for f in differs) + tail


def _name(point: str) -> str:
    return "something else" if point == "residual" else point.replace("_", " ")


def mismatch_lines(target: Target, findings: list[Finding]) -> list[str]:
    """For certify: each point where the target departs from the spec asked for."""
    return [f"it differs in {f.describe()}" if f.point == "residual" else
            f"{_name(f.point)} is {f.describe()}, but --spec {target.spec} needs "
            f"{CONVENTIONS.get(f.point, {}).get(f.expected, f.expected)}" for f in findings if f.differs]


def document(target: Target, findings: list[Finding]) -> dict:
    return dict(target=target.impl.name, spec=target.spec, verdict=verdict(target, findings),
                mismatches=mismatch_lines(target, findings),
                findings=[dict(point=f.point, found=f.found, expected=f.expected, differs=f.differs,
                               meaning=f.describe() if f.found else None, detail=f.detail, probed=f.probed)
                          for f in findings])


def render(target: Target, findings: list[Finding]) -> str:
    lines = [f"{'point':16s} {'found':24s} meaning"]
    for f in findings:
        mark = "  <- differs from torch" if f.differs else ""
        lines.append(f"{f.point:16s} {f.found or '?':24s} {f.describe() if f.found else f.detail}{mark}")
    return "\n".join(lines + ["", verdict(target, findings)])
