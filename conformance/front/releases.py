"""The drift table: torch's Adam and AdamW release by release, read from the reports tox
writes (one folder per release, ``<release>/<target>.json``, as `adam-conformance certify
T1 T2 ... --json DIR` leaves them) and from `report.compare` over consecutive releases.

For each release: the constructors' keywords and defaults, whether AdamW is an Adam, the
error messages, the features `run.torch_features` detects, each torch path's largest
distance from the golden traces (in eps at the values' scale), and the verdict on each of
torch's own paths with its failures' headlines. Then the questions an upgrade asks, answered
from those figures.

    python -m conformance.front.releases docs/releases          # write docs/releases/README.md
    python -m conformance.front.releases docs/releases --check  # exit 1 if it is stale
    python -m conformance.front.releases docs/releases --against reports/  # exit 1 on unexplained drift
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.report import compare
from conformance.vocabulary import TORCH_PATHS

#: torch's own paths, as registered, by what the table calls them.
PATHS = {"torch": "Adam for-loop", "torch-adamw": "AdamW for-loop", "torch-foreach": "Adam foreach",
         "torch-foreach-adamw": "AdamW foreach", "torch-fused": "Adam fused", "torch-fused-adamw": "AdamW fused"}
#: The fingerprint's name of each path measured against the golden traces.
GOLDEN_PATHS = tuple(TORCH_PATHS)
#: Where the short table goes in its page (docs/torch-releases.md).
MARKERS = ("<!-- drift table: python -m conformance.front.releases -->", "<!-- end of drift table -->")
#: A failure that names this needs a gradient strided unlike its parameter.
STRIDED = "a gradient whose strides differ from its parameter's"


class Stale(Exception):
    """A release's reports are missing or do not make the committed table. One line."""


def version_key(release: str) -> tuple[int, ...]:
    """2.13.0 -> (2, 13, 0); ValueError for a name that is not a release."""
    return tuple(int(part) for part in release.split("+")[0].split("."))


def load(root: Path) -> dict[str, dict[str, dict]]:
    """release -> target -> report, oldest release first. Stale (one line) if `root` is not a
    folder of release folders, a torch path's report is missing, or a report has no fingerprint."""
    if not root.is_dir():
        raise Stale(f"{root}: no such directory")
    folders = [p for p in root.iterdir() if p.is_dir()]
    for folder in folders:
        if not all(part.isdigit() for part in folder.name.split(".")):
            raise Stale(f"{folder}: not a release folder (named for a torch release, as 2.13.0)")
    releases = {}
    for folder in sorted(folders, key=lambda p: version_key(p.name)):
        reports = {p.stem: compare.load(str(p)) for p in sorted(folder.glob("*.json"))}
        missing = sorted(set(PATHS) - set(reports))
        if missing:
            raise Stale(f"{folder}: no report of {', '.join(missing)}")
        unprinted = sorted(name for name, doc in reports.items() if not doc.get("fingerprint"))
        if unprinted:
            raise Stale(f"{folder}: {', '.join(unprinted)}: a report without a torch fingerprint (an older "
                        "schema); certify again to write one")
        releases[folder.name] = reports
    if not releases:
        raise Stale(f"{root}: no release folders")
    return releases


def _print(reports: dict) -> dict:
    return reports["torch"]["fingerprint"]


def _keywords(fp: dict, cls: str) -> list[str]:
    return [k for k in fp["classes"][cls]["signature"] if k != "params"]


def _is_adam(fp: dict) -> bool:
    return "torch.optim.adam.Adam" in fp["classes"]["adamw"]["hierarchy"]


def _golden(fp: dict, path: str) -> str:
    """A path's largest distance from the golden traces, and what it could not run or raised."""
    values = fp["paths"][path].values()
    floats = [v for v in values if isinstance(v, float)]
    others = [v for v in values if not isinstance(v, float)]
    said = f"{max(floats):.3g}" if floats else "-"
    not_run = sum(v.startswith("not run") for v in others)
    raised = len(others) - not_run
    notes = ([f"{not_run} not run"] if not_run else []) + ([f"{raised} raised or non-finite"] if raised else [])
    return said + (f" ({', '.join(notes)})" if notes else "")


def _verdict(report: dict) -> str:
    failed = [c for c in report["checks"] if c["status"] in ("failed", "error")]
    if not failed:
        return "conformant"
    needs_strided = sum(STRIDED in necessary(c) for c in failed)
    return f"{len(failed)} failed" + (f" ({needs_strided} need a strided gradient)" if needs_strided else "")


def _added(before: list[str], after: list[str]) -> str:
    gained = [k for k in after if k not in before]
    lost = [k for k in before if k not in after]
    return ", ".join([f"+{k}" for k in gained] + [f"-{k}" for k in lost]) or "="


