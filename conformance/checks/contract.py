"""The API contract: what torch.optim.Adam promises beside the numbers."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from hypothesis import assume
from hypothesis import strategies as st

from conformance.cases.case import Case, Group, Param, Step
from conformance.cases.trace import Trace
from conformance.checks.assertions import and_more, completed, holds, within_budget
from conformance.checks.catalogue import CheckFailure, Evidence, check
from conformance.dtypes import round_to
from conformance.run import preflight
from conformance.run.drive import guarded_global_state
from conformance.run.target import Target
from conformance.truth.budget import Parity
from conformance.vocabulary import TORCH_DEFAULTS, torch_class_name


def _observed(target: Target, case: Case, kinds: tuple[str, ...], statement: str) -> None:
    """The run of `case` completes and notes no observation of `kinds`."""
    notes = [o for o in completed(target, case).observations if o.kind in kinds]
    if notes:
        more = f" (and {len(notes) - 1} more)" if len(notes) > 1 else ""
        raise CheckFailure(f"{statement}: {notes[0]}{more}", [case], severity="api")


@check("contract.in-place", "step() updates parameters in place: same storage, dtype, shape and strides.")
def in_place(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _observed, data.draw(target.cases(), label="case"), ("param-replaced",),
          "a parameter was replaced")


@check("contract.grad-untouched", "step() never writes to a gradient.")
def grad_untouched(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _observed, data.draw(target.cases(), label="case"), ("grad-modified", "grad-removed"),
          "a gradient was modified")


@check("contract.global-state",
       "step() leaves the process's global state alone: torch's default dtype, grad mode, RNG and number of "
       "threads, and the working directory, whatever the program set (float32 or float64 as the default dtype).")
def global_state(target: Target, evidence: Evidence, data) -> None:
    case = data.draw(target.cases(), label="case")
    holds(target, evidence, _observed, case, ("global-state",), "torch's global state changed")
    holds(target, evidence, _left_float64_alone, case)


def _left_float64_alone(target: Target, case: Case) -> None:
    """Run under torch.set_default_dtype(torch.float64), as a program may, the target leaves
    it so (one that resets it to a hard-coded float32 is caught here only). A distributed
    target's ranks keep their own default: there this repeats the first run."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        notes = [o for o in target.run(case).observations if o.kind == "global-state"]
    finally:
        torch.set_default_dtype(previous)
    if notes:
        raise CheckFailure(f"torch's global state changed under a float64 default dtype: {notes[0]}", [case],
                           repro=dict(mode="side-by-side", default_dtype="float64"), severity="api")


@check("contract.closure",
       "step(closure) calls the closure exactly once, with grad enabled, and returns its loss: a closure written as "
       "users write it (the seed's MLP: forward, loss.backward(), return the loss) works.", needs=["closure"])
def closure(target: Target, evidence: Evidence, data) -> None:
    case = data.draw(target.cases(), label="case")
    case = dataclasses.replace(case, steps=tuple(dataclasses.replace(s, closure=True) for s in case.steps))
    holds(target, evidence, _closure_kept, case)
    holds(target, evidence, _closure_kept, data.draw(target.closed_loops(), label="closed loop"))


def _closure_kept(target: Target, case: Case) -> None:
    """Every step(closure) of `case` calls its closure once, with grad enabled, returns its
    loss, and the run completes."""
    trace = target.run(case)
    notes = [o for o in trace.observations if o.kind == "closure"]
    if notes:
        more = f" (and {len(notes) - 1} more)" if len(notes) > 1 else ""
        raised = f"; the run then raised: {trace.error}" if trace.error else ""
        raise CheckFailure(f"step(closure) broke its contract: {notes[0]}{more}{raised}", [case], severity="api")
    if trace.error:
        raise CheckFailure(f"the run raised: {trace.error}", [case], severity="api")


@check(
    "contract.state-entries",
    "Each parameter's state holds torch's entries and no others (step, exp_avg, exp_avg_sq, and max_exp_avg_sq "
    "with AMSGrad), each a tensor of torch's dtype (or a wider float), shape, device and layout.",
)
def state_entries(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _entries_like_torch, data.draw(target.cases(), label="case"))


