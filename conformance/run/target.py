"""What is certified: an implementation bound to the spec it is held to, the device, the
profile (how hard to look), and what the preflight found it rejects."""

from __future__ import annotations

import dataclasses

import numpy as np
from hypothesis import strategies as st

from conformance.cases import strategies
from conformance.cases.case import Case
from conformance.cases.trace import Trace
from conformance.registry import Implementation
from conformance.run import distributed, drive, reference, runner, torch_features
from conformance.truth import budget, oracle
from conformance.truth.precision import PRECISIONS, StatePrecision
from conformance.vocabulary import EDGES, PROFILES, Profile


@dataclasses.dataclass(frozen=True)
class Target:
    """An implementation, the spec it is certified against, the device, and the profile.

    ``avoid`` holds what the preflight found the target rejects though it claims it: a
    feature, or an edge of the valid range (`vocabulary.EDGES`). contract.accepts-valid
    fails on them; every other check draws around them. ``plan`` forces the branches of
    the Cases drawn (see `strategies.covering_plans`).
    """

    impl: Implementation
    spec: str
    device: str = "cpu"
    profile: Profile = PROFILES["standard"]
    avoid: frozenset[str] = frozenset()
    plan: strategies.Plan = strategies.FREE
    #: Processes a distributed target runs on (`conformance.run.distributed`).
    world_size: int = 1

    @property
    def claims(self) -> frozenset[str]:
        """The features the checks draw: the claims, less those the target rejects, those
        the installed torch lacks (its reference path sets every budget), and AdamW's
        decoupled_weight_decay (an AdamW takes no such keyword: its decay is decoupled)."""
        meaningless = {"decoupled_weight_decay"} if self.spec == "adamw" else set()
        return self.impl.claims - self.avoid - set(torch_features.lacking()) - meaningless

    def _within(self, **kw) -> dict:
        """The strategy keywords every kind of Case shares: the target's spec, claims, rejected
        edges and plan, the profile's steps; `kw` adds to them or overrides them."""
        return dict(spec=self.spec, claims=self.claims, max_steps=self.profile.max_steps,
                    avoid=self.avoid & set(EDGES), plan=self.plan) | kw

    def cases(self, **overrides) -> st.SearchStrategy[Case]:
        """Cases within the target's claims and spec, off the edges it rejects, sized by the
        profile and taking the plan's branches."""
        return strategies.cases(**self._within(**{"max_numel": self.profile.max_numel, "large": self.profile.large,
                                                  **overrides}))

    def ladders(self, **overrides) -> st.SearchStrategy[Case]:
        """Parameters of every size up to the profile's largest, within the target's claims and spec."""
        return strategies.ladders(**self._within(**{"max_numel": self.profile.max_numel, **overrides}))

    def closed_loops(self, **overrides) -> st.SearchStrategy[Case]:
        """Small closed loops (the seed's MLP) within the target's claims and spec."""
        return strategies.closed_loops(**self._within(**overrides))

    def accepts(self, case: Case) -> bool:
        """Whether `case` stays within what the target claims and does not reject."""
        return not (case.features() - self.claims or case.edges() & self.avoid)

    def optimizer(self, params, **kwargs):
        """The target's optimizer over `params`, built as a user builds it (`drive.construct`):
        torch's defaults for the spec unless `kwargs` says otherwise."""
        return drive.construct(self.impl.factory, params, self.spec, self.impl.explicit, **kwargs)

    def run(self, case: Case) -> Trace:
        """The target's run of `case`: across `world_size` processes for a distributed target."""
        if self.impl.sharding is not None:
            return distributed.run(self.impl, case, self.device, self.world_size)
        return runner.run(self.impl, case, self.device)

    @property
    def precision(self) -> StatePrecision | None:
        """The low-precision state format the target declares (None: full precision, as torch)."""
        return PRECISIONS.get(self.impl.state_precision)

    def allowance(self, case: Case, runs: int = 1) -> Trace | None:
        """How far `runs` runs of `case` may be from the truth (2: from each other) by the
        target's declared state format, element by element (`oracle.allowance`); None where
        it declares none or no tensor of `case` is large enough to be stored in it."""
        if self.precision is None or all(p.init.size < self.precision.from_elements for p in case.params):
            return None
        bounds = oracle.allowance(case, self.precision)
        if runs == 1:
            return bounds
        with np.errstate(invalid="ignore", over="ignore"):
            return dataclasses.replace(bounds, params=tuple(runs * x for x in bounds.params),
                                       state=tuple({k: runs * x for k, x in s.items()} for s in bounds.state))

    def torch(self) -> Target:
        """torch's path in the target's place: the one that sets its budget (`reference.yardstick`)."""
        return dataclasses.replace(self, impl=reference.yardstick(self.spec, self.impl.claims, self.device),
                                   world_size=1)

    def references(self, case: Case) -> list[Trace]:
        """torch's runs that set the error budget for `case`."""
        torch_path = self.torch().impl
        return [runner.run(torch_path, c, self.device) for c in budget.reference_cases(case)]
