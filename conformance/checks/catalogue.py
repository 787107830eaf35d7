"""The check model: what a check is, the catalogue of them by stable id, and what a check
can conclude.

A `Check` has a stable id (``parity.trajectory``), a one-sentence statement of the
property, and what it needs (features the target must claim, edges of the valid range it
must accept): a target without them skips the check with that reason. Its body draws
Cases through a hypothesis ``data`` object and hands each, with the property, to
`assertions.holds`. A property that does not hold raises `CheckFailure`, carrying the
Cases that show it, how severe it is, and how to rerun it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from hypothesis import strategies as st

from conformance.cases.case import Case
from conformance.run.target import Target
from conformance.truth.budget import Parity
from conformance.vocabulary import EDGES


class CheckFailure(AssertionError):
    """The property does not hold. `cases` are the Cases that show it (minimal, once shrunk)."""

    def __init__(self, message: str, cases: Sequence[Case] = (), parity: Parity | None = None,
                 repro: dict | None = None, severity: str = "parameters"):
        super().__init__(message)
        self.cases = tuple(cases)
        self.parity = parity
        #: How a reproducer shows it (see conformance.report.repro_runtime); None: side by side with torch.
        self.repro = repro
        self.severity = severity
        #: (property, args): `holds` fills it, so that the failure can be rerun on changed Cases
        #: (`ablation`, and the reproducer of a distributed target, which reruns the property).
        self.retest: tuple[Callable, tuple] | None = None
        #: Whether ablation may rerun it on changed Cases (False where each rerun costs a wait).
        self.ablate = True
        #: What the minimal Case needs for the failure to show (`ablation.explain`).
        self.necessary: list[str] | None = None


class CheckSkipped(Exception):
    """The check cannot observe this target (it keeps no such state, say). Skipped, not failed."""


class CheckTimeout(BaseException):
    """The check ran past its time limit (a BaseException: hypothesis must not shrink it)."""


class Evidence:
    """What a check saw across its examples, for the report: the worst parity verdict,
    and the smallest example where torch itself breaks the property."""

    def __init__(self) -> None:
        self.parity: Parity | None = None
        self.examples = 0
        self.torch_deviation: CheckFailure | None = None

    def saw(self, parity: Parity | None) -> None:
        self.examples += 1
        ratio = lambda p: p.error / p.budget
        if parity is not None and (self.parity is None or ratio(parity) > ratio(self.parity)):
            self.parity = parity

    def deviates(self, failure: CheckFailure) -> None:
        size = lambda f: sum(len(c.steps) * sum(p.init.size for p in c.params) for c in f.cases)
        if self.torch_deviation is None or size(failure) < size(self.torch_deviation):
            self.torch_deviation = failure


CheckBody = Callable[[Target, Evidence, st.DataObject], None]


@dataclasses.dataclass(frozen=True)
class Check:
    id: str
    statement: str
    needs: frozenset[str]
    body: CheckBody
    #: Whether the body draws examples; a fixed procedure (the golden traces) runs once.
    drawn: bool = True
    #: The one device the check can observe (None: any).
    device: str | None = None
    #: Whether it observes a distributed target across world sizes (checks/sharded.py).
    sharded: bool = False

    def unmet(self, target: Target) -> str | None:
        """Why the check cannot run on `target` (None: it can): another device than the one
        it observes, a feature it needs that the target does not claim, or one it claims but
        rejects, or an edge of the valid range (`registry.EDGES`) that it rejects."""
        if self.device not in (None, target.device):
            return f"{self.device.upper()} only: certify with --device {self.device}"
        if self.sharded and target.impl.sharding is None:
            return "not a distributed target: its factory builds no sharded optimizer (Implementation.sharding)"
        if self.sharded and target.world_size < 2:
            return "a distributed target across processes: certify with --world-size 2 or more"
        unclaimed = sorted(self.needs - target.impl.claims - set(EDGES))
        if unclaimed:
            return f"not claimed: {', '.join(unclaimed)}"
        rejected = sorted(self.needs & target.avoid)
        if rejected:
            return f"the target rejects {', '.join(rejected)} (contract.accepts-valid fails on it)"
        return None


CATALOGUE: dict[str, Check] = {}


def check(id: str, statement: str, needs: Sequence[str] = (), drawn: bool = True,
          device: str | None = None, sharded: bool = False) -> Callable[[CheckBody], CheckBody]:
    """Register a check under a stable id."""
    def register(body: CheckBody) -> CheckBody:
        if id in CATALOGUE:
            raise ValueError(f"duplicate check id {id}")
        CATALOGUE[id] = Check(id, statement, frozenset(needs), body, drawn, device, sharded)
        return body

    return register