def _entries_like_torch(target: Target, case: Case) -> None:
    trace, theirs = completed(target, case), target.references(case)[0]
    if theirs.error:
        return
    for i in range(len(case.params)):
        # keys as text: a target may key its state by something else than a name (an int, say)
        mine, torch_kinds = ({str(k): v for k, v in dict(t.kinds[i]).items()} if t.kinds else {}
                             for t in (trace, theirs))
        missing = sorted(set(torch_kinds) - set(mine))
        extra = sorted(set(mine) - set(torch_kinds))
        if missing or extra:
            said = [f"no {', '.join(missing)}"] if missing else []
            said += [f"{', '.join(extra)} beside torch's" if torch_kinds else f"{', '.join(extra)}"] if extra else []
            lacking = [o.detail for o in trace.observations if o.kind == "state-missing" and o.param == i]
            raise CheckFailure(f"param {i}'s state holds {' and '.join(said)}, where torch keeps "
                               f"{', '.join(sorted(torch_kinds)) or 'none'}" + (f" ({lacking[0]})" if lacking else ""),
                               [case], severity="state")
        for key in sorted(torch_kinds):
            differs = _kind_differs(mine[key], torch_kinds[key])
            if differs:
                raise CheckFailure(f"param {i} {key}: {differs}", [case], severity="state")


#: Floating dtypes by precision: a state entry may be held wider than torch holds it, never narrower.
WIDTH = {"bfloat16": 1, "float16": 1, "float32": 2, "float64": 3, "complex64": 2, "complex128": 3}


def _kind_differs(mine: dict, theirs: dict) -> str:
    """What differs between two state entries' kinds (`drive.kind`), torch's second; "" if nothing."""
    show = lambda k: k["type"] if k["type"] != "Tensor" else f"a {k['dtype']} tensor of shape {tuple(k['shape'])}"
    if mine["type"] != theirs["type"]:
        return f"held as {show(mine)}, where torch holds {show(theirs)}"
    if mine["type"] != "Tensor":
        return ""
    if mine["dtype"] != theirs["dtype"]:
        wider = (mine["dtype"].startswith("complex") == theirs["dtype"].startswith("complex")
                 and WIDTH.get(mine["dtype"], 0) > WIDTH.get(theirs["dtype"], 9))
        if not wider:
            return f"held in {mine['dtype']}, where torch holds {theirs['dtype']}"
    for field in ("shape", "device", "layout"):
        if mine[field] != theirs[field]:
            return f"{field} {mine[field]}, where torch's is {theirs[field]}"
    return ""


@check(
    "contract.defaults",
    "Constructed with the parameters alone, as factory(params), the target takes torch's defaults (lr 1e-3, betas "
    "(0.9, 0.999), eps 1e-8, weight decay 0 for Adam and 1e-2 for AdamW, AMSGrad and maximize off): its run "
    "follows torch's within the error budget.",
    drawn=False,
)
def defaults(target: Target, evidence: Evidence, data) -> None:
    plain = dataclasses.replace(target, impl=dataclasses.replace(target.impl, explicit=frozenset()))
    holds(plain, evidence, _takes_defaults, _default_case(target.spec))


def _takes_defaults(target: Target, case: Case) -> Parity | None:
    try:
        return within_budget(target, case)
    except CheckFailure as failure:
        why = "; ".join(f"{k}: {reason}" for k, reason in preflight.explicit_keywords(target).items()
                        if target.impl.sharding is None)
        raise CheckFailure(f"with torch's defaults left out, as a user leaves them: {failure}"
                           + (f"; its defaults differ from torch's ({why})" if why else ""),
                           failure.cases, failure.parity, repro=dict(mode="side-by-side", explicit=[]),
                           severity="api") from None


