"""What certify says of the target's arithmetic, so that diagnose never contradicts it: read from
certify's JSON report (``diagnose --report R.json``), or found by diagnose's own quick parity
check (the parity checks of the catalogue at the quick profile, seed 0, as certify runs them)."""

from __future__ import annotations

import dataclasses
import warnings

from conformance.checks import CATALOGUE, CheckFailure, CheckSkipped, run_check
from conformance.diagnose.findings import Finding
from conformance.run.target import Target
from conformance.vocabulary import PROFILES, SEVERITIES

#: The checks whose failure means the arithmetic is not torch's.
PARITY = tuple(check_id for check_id in CATALOGUE if check_id.startswith("parity."))


class ReportError(ValueError):
    """A --report that is not certify's report of the target. One line."""


@dataclasses.dataclass(frozen=True)
class Certified:
    """Parity's outcome for the target: where it comes from; whether a parity check failed (None:
    no verdict, a check errored); certify's headline (or the error) and its "needs:" line (what
    its minimal case needs to fail)."""

    source: str
    failed: bool | None
    headline: str = ""
    needs: str = ""

    def finding(self) -> Finding:
        """The parity point: certify's parity checks pass, or one fails, with the evidence."""
        if self.failed is None:
            return Finding("parity", None, "holds", f"not checked: {self.source}: {self.headline}", probed=False)
        if not self.failed:
            said = f"; its failures lie elsewhere: {self.headline}" if self.headline else ""
            return Finding("parity", "holds", "holds", f"{self.source}: no parity check failed{said}")
        needs = f"; {self.needs}" if self.needs else ""
        return Finding("parity", "fails", "holds", f"{self.source}: {self.headline}{needs}")


def quick_parity(target: Target) -> Certified:
    """The parity checks on `target` at the quick profile, the first failure explained (no
    verdict where a run raised before any)."""
    quick, errors = dataclasses.replace(target, profile=PROFILES["quick"]), []
    for check_id in PARITY:
        chk = CATALOGUE[check_id]
        if chk.unmet(quick):
            continue
        try:
            with warnings.catch_warnings():  # torch warns on the non-finite and sparse inputs, on purpose
                warnings.simplefilter("ignore")
                run_check(chk, quick)
        except CheckFailure as failure:
            headline = f"{check_id}, {SEVERITIES[failure.severity]}: {_line(str(failure))}"
            return Certified("diagnose's quick parity check", True, headline, _needs(failure.necessary))
        except CheckSkipped:
            continue
        except Exception as e:  # the run itself raised: no verdict on the arithmetic
            errors.append(f"{check_id} raised {type(e).__name__}: {_line(str(e))}")
    return Certified("diagnose's quick parity check", None if errors else False, errors[0] if errors else "")


def from_report(doc: dict, target: Target, path: str) -> Certified:
    """Parity's outcome from certify's report `doc` of `target` (read from `path` by
    `report.compare.load`); ReportError (one line) for a survey, or another target's or spec's report."""
    named = doc.get("target")
    if not isinstance(named, dict):
        raise ReportError(f"--report {path}: not a certify report (certify --json writes one)")
    if named.get("name", target.impl.name) != target.impl.name:
        raise ReportError(f"--report {path} is certify's report of {named['name']}, not of {target.impl.name}")
    if named.get("spec", target.spec) != target.spec:
        raise ReportError(f"--report {path} holds {target.impl.name} to --spec {named['spec']}: diagnose it with "
                          f"--spec {named['spec']}")
    checks = doc["checks"]
    failed = [c for c in checks if c.get("status") == "failed" and isinstance(c.get("failure"), dict)]
    headline, needs = _headline(doc, failed)
    if any(c["id"].startswith("parity.") for c in failed):
        return Certified("certify's report", True, headline, needs)
    errors = [c for c in checks if c["id"].startswith("parity.") and c.get("status") == "error"]
    if errors:
        return Certified("certify's report", None, f"{errors[0]['id']} errored: {_line(str(errors[0].get('reason')))}")
    return Certified("certify's report", False, headline, needs)


def _headline(doc: dict, failed: list[dict]) -> tuple[str, str]:
    """The report's headline ("most severe: CHECK, SEVERITY: MESSAGE") and the "needs:" line of
    its check, or of the first parity failure where the headline is no parity check."""
    head = doc.get("headline") if isinstance(doc.get("headline"), dict) else None
    if head is None and failed:
        head = dict(check=failed[0]["id"], severity=failed[0]["failure"].get("severity"),
                    message=failed[0]["failure"].get("message", ""))
    if head is None:
        return "", ""
    severity = SEVERITIES.get(head.get("severity"), head.get("severity"))
    text = f"most severe: {head.get('check')}, {severity}: {_line(str(head.get('message', '')))}"
    ours = [c for c in failed if c["id"] == head.get("check")] or [c for c in failed if c["id"].startswith("parity.")]
    necessary = ours[0]["failure"].get("necessary") if ours else None
    return text, _needs(necessary) if isinstance(necessary, list) else ""


def _needs(necessary: list[str] | None) -> str:
    """certify's "needs:" line: what the minimal case needs for the failure to show."""
    if necessary is None:
        return ""
    return "needs: " + ("; ".join(necessary) if necessary else "nothing in particular")


def _line(text: str, width: int = 300) -> str:
    """`text` on one line, at most `width` characters."""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
