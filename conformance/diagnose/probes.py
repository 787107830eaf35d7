"""The numeric points: each point's probe, run by the target and by the oracle under every choice there.

Each point of `conformance.spec.POINTS` has a probe: a small Case on which the choices at
that point part ways (eps of the size of √v̂ for the eps point, missing gradients and a
group that joins late for step counting, ...). The choice whose trajectory the target
follows, by a wide margin over the runner-up, is the finding. A probe runs in float64
where the target claims it, so that rounding cannot blur a choice, and again in float32
only where float64 cannot tell: what the float64 probe measured of the choice found there
is kept (`Probed.far`), for `conformance.diagnose.precision` to name.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from conformance.cases.case import Case, Group, Param, Step
from conformance.cases.trace import Trace
from conformance.diagnose.findings import MARGIN, NEEDS, UNKNOWN, Finding, eps_text, raised
from conformance.dtypes import round_to
from conformance.run.target import Target
from conformance.spec import BY_NAME, POINTS, Spec
from conformance.truth import budget, oracle


@dataclasses.dataclass
class Probed:
    """A point's probe: its finding; the distance (eps at scale) of the choice found, or of the
    nearest, in each dtype probed; and the float64 probe's Case and run, where one ran."""

    finding: Finding
    far: dict[str, float] = dataclasses.field(default_factory=dict)
    case64: Case | None = None
    trace64: Trace | None = None


def dtypes_of(target: Target) -> tuple[str, ...]:
    """The dtypes probes run in, in order: float64 first where the target claims it."""
    return ("float64", "float32") if "float64" in target.claims else ("float32",)


def probe(target: Target, point: str, working: Spec) -> Probed:
    """The choice at `point` the target follows on the point's probe, the others as in `working`."""
    want = getattr(BY_NAME[target.spec], point)
    unclaimed = NEEDS.get(point, set()) - target.claims
    if unclaimed:
        return Probed(Finding(point, None, want, f"not probed: {', '.join(sorted(unclaimed))} not claimed", False))
    done, tried = Probed(Finding(point, None, want, "")), []
    for dtype in dtypes_of(target):
        case = probe_case(target, point, dtype)
        if not target.accepts(case):
            needs = ", ".join(sorted(case.features() - target.claims)) or "what the target rejects"
            return Probed(Finding(point, None, want, f"not probed: its probe needs {needs}", probed=False))
        trace = target.run(case)
        if trace.error:
            return Probed(raised(point, want, trace.error, f" in {dtype}"))
        distances = {choice: distance(trace, oracle.run(case, dataclasses.replace(working, **{point: choice})), case)
                     for choice in POINTS[point]}
        if dtype == "float64":
            done.case64, done.trace64, far64 = case, trace, distances
        found, said = _judged(distances, want, dtype)
        done.far[dtype] = distances[found or min(distances, key=distances.get)]
        if found:
            if dtype != "float64" and "float64" in done.far:
                done.far["float64"] = far64[found]
            done.finding = Finding(point, found, want, said)
            return done
        tried.append(said)
    done.finding.detail = "; ".join(tried)
    return done


def _judged(distances: dict[str, float], want: str, dtype: str) -> tuple[str | None, str]:
    """The choice the distances single out (None: none, by a wide margin), and what was measured."""
    ranked = sorted(distances, key=distances.get)
    best = distances[ranked[0]]
    shown = ", ".join(f"{c} {eps_text(distances[c])}" for c in ranked)
    tied = [c for c in ranked if distances[c] <= 2 * best + 1]  # the probe cannot tell these apart
    rest = [c for c in ranked if c not in tied]
    if best <= UNKNOWN and not (rest and best * MARGIN > distances[rest[0]]):
        alike = f" ({', '.join(tied)} act alike here)" if len(tied) > 1 else ""
        return (want if want in tied else tied[0]), f"distance from each choice, in {dtype} eps: {shown}{alike}"
    why = "far from every known choice" if best > UNKNOWN else "no choice matches by a wide margin"
    return None, f"{dtype}: {why} ({shown})"


