"""A survey: many targets' certification reports as one compliance table.

`document` gathers the reports into ``survey.json``; `markdown` and `html` render it: a row
per optimizer, a column per check group, each cell ``passed``, ``failed``, ``skipped`` or
``not claimed``, then the findings, each failure's headline, what it needs and its
reproducer. A target that could not be certified is a row that says why.
"""

from __future__ import annotations

import html as html_escape
import json
import os
import platform
from pathlib import Path

from conformance.truth.precision import PRECISIONS

SCHEMA = "adam-conformance-survey"
VERSION = 1
#: The check groups, in the table's order (a check id is ``group.name``).
GROUPS = ("parity", "invariant", "contract", "cuda", "sharded")
#: A cell's statuses, worst first: the group's cell is the worst of its checks'.
CELLS = ("failed", "passed", "skipped", "not claimed")


def row(name: str, package: str, version: str | None, report: dict | None, reason: str | None,
        warning: str | None, times, root: Path, verdict: str = "unusable") -> dict:
    """One target's row: its cells by group, its findings (reproducers relative to `root`), and
    where it came from. The report is kept whole but for the torch fingerprint (the survey's).
    Without a report, the row's `verdict` (``unusable``: certify could not run it; ``skipped``:
    not run here, its package absent or its device not this one) and why. `times`: its
    seconds in all and in set-up (`front.certify.Times`: a package's import and JIT builds)."""
    found = dict(target=name, package=package, version=version, warning=warning, seconds=round(times.total, 1),
                 setup_seconds=round(times.setup, 1))
    if report is None:
        return found | dict(verdict=verdict, reason=reason, cells={}, findings=[], report=None)
    checks = report["checks"]
    findings = [dict(check=c["id"], headline=c["reason"], needs=(c.get("failure") or {}).get("necessary") or [],
                     reproducer=_link((c.get("failure") or {}).get("reproducer"), root),
                     severity=(c.get("failure") or {}).get("severity"))
                for c in checks if c["status"] in ("failed", "error")]
    return found | dict(verdict=report["verdict"], spec=report["target"]["spec"],
                        description=report["target"].get("description", ""), cells=cells(checks),
                        summary=report["summary"], findings=findings, dropped=report.get("dropped_claims", []),
                        diagnosis=(report.get("diagnosis") or {}).get("verdict"), report=_kept(report, root))


def _kept(report: dict, root: Path) -> dict:
    """The report as the survey keeps it: without the torch fingerprint (the survey's), its
    reproducers' paths relative to `root`."""
    checks = [dict(c, failure=dict(c["failure"], reproducer=_link(c["failure"].get("reproducer"), root)))
              if c.get("failure") else c for c in report["checks"]]
    return {k: v for k, v in report.items() if k != "fingerprint"} | {"checks": checks}


def cells(checks: list[dict]) -> dict[str, str]:
    """Each group's cell: failed if a check failed, else passed if one passed, else not claimed
    if every check was skipped for a claim the target does not make, else skipped."""
    out = {}
    for group in GROUPS:
        mine = [c for c in checks if c["id"].split(".")[0] == group]
        if not mine:
            continue
        statuses = {"failed" if c["status"] == "error" else c["status"] for c in mine}
        if statuses & {"failed", "passed"}:
            out[group] = "failed" if "failed" in statuses else "passed"
        else:
            unclaimed = all(str(c.get("reason", "")).startswith("not claimed") for c in mine)
            out[group] = "not claimed" if unclaimed else "skipped"
    return out


def document(rows: list[dict], environment: dict, started: str, seconds: float, profile: str) -> dict:
    """survey.json: the rows, the environment and the machine."""
    machine = dict(platform=platform.platform(), processor=platform.machine(), cpus=os.cpu_count())
    conformant = sum(r["verdict"] == "conformant" for r in rows)
    return dict(schema=SCHEMA, version=VERSION, date=started, seconds=round(seconds), profile=profile,
                machine=machine, environment=environment, groups=list(GROUPS),
                counts=dict(targets=len(rows), conformant=conformant,
                            not_conformant=sum(r["verdict"] == "not conformant" for r in rows),
                            unusable=sum(r["verdict"] == "unusable" for r in rows),
                            skipped=sum(r["verdict"] == "skipped" for r in rows)),
                rows=rows)


def _link(path: str | None, root: Path) -> str:
    return os.path.relpath(path, root) if path else ""


def _verdict(r: dict) -> str:
    """The verdict as the table says it, with the declared state precision it was judged within."""
    if r["report"] is None:
        return f"{r['verdict']}: {r['reason']}"
    declared = r["report"]["target"].get("state_precision")
    return r["verdict"].upper() + (f" (declared {PRECISIONS[declared].label} state)" if declared else "")


def _seconds(r: dict) -> str:
    """'71 (set-up 42)': a row's seconds in all, and in set-up where that was a large part (a JIT build)."""
    total, setup = r.get("seconds", 0), r.get("setup_seconds", 0)
    return f"{total:.0f}" + (f" (set-up {setup:.0f})" if setup >= 10 else "")


def counts_line(counts: dict) -> str:
    return (f"{counts['conformant']} conformant, {counts['not_conformant']} not conformant, {counts['unusable']} "
            f"could not be certified, {counts['skipped']} not run here")


