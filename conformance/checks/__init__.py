"""The check catalogue: parity, invariants, the API contract, what CUDA adds and what sharding
across processes adds, each with a stable id.

``CATALOGUE`` maps check ids to `Check`s; `run_check` runs one against a `Target`.
"""

import difflib

from conformance.checks import contract, cuda, invariant, parity, sharded  # noqa: F401  (they register their checks)
from conformance.checks.catalogue import CATALOGUE, Check, CheckFailure, CheckSkipped, Evidence
from conformance.checks.running import run_check
from conformance.registry import TargetError

__all__ = ["CATALOGUE", "Check", "CheckFailure", "CheckSkipped", "Evidence", "checked_ids", "run_check"]


def checked_ids(ids, option: str) -> list[str]:
    """`ids` if every one is a check id, else TargetError naming the unknown one."""
    for check_id in ids:
        if check_id not in CATALOGUE:
            close = difflib.get_close_matches(check_id, list(CATALOGUE), n=2)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(sorted(CATALOGUE))}"
            raise TargetError(f"{option} {check_id}: no such check{hint}")
    return list(ids)
