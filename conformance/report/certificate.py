"""The certificate: a certification run's JSON document (`document`, its schema in
``report.schema.json``) and the report a person reads (`render`), led by the most severe
finding and ending with the verdict."""

from __future__ import annotations

from pathlib import Path

from conformance.truth.precision import PRECISIONS
from conformance.vocabulary import FEATURES, SEVERITIES, torch_class_name

#: The JSON Schema every report validates against.
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")

SCHEMA = "adam-conformance-report"
#: Version 2 added the headline, the preflight, the checks skipped on request and the
#: torch fingerprint; version 3 the claims the target refused (``dropped_claims``) and the
#: preflight's kept notes, explicit keywords, spec read and keywords probed.
#: `report.compare` reads versions 1 to 3.
VERSION = 3


def document(target, header: list[str], seed: int, results, duration: float, diagnosis: dict | None = None,
             preflight=None, skipped=(), fingerprint: dict | None = None) -> dict:
    """The report of a certification run, as the JSON document (schema: report.schema.json).
    `diagnosis` is `conformance.diagnose.document` of a target that failed; `preflight` what
    the preflight found; `skipped` the checks skipped on request; `fingerprint` the installed
    torch's (`report.fingerprint`)."""
    from datetime import datetime, timezone
    from importlib.metadata import version

    from conformance.report.environment import environment

    counts = {status: sum(r.status == status for r in results) for status in ("passed", "failed", "skipped", "error")}
    conformant = counts["failed"] == counts["error"] == 0 and counts["passed"] > 0
    checks = [_check_entry(r) for r in results]
    return dict(
        schema=SCHEMA,
        version=VERSION,
        suite=dict(name="adam-conformance", version=version("adam-conformance")),
        target=dict(name=target.impl.name, description=target.impl.description, spec=target.spec,
                    claims=sorted(target.claims), not_claimed=[f for f in FEATURES if f not in target.claims],
                    devices=list(target.impl.devices))
        | ({"state_precision": target.impl.state_precision} if target.impl.state_precision else {}),
        environment=environment(target),
        header=header,
        profile=target.profile.name,
        seed=seed,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        duration_s=round(duration, 3),
        checks=checks,
        summary=counts,
        verdict="conformant" if conformant else "not conformant",
        headline=_headline(checks),
        diagnosis=diagnosis,
        preflight=None if preflight is None else dict(preflight.to_json(), lines=preflight.lines()),
        skipped_on_request=list(skipped),
        fingerprint=fingerprint,
        dropped_claims=[dict(feature=n.feature, probe=n.what, refusal=n.raised)
                        for n in (preflight.dropped if preflight else ())],
    )


#: At one severity, the order failures are shown in: parity on drawn Cases (conformance
#: itself), then on the golden traces, then the invariants, then the contract, then what CUDA
#: and sharding add.
LEADS = ("parity.trajectory", "parity.", "invariant.", "contract.", "cuda.", "sharded.")


def _by_severity(checks: list[dict]) -> list[dict]:
    """The failed checks, the most severe first (then as `LEADS` says, then in id order)."""
    rank = list(SEVERITIES)
    lead = lambda check_id: next(k for k, prefix in enumerate(LEADS) if check_id.startswith(prefix))
    failed = [c for c in checks if c["failure"]]
    return sorted(failed, key=lambda c: (rank.index(c["failure"]["severity"]), lead(c["id"])))


def _headline(checks: list[dict]) -> dict | None:
    """The most severe finding: the report leads with it."""
    failed = _by_severity(checks)
    if not failed:
        return None
    c = failed[0]
    return dict(check=c["id"], severity=c["failure"]["severity"], message=c["failure"]["message"])


def _check_entry(result) -> dict:
    evidence = result.evidence or {}
    failure = None
    if result.failure:
        failure = dict(message=result.failure["message"], parity=result.failure["parity"],
                       cases=[c["description"] for c in result.failure["cases"]], reproducer=result.reproducer,
                       severity=result.failure["severity"], necessary=result.failure["necessary"])
    return dict(
        id=result.id,
        statement=result.statement,
        status=result.status,
        reason=result.reason,
        duration_s=round(result.duration, 3),
        examples=evidence.get("examples"),
        parity=evidence.get("parity") or (result.failure or {}).get("parity"),
        torch_deviation=evidence.get("torch_deviation"),
        failure=failure,
    )