def distance(trace: Trace, variant_trace: Trace, case: Case) -> float:
    """How far the target's parameters are from a variant's, in eps at scale."""
    params_only = dataclasses.replace(variant_trace, state=tuple({} for _ in variant_trace.state))
    trace_params = dataclasses.replace(trace, state=tuple({} for _ in trace.state))
    error, deviations = budget.distance(trace_params, params_only, case)
    return np.inf if deviations else error


def residual(distances: dict[str, float], why: str = "") -> Finding:
    """Whether the variant found explains every probe: a target still far from it somewhere
    differs in a way no point describes (a constant's precision, a swapped beta, ...).
    `distances` are in eps of the dtype that judged each point; `why` says which that was."""
    if not distances:
        return Finding("residual", None, "none", "no numeric point was probed", probed=False)
    point = max(distances, key=distances.get)
    where = f"farthest on the {point} probe: {eps_text(distances[point])} eps{why}"
    if distances[point] > UNKNOWN:
        return Finding("residual", "unexplained", "none", f"{where} from the variant found")
    return Finding("residual", "none", "none", f"{where}, within {UNKNOWN:g} of the variant found")


def probe_case(target: Target, point: str, dtype: str) -> Case:
    """A Case in `dtype` on which the choices at `point` part ways (see the module docstring)."""
    rs = np.random.RandomState(7)
    draw = lambda *shape, scale=1.0: round_to(rs.standard_normal(shape) * scale, dtype)
    params = (Param(draw(6), dtype), Param(draw(3, 4), dtype), Param(draw(5), dtype))
    group, scale, groups = dict(lr=0.01, eps=1e-12), (lambda t: 1.0), None
    if point in ("step_count", "missing_grad"):
        return _steps_case(target, params + (Param(draw(4), dtype),), draw)
    if point == "eps":
        group, scale = dict(lr=0.01, eps=0.1), (lambda t: 0.1)
    elif point in ("weight_decay", "decoupled_flag"):
        group = dict(lr=0.1, eps=1e-8, weight_decay=0.2, decoupled_weight_decay=point == "decoupled_flag")
    elif point == "amsgrad":
        group, scale = dict(lr=0.01, eps=1e-12, amsgrad=True, betas=(0.9, 0.5)), (lambda t: 0.5**t)
    elif point == "maximize":
        group = dict(lr=0.05, eps=1e-8, maximize=True, weight_decay=0.2 if "weight_decay" in target.claims else 0.0)
        if target.spec == "adam" and {"decoupled_weight_decay", "param_groups"} <= target.claims:
            # Coupled decay cannot tell negating lr from negating the decayed gradient;
            # decoupled decay can (it reverses under a negated lr only): one group of each.
            groups = (Group((0, 1), **group), Group((2,), **group, decoupled_weight_decay=True))
    steps = tuple(Step(tuple(draw(*p.shape, scale=scale(t)) for p in params)) for t in range(1, 7))
    return Case(target.spec, params, groups or (Group((0, 1, 2), **group),), steps)


def _steps_case(target: Target, params: tuple[Param, ...], draw) -> Case:
    """The probe of step counting and missing gradients: six steps, gradients missing here and
    there. With param groups, three: parameter 1 joins its group late, group 1 idles at first,
    parameter 0 pauses at step 4, and group 2 joins at step 3 and idles at step 4; so every
    count of `POINTS["step_count"]` gives some parameter another t. Without (a target that
    takes no group dicts), one group and a step with no gradient at all: only a count by
    step() calls and one by the group's calls act alike there."""
    hyper = dict(lr=0.01, eps=1e-12)
    if "param_groups" in target.claims:
        groups = (Group((0, 1), **hyper), Group((2,), **hyper), Group((3,), **hyper, added_at=3))
        absent = {(1, 1), (2, 1), (1, 2), (2, 2), (3, 2), (4, 0), (1, 3), (2, 3), (4, 3)}
    else:
        params, groups = params[:3], (Group((0, 1, 2), **hyper),)
        absent = {(1, 1), (2, 1), (3, 2), (4, 0), (5, 0), (5, 1), (5, 2)}
    grads = lambda t: tuple(None if (t, i) in absent else draw(*p.shape) for i, p in enumerate(params))
    return Case(target.spec, params, groups, tuple(Step(grads(t)) for t in range(1, 7)))
