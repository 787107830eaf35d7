"""Run any implementation through a Case: Case -> Trace.

The one runner behind every check, golden file and benchmark. It drives the target
with `conformance.run.drive` and guards torch's global state (`drive.guarded_global_state`):
a target that changes the default dtype, the grad mode, the RNG, the number of threads or
the working directory is noted and the state restored, so one hostile target cannot skew
the runs after it.
"""

from __future__ import annotations

import numpy as np

from conformance.cases.case import Case
from conformance.cases.trace import Observation, Trace
from conformance.dtypes import components
from conformance.registry import Implementation
from conformance.run.drive import Run, guarded_global_state


class Unclaimed(ValueError):
    """The Case needs a feature the implementation does not claim, or another device."""


def run(impl: Implementation, case: Case, device: str = "cpu", driver: type[Run] = Run) -> Trace:
    """Drive `impl` through `case` on `device` and return what it produced. A `driver` other
    than `drive.Run` steps differently (through a CUDA graph, say: checks/cuda.py). (A
    distributed target runs across processes: `Target.run`, `conformance.run.distributed`.)"""
    claimed(impl, case, device)
    meta, arrays = case.to_json()
    notes: list[tuple] = []
    with guarded_global_state(notes, step=len(case.steps)):
        result = driver(impl.factory, meta, {k: components(a) for k, a in arrays.items()}, impl.claims, device,
                        impl.explicit).go()
    return to_trace(result, case, notes)


def claimed(impl: Implementation, case: Case, device: str) -> None:
    """Unclaimed unless `impl` claims every feature `case` needs and runs on `device`."""
    missing = case.features() - impl.claims
    if missing:
        raise Unclaimed(f"{impl.name} does not claim {', '.join(sorted(missing))}, which this case needs")
    if device not in impl.devices:
        raise Unclaimed(f"{impl.name} does not run on {device}")


def to_trace(result: dict, case: Case, notes: list[tuple]) -> Trace:
    """The Trace of a `drive` result (torch tensors) as numpy arrays; `notes`, the observations
    made around the run (`drive.guarded_global_state`)."""
    params, state = [], []
    for i, p in enumerate(case.params):
        snaps = result["state"][i]
        params.append(_stacked([s.numpy() for s in result["params"][i]], p.shape, p.init.dtype))
        keys = sorted(set().union(*snaps)) if snaps else ["step"]
        state.append({k: _stacked([_value(s, k, p) for s in snaps], *_layout(k, p)) for k in keys})
    return Trace(
        steps=tuple(result["steps"]),
        params=tuple(params),
        state=tuple(state),
        losses=np.array(result["losses"], dtype=np.float64) if case.objective is not None else None,
        observations=tuple(Observation(*o) for o in [*result["observations"], *notes]),
        error=result["error"],
        refused=result["refused"],
        kinds=tuple(result["kinds"]),
    )


def _layout(key: str, p) -> tuple[tuple[int, ...], type]:
    """The shape and numpy dtype of a snapshot of state `key` of parameter `p`."""
    return ((), np.float64) if key == "step" else (p.shape, p.init.dtype)


def _value(snap: dict, key: str, p) -> np.ndarray:
    """A state snapshot; absent state (not yet stepped) reads as zeros."""
    return snap[key].numpy() if key in snap else np.zeros(*_layout(key, p))


def _stacked(arrays: list, shape: tuple[int, ...], dtype) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros((0, *shape), dtype)
