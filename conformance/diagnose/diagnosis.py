"""Diagnosing a target: certify's preflight, the probes of every point, and parity."""

from __future__ import annotations

import dataclasses

from conformance.diagnose.certified import Certified, quick_parity
from conformance.diagnose.findings import Finding
from conformance.diagnose.observed import gradient_handling, state_precision
from conformance.diagnose.precision import arithmetic
from conformance.diagnose.probes import Probed, probe, residual
from conformance.diagnose.wording import document, render, verdict
from conformance.run import preflight
from conformance.run.target import Target
from conformance.spec import BY_NAME, POINTS


def diagnose(target: Target) -> list[Finding]:
    """Findings for every point, the arithmetic, state precision, gradient handling, and what
    none of them explains. The probes only: `examine` runs the preflight first and adds parity."""
    working = BY_NAME[target.spec]
    probed: dict[str, Probed] = {}
    for _ in range(2):  # a second pass, with the first pass's findings in place
        for point in POINTS:
            probed[point] = probe(target, point, working)
            if probed[point].finding.found:
                working = dataclasses.replace(working, **{point: probed[point].finding.found})
    precision, judged = arithmetic(target, working, probed)
    why = " (float32 eps: it computes in float32)" if precision.found == "float32" else ""
    numeric = {p: d for p, d in judged.items() if probed[p].finding.probed}
    return [probed[p].finding for p in POINTS] + [precision, state_precision(target), gradient_handling(target),
                                                  residual(numeric, why)]


@dataclasses.dataclass
class Diagnosis:
    """A target's diagnosis: the target as the preflight left it, the findings (parity last),
    and the claims the preflight dropped, each with what its probe raised."""

    target: Target
    findings: list[Finding]
    refused: tuple[str, ...] = ()

    def verdict(self) -> str:
        return verdict(self.target, self.findings, self.refused)

    def document(self) -> dict:
        return document(self.target, self.findings, self.refused)

    def render(self) -> str:
        return render(self.target, self.findings, self.refused)


def examine(target: Target, certified: Certified | None = None,
            found: preflight.Preflight | None = None) -> Diagnosis:
    """The whole diagnosis: certify's preflight (`found`, run here if None), so that the probes
    pass only what the target accepts; the probes; and parity, from `certified` (certify's
    report) or else diagnose's own quick parity check. Raises PreflightError (one line) for a
    target the preflight finds unusable."""
    found = found or preflight.run(target)
    target = found.apply(target)
    findings = diagnose(target)
    parity = (certified or quick_parity(target)).finding()
    refused = tuple(f"{n.feature} ({n.what} raised {n.raised})" for n in found.dropped)
    return Diagnosis(target, findings + [parity], refused)