def render(doc: dict) -> str:
    """The report a person reads: a table of checks, each failure in full, the verdict."""
    lines = [f"{'check':34s} {'status':8s} worst error vs budget, or reason", "-" * 100]
    for c in doc["checks"]:
        figures = _figures(c["parity"]) if c["status"] in ("passed", "failed") and c["parity"] else ""
        detail = figures or (c["reason"] if c["status"] != "passed" else "")
        lines.append(f"{c['id']:34s} {c['status'].upper() if c['status'] in ('failed', 'error') else c['status']:8s} "
                     f"{' '.join(detail.split())[:110]}")
    for c in _by_severity(doc["checks"]):
        f = c["failure"]
        lines += ["", f"FAILED {c['id']} ({SEVERITIES[f['severity']]}): {c['statement']}", f"  {f['message']}"]
        if f["necessary"] is not None:
            lines.append(f"  {_needs(f['necessary'])}")
        for k, description in enumerate(f["cases"]):
            label = "minimal case" if len(f["cases"]) == 1 else f"minimal case {k + 1} of {len(f['cases'])}"
            lines += [f"  {label}:"] + [f"    {line}" for line in description.splitlines()]
        lines.append(f"  reproducer: {f['reproducer']}")
    for c in doc["checks"]:
        if c["status"] == "error":
            lines += ["", f"ERROR {c['id']}: {c['reason']}"]
    deviations = [c for c in doc["checks"] if c["torch_deviation"]]
    if deviations:
        lines += ["", "torch itself breaks these properties (not held against the target):"]
        for c in deviations:
            lines.append(f"  {c['id']}: {' '.join(c['torch_deviation']['message'].split())[:150]}")
    common = _common_need(doc["checks"])
    if common:
        lines += ["", f"every failure above needs {common}"]
    diagnosis = doc.get("diagnosis")
    if diagnosis:
        lines += ["", f"diagnosis (adam-conformance diagnose): {diagnosis['verdict']}"]
        lines += [f"  {line}" for line in diagnosis["mismatches"]] or ["  no known variant explains the failures above"]
    headline = doc.get("headline")
    if headline:
        lines += ["", f"most severe: {headline['check']}, {SEVERITIES[headline['severity']]}: "
                      f"{' '.join(headline['message'].split())[:300]}"]
    return "\n".join(lines + ["", verdict_line(doc)])


def verdict_line(doc: dict) -> str:
    """The last line of a report."""
    s, t = doc["summary"], doc["target"]
    counts = ", ".join(f"{n} {k}" for k, n in s.items() if n)
    reference = torch_class_name(t["spec"])
    skipped = doc.get("skipped_on_request") or []
    refused = sorted({d["feature"] for d in doc.get("dropped_claims") or []})
    if doc["verdict"] != "conformant":
        return f"NOT CONFORMANT: {t['name']} is not {reference} ({counts})"
    without = f" (without {', '.join(refused)}: refused by the target)" if refused else ""
    if t.get("state_precision"):
        without = f" within its declared {PRECISIONS[t['state_precision']].label} state{without}"
    if skipped:
        return (f"CONFORMANT{without} except skipped: {', '.join(skipped)}: {t['name']} behaves like {reference} "
                f"on every other check it claims ({counts})")
    return f"CONFORMANT{without}: {t['name']} behaves like {reference} on every check it claims ({counts})"


def _needs(necessary: list[str]) -> str:
    if not necessary:
        return "needs: nothing in particular: no single feature of the minimal case is needed for it to fail"
    without = "without it, it passes" if len(necessary) == 1 else "without any one of them it passes"
    return "needs: " + "; ".join(necessary) + f" ({without})"


def _common_need(checks: list[dict]) -> str:
    """A feature every explained failure needs, where there are several failures."""
    needs = [set(c["failure"]["necessary"]) for c in checks if c["failure"] and c["failure"]["necessary"]]
    explained = [c for c in checks if c["failure"] and c["failure"]["necessary"] is not None]
    if len(needs) < 2 or len(needs) != len(explained):
        return ""
    shared = sorted(set.intersection(*needs))
    return "; ".join(shared)


def _figures(parity: dict) -> str:
    fmt = lambda x: "inf" if x is None else f"{x:.3g}"
    return (f"{fmt(parity['error'])} eps vs budget {fmt(parity['budget'])} eps "
            f"(torch {fmt(parity['torch_error'])} eps) at {parity['where']}")
