"""The check catalogue: parity, invariants and the API contract, each with a stable id.

``CATALOGUE`` maps check ids to `Check`s; `run_check` runs one against a `Target`.
"""

from conformance.checks import contract, invariants, parity  # noqa: F401  (they register their checks)
from conformance.checks.base import CATALOGUE, Check, CheckFailure, CheckSkipped, Evidence, run_check

__all__ = ["CATALOGUE", "Check", "CheckFailure", "CheckSkipped", "Evidence", "run_check"]
