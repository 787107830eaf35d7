"""``adam-conformance compare A.json B.json``: what changed between two certification reports.

Made across torch releases (tox runs one environment per release), two reports differ
where torch's Adam drifted: a check that changed status, an error figure that moved by
more than a stated factor, a feature gained or lost, and the torch fingerprint: the
constructors' signatures and defaults, the class hierarchies, the error messages, the
features torch has, the devices fused runs on, and each torch path's distance from every
golden trace. A semantic change (a status, feature or fingerprint difference) makes the
exit code 1, except a status that changed where the check found the target nondeterministic
(the same example failed, then passed): that is said, as a figure is; moved figures alone
are reported with exit code 0. Two surveys compare by their optimizers' verdicts, cells and
package versions. Reports from different versions of this suite are said to be (its checks
may differ: see CHANGELOG.md), not counted semantic. Reports of schema versions 1 to 3 are read (version 1 has no
fingerprint). Input that is not such a report is exit code 2, with one line saying what is
wrong.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from conformance.report import survey as surveys
from conformance.report.certificate import SCHEMA, VERSION
from conformance.vocabulary import NONDETERMINISTIC

#: The report versions compare reads.
READS = (1, 2, VERSION)
#: An error figure or a distance that moved by more than this factor is reported.
FACTOR = 2.0


class ReportError(Exception):
    """A file is not a report compare can read. One line."""


@dataclasses.dataclass(frozen=True)
class Change:
    """One difference: where (``target``, ``check``, ``feature``, ``fingerprint``, ``figure``), what, and
    whether it is semantic (a figure that moved is not)."""

    kind: str
    what: str
    before: object
    after: object
    semantic: bool = True

    def line(self) -> str:
        return f"{self.what}: {_shown(self.before)} -> {_shown(self.after)}"


def _shown(value) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.3g}"
    return "(absent)" if value is None else str(value)


def load(path: str) -> dict:
    """A report, or ReportError saying why not."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ReportError(f"{path}: cannot read it ({e.strerror})") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ReportError(f"{path}: not JSON, or cut short ({e})") from None
    if isinstance(doc, dict) and doc.get("schema") == surveys.SCHEMA:
        if not isinstance(doc.get("rows"), list) or not all(isinstance(r, dict) and {"target", "verdict", "cells"}
                                                             <= set(r) for r in doc["rows"]):
            raise ReportError(f"{path}: malformed survey: its rows need a target, a verdict and cells")
        return doc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ReportError(f"{path}: not an adam-conformance report (no \"schema\": \"{SCHEMA}\")")
    if doc.get("version") not in READS:
        raise ReportError(f"{path}: report version {doc.get('version')!r}; compare reads versions "
                          f"{', '.join(map(str, READS))}")
    for key, kind in (("checks", list), ("target", dict), ("environment", dict)):
        if not isinstance(doc.get(key), kind):
            raise ReportError(f"{path}: malformed report: {key!r} is missing or not a {kind.__name__}")
    for check in doc["checks"]:
        if not isinstance(check, dict) or not {"id", "status"} <= set(check):
            raise ReportError(f"{path}: malformed report: a check without an id or a status")
    return doc


def compare(a: dict, b: dict, factor: float = FACTOR) -> list[Change]:
    """Every difference between reports `a` and `b` (see the module docstring), or between two
    surveys. ReportError if one is a survey and the other a report."""
    if (a["schema"] == surveys.SCHEMA) != (b["schema"] == surveys.SCHEMA):
        raise ReportError("one is a survey and the other a certify report: compare two of a kind")
    if a["schema"] == surveys.SCHEMA:
        return _suite(a, b) + _surveys(a, b)
    changes = _suite(a, b) + _target(a, b) + _checks(a, b, factor) + _features(a, b)
    fa, fb = a.get("fingerprint"), b.get("fingerprint")
    if fa is not None and fb is not None:
        changes += _fingerprint(fa, fb, factor)
    elif (fa is None) != (fb is None):
        changes.append(Change("fingerprint", "torch fingerprint", "recorded" if fa else None,
                              "recorded" if fb else None, semantic=False))
    return changes