def markdown(doc: dict) -> str:
    """survey.md: the table, then the findings, each with its reproducer's path (beside the
    survey: ``repro/TARGET/CHECK.py``)."""
    env, counts = doc["environment"], doc["counts"]
    lines = [f"# Survey of {counts['targets']} Adam/AdamW implementations", "",
             f"{doc['date']}, profile {doc['profile']}, {doc['seconds']} s; torch {env.get('torch')}, "
             f"python {env.get('python')}; {doc['machine']['platform']}, {doc['machine']['cpus']} CPUs.", "",
             f"**{counts_line(counts)}.**", "",
             "| optimizer | package | spec | verdict | " + " | ".join(doc["groups"]) + " | seconds |",
             "|---|---|---|---|" + "---|" * len(doc["groups"]) + "---|"]
    for r in doc["rows"]:
        version = f"{r['package']} {r['version'] or '(not installed)'}"
        lines.append(f"| `{r['target']}` | {version} | {r.get('spec', '')} | {_verdict(r)} | "
                     + " | ".join(r["cells"].get(g, "") for g in doc["groups"]) + f" | {_seconds(r)} |")
    lines += ["", "## Findings", ""]
    for r in doc["rows"]:
        if not r["findings"] and not r.get("warning"):
            continue
        lines.append(f"### `{r['target']}` ({r['package']} {r['version']})")
        lines += [f"- warning: {r['warning']}"] if r.get("warning") else []
        lines += [f"- diagnosis: {r['diagnosis']}"] if r.get("diagnosis") else []
        for f in r["findings"]:
            needs = f"; needs: {', '.join(f['needs'])}" if f["needs"] else ""
            repro = f"; reproducer `{f['reproducer']}`" if f["reproducer"] else ""
            lines.append(f"- **{f['check']}**: {f['headline']}{needs}{repro}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_STYLE = """body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}
td.passed{background:#c8ecc8}td.failed{background:#f6c1c1}td.skipped{background:#eee;color:#777}
td.not-claimed{background:#fff;color:#999}td.unusable{background:#f3dca6}td.skipped-row{color:#777}
.conformant{color:#176317;font-weight:600}.not-conformant{color:#a11;font-weight:600}
label{margin-right:1em}li{margin:.2em 0}code{font-size:13px}"""

_SCRIPT = """const q=new URLSearchParams(location.search);
function filt(){const p=document.getElementById('pkg').value,g=document.getElementById('grp').value;
document.querySelectorAll('tr[data-package]').forEach(r=>{r.hidden=p&&r.dataset.package!==p});
document.querySelectorAll('[data-group]').forEach(c=>{c.hidden=g&&c.dataset.group!==g});
document.querySelectorAll('li[data-package]').forEach(l=>{l.hidden=(p&&l.dataset.package!==p)||
(g&&l.dataset.check.split('.')[0]!==g)});
history.replaceState(null,'',location.pathname+'?'+new URLSearchParams({package:p,group:g}));}
document.getElementById('pkg').value=q.get('package')||'';document.getElementById('grp').value=q.get('group')||'';
filt();"""


def html(doc: dict) -> str:
    """survey.html: the same, one self-contained page (no network), colour-coded, with filters
    by package and by check group (kept in the address: ``survey.html?package=P&group=G``)."""
    e = lambda s: html_escape.escape(str(s), quote=True)
    counts, groups = doc["counts"], doc["groups"]
    packages = sorted({r["package"] for r in doc["rows"]})
    options = lambda values: "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in values)
    head = "".join(f'<th data-group="{g}">{g}</th>' for g in groups)
    body = []
    for r in doc["rows"]:
        verdict_class = r["verdict"].replace(" ", "-").replace("skipped", "skipped-row")
        empty = "skipped" if r["verdict"] == "skipped" else "unusable"
        tds = "".join(f'<td data-group="{g}" class="{r["cells"].get(g, empty).replace(" ", "-")}">'
                      f'{e(r["cells"].get(g, "-"))}</td>' for g in groups)
        body.append(f'<tr data-package="{e(r["package"])}"><td><code>{e(r["target"])}</code></td>'
                    f'<td>{e(r["package"])} {e(r["version"] or "(not installed)")}</td><td>{e(r.get("spec", ""))}</td>'
                    f'<td class="{verdict_class}">{e(_verdict(r))}</td>{tds}<td>{e(_seconds(r))}</td></tr>')
    findings = []
    for r in doc["rows"]:
        for f in r["findings"]:
            needs = f"; needs: {e(', '.join(f['needs']))}" if f["needs"] else ""
            repro = f' (<a href="{e(f["reproducer"])}">reproducer</a>)' if f["reproducer"] else ""
            findings.append(f'<li data-package="{e(r["package"])}" data-check="{e(f["check"])}"><code>'
                            f'{e(r["target"])}</code> <b>{e(f["check"])}</b>: {e(f["headline"])}{needs}{repro}</li>')
    env = doc["environment"]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>adam-conformance survey</title>
<style>{_STYLE}</style></head><body>
<h1>Survey of {counts['targets']} Adam/AdamW implementations</h1>
<p>{e(doc['date'])}, profile {e(doc['profile'])}; torch {e(env.get('torch'))}, python {e(env.get('python'))};
{e(doc['machine']['platform'])}, {e(doc['machine']['cpus'])} CPUs.</p>
<p><b>{counts_line(counts)}.</b></p>
<p><label>package <select id="pkg" onchange="filt()"><option value="">all</option>{options(packages)}</select></label>
<label>check group <select id="grp" onchange="filt()"><option value="">all</option>{options(groups)}</select>
</label></p>
<table><thead><tr><th>optimizer</th><th>package</th><th>spec</th><th>verdict</th>{head}<th>seconds</th></tr></thead>
<tbody>{''.join(body)}</tbody></table>
<h2>Findings</h2><ul>{''.join(findings)}</ul>
<script>{_SCRIPT}</script></body></html>
"""


def load(path: str | Path) -> dict:
    """A survey.json, checked to be one (ValueError with one line if not)."""
    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not an adam-conformance survey (no \"schema\": \"{SCHEMA}\")")
    return doc