def table(releases: dict[str, dict[str, dict]]) -> str:
    """The short table: one row a release."""
    rows = [f"| torch | Adam's keywords | AdamW is an Adam | features off | golden distances moved (> "
            f"{compare.FACTOR:g}x) | torch's paths not conformant |", "|---|---|---|---|---|---|"]
    names = list(releases)
    for k, (release, reports) in enumerate(releases.items()):
        fp = _print(reports)
        keywords, before = _keywords(fp, "adam"), releases[names[k - 1]] if k else None
        off = sorted(key for key, on in fp["features"].items() if not on)
        said = _added(_keywords(_print(before), "adam"), keywords) if before else f"all {len(keywords)}"
        moved = str(len(_golden_moved(before["torch"], reports["torch"]))) if before else "-"
        failing = [name for name in PATHS if _verdict(reports[name]) != "conformant"]
        rows.append(f"| {release} | {said} | {'yes' if _is_adam(fp) else 'no'} | {', '.join(off) or '-'} | {moved} | "
                    f"{', '.join(failing) or '-'} |")
    return "\n".join(rows)


def _golden_moved(a: dict, b: dict) -> list[compare.Change]:
    """compare's changes in a torch path's distance from a golden trace, between two reports: a
    distance that moved, or one that became or stopped being a number (not a reworded error,
    nor a scenario one release could not run)."""
    not_run = lambda v: isinstance(v, str) and v.startswith("not run")
    return [c for c in compare.compare(a, b) if c.kind == "fingerprint" and "on golden" in c.what
            and (isinstance(c.before, float) or isinstance(c.after, float))
            and not (not_run(c.before) or not_run(c.after))]


def answers(releases: dict[str, dict[str, dict]]) -> list[str]:
    """The questions an upgrade asks, answered from the reports."""
    names = list(releases)
    first = lambda test: next((r for r in names if test(releases[r])), None)
    since = lambda found: f"since {found}" if found and found != names[0] else (
        f"in every release measured ({names[0]} on)" if found else
        f"in no release measured ({names[0]} to {names[-1]})")
    dwd = first(lambda reps: "decoupled_weight_decay" in _keywords(_print(reps), "adam"))
    subclass = first(lambda reps: _is_adam(_print(reps)))
    strided = [r for r in names if any(STRIDED in necessary(c) for c in releases[r]["torch-fused"]["checks"])]
    numbers = [f"{a} -> {b}" for a, b in zip(names, names[1:])
               if _golden_moved(releases[a]["torch"], releases[b]["torch"])]
    unrun = sorted({f"{scenario} on {r}" for r in names for path in _print(releases[r])["paths"].values()
                    for scenario, v in path.items() if isinstance(v, str) and v.startswith("not run")})
    unrun_said = f" Not counted, as a release could not run it: {', '.join(unrun)}." if unrun else ""
    return [
        f"**When did `decoupled_weight_decay` arrive?** Adam takes it {since(dwd)}.",
        f"**When did AdamW become a subclass of Adam?** {since(subclass).capitalize()}.",
        "**Does the fused CPU path mishandle a gradient strided unlike its parameter?** "
        + (f"Yes, in {', '.join(strided)}: a finding about torch itself (`torch-fused` fails parity only on such "
           f"gradients; the reproducer is `docs/releases/fused_strided_grad.py`). "
           + ("It is fixed nowhere measured." if strided[-1] == names[-1] else f"Fixed after {strided[-1]}.")
           + " Its other failures come and go between releases and between runs (several are reported as "
             "nondeterministic: what it reads past a gradient's memory can change from run to run), so a status "
             "change of `torch-fused` alone is not drift."
           if strided else "In no release measured."),
        "**Did any release change Adam's numbers?** "
        + (f"Yes, a golden distance moved by more than {compare.FACTOR:g}x or changed kind between "
           f"{', '.join(numbers)}." if numbers else
           f"No: every golden distance of every path stayed within a factor {compare.FACTOR:g} from {names[0]} "
           f"to {names[-1]}.") + unrun_said,
    ]


def necessary(check: dict) -> list[str]:
    """What a failed check's minimal case needs to fail (the explanation's "needs:")."""
    return (check.get("failure") or {}).get("necessary") or []