def _suite(a: dict, b: dict) -> list[Change]:
    """The suite's versions, where both documents say them and they differ (not semantic)."""
    x, y = _suite_version(a), _suite_version(b)
    return [Change("suite", "adam-conformance", x, y, semantic=False)] if x and y and x != y else []


def _suite_version(doc: dict) -> str | None:
    """The version of the suite that wrote a report, or a survey's first report."""
    reports = [doc] if doc["schema"] != surveys.SCHEMA else [r["report"] for r in doc["rows"] if r.get("report")]
    return next(((r.get("suite") or {}).get("version") for r in reports), None)


def _surveys(a: dict, b: dict) -> list[Change]:
    """Between two surveys: the optimizers surveyed, and each one's package version (not
    semantic), verdict and cells; and the torch each ran under (not semantic)."""
    before, after = ({r["target"]: r for r in doc["rows"]} for doc in (a, b))
    changes = [Change("environment", "torch", a["environment"].get("torch"), b["environment"].get("torch"),
                      semantic=False)] if a["environment"].get("torch") != b["environment"].get("torch") else []
    for name in sorted(set(before) | set(after)):
        x, y = before.get(name), after.get(name)
        if x is None or y is None:
            changes.append(Change("target", name, x and "surveyed", y and "surveyed"))
            continue
        if x.get("version") != y.get("version"):
            changes.append(Change("package", f"{name}: {y.get('package')}", x.get("version"), y.get("version"),
                                  semantic=False))
        if x["verdict"] != y["verdict"]:
            changes.append(Change("verdict", name, x["verdict"], y["verdict"]))
        changes += [Change("cell", f"{name} {group}", x["cells"].get(group), y["cells"].get(group))
                    for group in surveys.GROUPS if x["cells"].get(group) != y["cells"].get(group)]
    return changes


def _target(a: dict, b: dict) -> list[Change]:
    """The target and its spec, where the two reports certify different ones."""
    return [Change("target", key, a["target"].get(key), b["target"].get(key))
            for key in ("name", "spec") if a["target"].get(key) != b["target"].get(key)]


def _checks(a: dict, b: dict, factor: float) -> list[Change]:
    before, after = ({c["id"]: c for c in doc["checks"]} for doc in (a, b))
    changes = []
    for check_id in sorted(set(before) | set(after)):
        x, y = before.get(check_id), after.get(check_id)
        status = lambda c: None if c is None else c["status"]
        if status(x) != status(y):
            flaky = any(c and str(c.get("reason", "")).startswith(NONDETERMINISTIC) for c in (x, y))
            changes.append(Change("check", check_id + " (nondeterministic: the check found it so)" * flaky,
                                  status(x), status(y), semantic=not flaky))
        elif x and y:
            for key in ("error", "torch_error"):
                moved = _moved(_figure(x, key), _figure(y, key), factor)
                if moved:
                    changes.append(Change("figure", f"{check_id} {key.replace('_', ' ')} (eps)", *moved,
                                          semantic=False))
    return changes


def _figure(check: dict, key: str) -> float | None:
    parity = check.get("parity")
    if not isinstance(parity, dict) or key not in parity:
        return None
    return math.inf if parity[key] is None else float(parity[key])


def _moved(x: float | None, y: float | None, factor: float) -> tuple[float, float] | None:
    """(x, y) where one moved from the other by more than `factor` (figures below 1 eps count as 1)."""
    if x is None or y is None or x == y:
        return None
    if math.isinf(x) or math.isinf(y):
        return x, y
    return (x, y) if max(x, 1.0) > factor * max(y, 1.0) or max(y, 1.0) > factor * max(x, 1.0) else None


def _features(a: dict, b: dict) -> list[Change]:
    claims = [set(doc["target"].get("claims", ())) for doc in (a, b)]
    return ([Change("feature", f"claims {f}", "claimed", "not claimed") for f in sorted(claims[0] - claims[1])]
            + [Change("feature", f"claims {f}", "not claimed", "claimed") for f in sorted(claims[1] - claims[0])])


