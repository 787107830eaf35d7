"""The points observed directly rather than measured: the dtype the moments are kept in, and
whether step() writes to the gradients."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from conformance.cases.case import Case, Group, Param, Step
from conformance.diagnose.findings import Finding, raised
from conformance.run.drive import guarded_global_state
from conformance.run.target import Target


def state_precision(target: Target) -> Finding:
    """The dtype the target keeps its moments in, against its parameters' dtypes."""
    dtypes = [torch.float32] + [getattr(torch, d) for d in ("bfloat16", "float16", "float64") if d in target.claims]
    params = [torch.ones(4, dtype=d, device=target.device, requires_grad=True) for d in dtypes]
    for p in params:
        p.grad = torch.full_like(p, 0.5)
    try:
        with guarded_global_state([], step=1):  # a target that changes it must not change ours
            opt = target.optimizer(params)
            opt.step()
    except Exception as e:
        return raised("state_precision", "param_dtype", f"{type(e).__name__}: {e}")
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


def gradient_handling(target: Target) -> Finding:
    """Whether step() writes to the gradients, or sets them to None (torch does neither), on
    each branch: plain, with weight decay, with AMSGrad, with maximize."""
    g = np.array([0.5, -1.0, 2.0])
    for branch, group, needs in BRANCHES:
        if set(needs) - target.claims:
            continue
        case = Case(target.spec, (Param(np.array([1.0, 2.0, 3.0])),), (Group((0,), **group),), (Step((g,)), Step((g,))))
        trace = target.run(case)
        if trace.error:
            return raised("gradients", "untouched", trace.error, f" {branch}")
        touched = [o for o in trace.observations if o.kind in ("grad-modified", "grad-removed")]
        if touched:
            found = "set_to_none" if touched[0].kind == "grad-removed" else "modified"
            return Finding("gradients", found, "untouched", f"on {branch}: {touched[0]}")
    return Finding("gradients", "untouched", "untouched",
                   "gradients bitwise equal after step(), on every branch probed")