def page(releases: dict[str, dict[str, dict]]) -> str:
    """The full page: the answers, the table, then each release and what changed from the one before."""
    lines = ["# torch's Adam, release by release", "",
             "Generated by `python -m conformance.front.releases docs/releases` from the reports in this folder "
             "(`tox -e torchXY` writes them; see [Across torch releases](../torch-releases.md)). "
             "Do not edit by hand.", ""]
    lines += [f"- {a}" for a in answers(releases)] + ["", table(releases), ""]
    previous = None
    for release, reports in releases.items():
        fp = _print(reports)
        lines += [f"## torch {release}", "", f"Measured with torch {fp['torch']}; fused devices: "
                  f"{', '.join(fp['fused_devices'])}.", ""]
        lines += [f"- {cls}: `{cls.capitalize() if cls == 'adam' else 'AdamW'}("
                  + ", ".join(k if v is None else f"{k}={v}" for k, v in fp["classes"][cls]["signature"].items())
                  + ")`, " + " < ".join(fp["classes"][cls]["hierarchy"]) for cls in ("adam", "adamw")]
        features = sorted(fp["features"].items())
        lines.append("- features: " + ", ".join(f"{k} {'yes' if on else 'no'}" for k, on in features))
        lines.append("- golden traces, largest distance in eps (the closed-loop MLP's is chaos, not error): "
                     + "; ".join(f"{p} {_golden(fp, p)}" for p in GOLDEN_PATHS))
        others = {name: _verdict(doc) for name, doc in reports.items() if name not in PATHS}
        lines.append(f"- the suite's built-ins ({len(others)}): " + (
            "all conformant" if set(others.values()) == {"conformant"} else
            ", ".join(f"{name} {verdict}" for name, verdict in others.items())))
        lines += ["", "| torch's path | verdict | first failure |", "|---|---|---|"]
        for name, label in PATHS.items():
            headline = reports[name].get("headline") or {}
            lines.append(f"| `{name}` ({label}) | {_verdict(reports[name])} | "
                         f"{_cell(headline.get('check', ''), headline.get('message', ''))} |")
        if previous is not None:
            changes = [c for name in PATHS for c in _named(name, compare.compare(releases[previous][name],
                                                                                   reports[name]))]
            lines += ["", f"What changed from {previous}:" if changes else f"Nothing changed from {previous}.", ""]
            lines += [f"- {line}" for line in dict.fromkeys(changes)]
        lines.append("")
        previous = release
    return "\n".join(lines)


def _named(name: str, changes: list[compare.Change]) -> list[str]:
    """compare's lines; the fingerprint's are the same in every path's report, so they carry no name."""
    return [c.line() if c.kind == "fingerprint" else f"`{name}`: {c.line()}" for c in changes if c.kind != "figure"]


def _cell(check: str, message: str) -> str:
    text = f"`{check}`: {message}" if check else "-"
    text = text.replace("|", "&#124;")
    return text if len(text) <= 160 else text[:159] + "…"


def readme_with(readme: str, releases: dict[str, dict[str, dict]]) -> str:
    """The page with its short table and answers regenerated between the markers."""
    start, end = readme.index(MARKERS[0]) + len(MARKERS[0]), readme.index(MARKERS[1])
    body = "\n".join(f"- {a}" for a in answers(releases)) + "\n\n" + table(releases)
    return readme[:start] + "\n" + body + "\n" + readme[end:]


def unexplained(releases: dict[str, dict[str, dict]], fresh: Path) -> list[str]:
    """Each semantic change between a fresh report under `fresh` (any depth: tox's reports/<env>/,
    or a matrix's downloaded artifacts) and the committed report of its release and target,
    which the table explains; and each fresh report whose release or target is not committed."""
    problems = []
    for path in sorted(fresh.rglob("*.json")):
        doc = compare.load(str(path))
        release = doc["environment"].get("torch", "?").split("+")[0]
        committed = releases.get(release, {}).get(path.stem)
        if committed is None:
            problems.append(f"{path}: no committed report of {path.stem} on torch {release} to compare with")
            continue
        changes = [c for c in compare.compare(committed, doc) if c.semantic]
        if changes:
            problems.append(f"{path}: {len(changes)} semantic change(s) from the committed torch {release} "
                            f"report: " + "; ".join(c.line() for c in changes[:5]))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.front.releases", description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="the folder of release folders (docs/releases)")
    parser.add_argument("--readme", type=Path, default=Path("docs/torch-releases.md"),
                        help="the page with the short table (default: docs/torch-releases.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if either is stale")
    parser.add_argument("--against", type=Path, metavar="DIR",
                        help="change nothing; exit 1 on a semantic change between the reports under DIR and the "
                             "committed ones of the same release (what the matrix workflow runs)")
    args = parser.parse_args(argv)
    try:
        releases = load(args.root)
        if args.against and not args.against.is_dir():
            raise Stale(f"--against {args.against}: no such directory")
        problems = unexplained(releases, args.against) if args.against else None
    except (Stale, compare.ReportError) as e:
        print(f"releases: {e}", file=sys.stderr)
        return 1
    if problems is not None:
        for problem in problems:
            print(f"releases: {problem}", file=sys.stderr)
        print(f"releases: {len(problems)} unexplained difference(s) under {args.against}" if problems else
              f"releases: every report under {args.against} agrees with the committed one of its release")
        return 1 if problems else 0
    wanted = {args.root / "README.md": page(releases) + "\n", args.readme: readme_with(args.readme.read_text(),
                                                                                         releases)}
    stale = [str(p) for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"releases: {path} is stale: python -m conformance.front.releases {args.root} rewrites it",
                  file=sys.stderr)
        return 1 if stale else 0
    for path, text in wanted.items():
        path.write_text(text)
    print(f"releases: {len(releases)} releases ({', '.join(releases)}); wrote {', '.join(map(str, wanted))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
