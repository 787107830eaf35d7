"""Trace: what a run produced, as pure data.

A `Trace` holds every parameter and optimizer state tensor after every recorded step,
plus what the run observed (exceptions; a parameter whose storage, dtype, shape or
strides changed; a gradient the optimizer wrote to or set to None; a closure not called
once; torch's global state changed). It serialises, as a Case does, to JSON metadata
plus named numpy arrays, without pickle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from conformance.cases.case import FORMAT, CaseError, check_format, named_array


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
    "global-state",  # the optimizer changed global state (default dtype, grad mode, RNG, threads, directory)
    "state-missing",  # a sharded target's rank holds no piece of a state tensor the others hold
)


@dataclasses.dataclass(frozen=True, eq=False)
class Trace:
    """What a run produced.

    ``params[i]`` is an array [len(steps), *shape] of parameter i after each recorded
    step; ``state[i]`` maps each state key (exp_avg, exp_avg_sq, max_exp_avg_sq, step)
    the same way (absent state reads as zeros, step 0). ``losses`` holds a closed loop's
    loss before every step. ``error`` is the exception that stopped the run, if any;
    ``refused`` says the target raised it cleanly (`conformance.run.drive`). ``kinds[i]``
    says what each state entry of parameter i was at its last recorded step (type, dtype,
    shape, device, layout; empty without state or for the oracle).
    """

    steps: tuple[int, ...]
    params: tuple[np.ndarray, ...]
    state: tuple[Mapping[str, np.ndarray], ...]
    losses: np.ndarray | None = None
    observations: tuple[Observation, ...] = ()
    error: str | None = None
    refused: bool = False
    kinds: tuple[Mapping[str, dict], ...] = ()

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
        if self.error:
            meta["refused"] = self.refused
        if any(self.kinds):
            meta["kinds"] = [dict(k) for k in self.kinds]
        return meta, arrays

    @classmethod
    def from_json(cls, meta: Mapping, arrays: Mapping[str, np.ndarray]) -> Trace:
        check_format(meta, "trace")
        try:
            n = len(meta["steps"])
            params = tuple(named_array(arrays, f"param/{i}") for i in range(len(meta["state_keys"])))
            state = tuple({k: named_array(arrays, f"state/{i}/{k}") for k in keys}
                          for i, keys in enumerate(meta["state_keys"]))
            for i, (p, s) in enumerate(zip(params, state)):
                for name, a in [("param", p), *s.items()]:
                    if len(a) != n:
                        raise CaseError(f"malformed trace: {name} of param {i} has {len(a)} snapshots for {n} steps")
            return cls(
                steps=tuple(meta["steps"]),
                params=params,
                state=state,
                losses=named_array(arrays, "losses") if meta["losses"] else None,
                observations=tuple(Observation(**o) for o in meta["observations"]),
                error=meta["error"],
                refused=bool(meta.get("refused", False)),
                kinds=tuple(meta.get("kinds", ())),
            )
        except CaseError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise CaseError(f"malformed trace: {type(e).__name__}: {e}") from None