def _fingerprint(a: dict, b: dict, factor: float) -> list[Change]:
    changes = []
    for name in sorted(set(a.get("features", {})) | set(b.get("features", {}))):
        x, y = a.get("features", {}).get(name), b.get("features", {}).get(name)
        if x != y:
            changes.append(Change("fingerprint", f"torch feature {name}", x, y))
    if a.get("fused_devices") != b.get("fused_devices"):
        changes.append(Change("fingerprint", "fused devices", a.get("fused_devices"), b.get("fused_devices")))
    for cls in sorted(set(a.get("classes", {})) | set(b.get("classes", {}))):
        x, y = a.get("classes", {}).get(cls, {}), b.get("classes", {}).get(cls, {})
        if x.get("hierarchy") != y.get("hierarchy"):
            changes.append(Change("fingerprint", f"{cls} hierarchy", " < ".join(x.get("hierarchy", ())),
                                  " < ".join(y.get("hierarchy", ()))))
        sx, sy = x.get("signature", {}), y.get("signature", {})
        for key in sorted(set(sx) | set(sy)):
            if key not in sx or key not in sy:
                changes.append(Change("fingerprint", f"{cls} parameter {key}", "present" if key in sx else None,
                                      "present" if key in sy else None))
            elif sx[key] != sy[key]:
                changes.append(Change("fingerprint", f"{cls} default of {key}", sx[key], sy[key]))
        ex, ey = x.get("errors", {}), y.get("errors", {})
        for key in sorted(set(ex) | set(ey)):
            if ex.get(key) != ey.get(key):
                changes.append(Change("fingerprint", f"{cls} given {key}", ex.get(key), ey.get(key)))
    for path in sorted(set(a.get("paths", {})) | set(b.get("paths", {}))):
        x, y = a.get("paths", {}).get(path, {}), b.get("paths", {}).get(path, {})
        for scenario in sorted(set(x) | set(y)):
            dx, dy = x.get(scenario), y.get(scenario)
            if isinstance(dx, float) and isinstance(dy, float):
                moved = _moved(dx, dy, factor)
                if moved:
                    changes.append(Change("fingerprint", f"torch {path} on golden {scenario} (eps)", *moved))
            elif dx != dy:
                changes.append(Change("fingerprint", f"torch {path} on golden {scenario}", dx, dy))
    return changes


def render(a_name: str, a: dict, b_name: str, b: dict, changes: list[Change], factor: float = FACTOR) -> str:
    """The differences, grouped, readable at a glance; or what was compared, if nothing differs."""
    survey = a["schema"] == surveys.SCHEMA
    env = lambda doc: f"torch {doc['environment'].get('torch', '?')}, " + (
        f"{len(doc['rows'])} optimizers" if survey else doc["target"].get("name", "?"))
    lines = [f"compare {a_name} ({env(a)}) -> {b_name} ({env(b)})"]
    titles = {"suite": "the suite's version (its checks may differ: see CHANGELOG.md)",
              "environment": "the environment", "target": "the optimizers surveyed" if survey else "the target",
              "package": "package versions", "verdict": "verdicts", "cell": "cells (optimizer, check group)",
              "check": "checks that changed status", "feature": "features gained or lost",
              "fingerprint": "torch fingerprint", "figure": f"error figures that moved by more than {factor:g}x"}
    for kind, title in titles.items():
        found = [c for c in changes if c.kind == kind]
        if found:
            lines += ["", f"{title}:"] + [f"  {c.line()}" for c in found]
    semantic = [c for c in changes if c.semantic]
    if not changes and survey:
        lines += ["", f"no difference found: compared {len(a['rows'])} optimizers' verdicts, package versions and "
                      "cells"]
    elif not changes:
        prints = [doc.get("fingerprint") for doc in (a, b)]
        scope = (f"{len(a['checks'])} checks, the claims, and the torch fingerprint (signatures, defaults, hierarchy, "
                 f"error messages, features, fused devices, {sum(len(p) for p in prints[0]['paths'].values())} path "
                 "distances from the golden traces)") if all(prints) else f"{len(a['checks'])} checks and the claims"
        lines += ["", f"no difference found: compared {scope}"]
    else:
        lines += ["", f"{len(semantic)} semantic change(s), {len(changes) - len(semantic)} figure(s) moved"]
    return "\n".join(lines)


def document(changes: list[Change]) -> dict:
    """The differences as JSON."""
    return dict(semantic=any(c.semantic for c in changes), changes=[dataclasses.asdict(c) for c in changes])