def _default_case(spec: str) -> Case:
    """Three float32 parameters at torch's defaults, five steps, one parameter missing a gradient."""
    rs = np.random.RandomState(7)
    shapes = ((3, 2), (4,), (5,))
    params = tuple(Param(round_to(rs.standard_normal(s), "float32")) for s in shapes)
    grads = lambda t: tuple(None if (t, i) == (2, 2) else round_to(rs.standard_normal(s), "float32")
                            for i, s in enumerate(shapes))
    group = Group((0, 1, 2), weight_decay=1e-2 if spec == "adamw" else 0.0)
    return Case(spec, params, (group,), tuple(Step(grads(t)) for t in range(1, 6)))


@check(
    "contract.no-grad-untouched",
    "A parameter without a grad at a step, and its state, stay exactly as they were: no decay, "
    "no moment update, no step count (steps are counted per parameter).",
)
def no_grad_untouched(target: Target, evidence: Evidence, data) -> None:
    case = data.draw(target.cases(plan=dataclasses.replace(target.plan, missing_grad=True)), label="case")
    holds(target, evidence, _untouched_without_grad, case)


def _untouched_without_grad(target: Target, case: Case) -> None:
    trace = completed(target, case)
    for i, p in enumerate(case.params):
        before = {"param": p.init}
        for t, s in enumerate(case.steps, start=1):
            now = {"param": trace.params[i][t - 1], **{k: a[t - 1] for k, a in trace.state[i].items()}}
            if s.grads[i] is None:
                changed = [k for k in now if k in before and not _identical(now[k], before[k])]
                changed += [k for k in now if k not in before and k != "param" and np.any(now[k] != 0)]
                if changed:
                    raise CheckFailure(f"param {i} had no grad at step {t}, yet its {', '.join(changed)} changed",
                                       [case], severity="parameters" if "param" in changed else "state")
            before = now


@check(
    "contract.state-dict",
    "Saving the state_dict mid-run and loading it into a fresh optimizer, directly or through "
    "torch.save / torch.load(weights_only=True), continues the identical trajectory.",
)
def state_dict(target: Target, evidence: Evidence, data) -> None:
    case = data.draw(target.cases(events=False), label="case")
    assume(len(case.steps) >= 2)
    t = data.draw(st.integers(2, len(case.steps)), label="reload before step")
    how = data.draw(st.sampled_from(["reload", "reload_file"]), label="how")
    holds(target, evidence, _resumes, case, t, how)


def _resumes(target: Target, case: Case, t: int, how: str) -> None:
    """Reloading before step `t` (`how`) continues the run of `case` identically."""
    steps = list(case.steps)
    steps[t - 1] = dataclasses.replace(steps[t - 1], events=(how,))
    reloaded = dataclasses.replace(case, steps=tuple(steps))
    assert_identical(target.run(reloaded), target.run(case), f"{how} before step {t}", [reloaded, case])


@check("contract.determinism", "Two runs of the same Case give bitwise identical results.")
def determinism(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _repeats, data.draw(target.cases(), label="case"))


def _repeats(target: Target, case: Case) -> None:
    assert_identical(target.run(case), target.run(case), "a second run", [case])


INVALID = {
    "lr": [-1e-3, -1.0, float("nan")],
    "eps": [-1e-8, float("nan")],
    "beta1": [1.0, 1.5, -0.1, float("nan")],
    "beta2": [1.0, 1.5, -0.1, float("nan")],
    "weight_decay": [-0.1, float("nan")],
}


@check(
    "contract.invalid-hyperparameters",
    "Invalid hyperparameters (lr, eps or weight decay negative or NaN; a beta outside [0, 1)) raise "
    "ValueError at construction, as torch does.",
)
def invalid_hyperparameters(target: Target, evidence: Evidence, data) -> None:
    names = [n for n in INVALID if n != "weight_decay" or "weight_decay" in target.claims]
    name = data.draw(st.sampled_from(names), label="hyperparameter")
    value = data.draw(st.sampled_from(INVALID[name]), label="invalid value")
    beta1, beta2 = TORCH_DEFAULTS[target.spec]["betas"]
    if name.startswith("beta"):
        kwargs = dict(betas=(value, beta2) if name == "beta1" else (beta1, value))
    else:
        kwargs = {name: value}
    holds(target, evidence, _rejected, kwargs)


def _rejected(target: Target, kwargs: dict) -> None:
    try:
        with guarded_global_state([], step=0):
            target.optimizer([torch.zeros(3, requires_grad=True)], **kwargs)
    except ValueError:
        return
    except Exception as e:
        raise CheckFailure(f"{_call(kwargs)} raised {type(e).__name__} ({e}), where torch raises ValueError",
                           repro=dict(mode="construct", kwargs=kwargs), severity="api") from None
    raise CheckFailure(f"{_call(kwargs)} was accepted, where torch raises ValueError",
                       repro=dict(mode="construct", kwargs=kwargs), severity="api")


def _call(kwargs: dict) -> str:
    return "factory(params, " + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"


@check("contract.sparse-gradients", "A sparse gradient makes step() raise, as torch does (Adam is dense-only).")
def sparse_gradients(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, _sparse_rejected, data.draw(st.integers(2, 64), label="size"))


def _sparse_rejected(target: Target, n: int) -> None:
    param = torch.zeros(n, requires_grad=True, device=target.device)
    param.grad = torch.sparse_coo_tensor(torch.tensor([[0, n - 1]]), torch.tensor([1.0, -1.0]), (n,),
                                         device=target.device)
    try:
        with guarded_global_state([], step=1):
            target.optimizer([param]).step()
    except Exception:
        return
    raise CheckFailure(f"step() accepted a sparse gradient of a ({n},) parameter, where torch raises RuntimeError",
                       repro=dict(mode="sparse", size=n), severity="api")


@check(
    "contract.non-finite",
    "NaN and inf gradients propagate as torch propagates them: the same elements become NaN or inf, "
    "and the finite ones stay within the error budget.",
)
def non_finite(target: Target, evidence: Evidence, data) -> None:
    holds(target, evidence, within_budget, data.draw(target.cases(non_finite=True), label="case"))


@check(
    "contract.accepts-valid",
    "Everything torch accepts and the target claims is accepted: the edges of the valid range (lr = 0, "
    "eps = 0, a beta of 0, weight decay 1) and each declared behaviour (dtypes, layouts, param groups, ...).",
    drawn=False,
)
def accepts_valid(target: Target, evidence: Evidence, data) -> None:
    rejected = []
    for probe in preflight.applicable(target):
        try:
            holds(target, evidence, _accepted, probe)
        except CheckFailure as failure:
            rejected.append(failure)
    if rejected:
        first = rejected[0]
        failure = CheckFailure(f"{first}{and_more([f.probe for f in rejected])}", first.cases, severity="api")
        failure.retest = first.retest
        raise failure


def _accepted(target: Target, probe: preflight.Probe) -> None:
    error = preflight.rejection(target, probe)
    if error is not None:
        failure = CheckFailure(f"{target.impl.name} rejects {probe.what}, which {torch_class_name(target.spec)} "
                               f"accepts: {error}", [probe.build(target.spec)], severity="api")
        failure.probe = probe.name
        raise failure


def _identical(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def assert_identical(a: Trace, b: Trace, what: str, cases) -> None:
    for trace in (a, b):
        if trace.error:
            raise CheckFailure(f"{what}: a run raised: {trace.error}", cases, severity="api")
    for i, (pa, pb) in enumerate(zip(a.params, b.params)):
        keys = sorted(set(a.state[i]) | set(b.state[i]))
        pairs = [("param", pa, pb)] + [(k, a.state[i].get(k), b.state[i].get(k)) for k in keys]
        for key, x, y in pairs:
            if x is None or y is None or not _identical(x, y):
                step = "" if x is None or y is None else f" after step {a.steps[np.argwhere(~_equal_rows(x, y))[0][0]]}"
                raise CheckFailure(f"{what}: param {i} {key} differs{step}", cases, repro=dict(mode="repeat"),
                                   severity="parameters" if key == "param" else "state")


def _equal_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per snapshot: whether x and y are identical (NaN equal to NaN)."""
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    return same.reshape(len(same), -1).all(axis=1)
