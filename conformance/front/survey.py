"""``adam-conformance survey [TARGET...] [--out DIR]``: certify many optimizers into one
compliance table (`conformance.report.survey`).

With no targets it surveys every registered adapter of another package (``impls/thirdparty``).
Each target is certified in a process of its own (forked: a package that crashes, hangs in
its kernels or writes to the terminal costs only its own row), ``--jobs`` at a time; its
output goes to ``DIR/logs/``, its report to ``DIR/reports/``, its reproducers to
``DIR/repro/``. A target whose package is not installed, or that cannot run on the device,
is a row that says so. Progress goes to stderr. Exit 0 once the survey is written.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from pathlib import Path

from conformance import registry
from conformance.front.certify import Options, Times, distinct, in_jobs, slug
from conformance.front.options import writable_dir
from conformance.report import survey as table


def adapters() -> list[str]:
    """Every registered entry that adapts another package."""
    found = []
    for name, entry in registry.registered().items():
        if entry.value.startswith("impls.thirdparty."):
            found.append(name)
    return found


def run(targets: list[str], out: Path, profile: str, device: str, jobs: int, workers: str) -> int:
    names = targets or adapters()
    distinct(names)
    out.mkdir(parents=True, exist_ok=True)
    writable_dir(out, "--out")
    for folder in ("reports", "logs", "repro"):
        (out / folder).mkdir(exist_ok=True)
    started, clock = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), time.monotonic()
    impls, rows, ones = {}, {}, []
    for name in names:
        try:
            impls[name] = impl = registry.resolve(name)
        except registry.TargetError as e:
            declared = _declared(name)
            if declared is None or not declared.package:
                raise  # a name typed wrong, a module that does not import: an error, not a row
            impl, why = declared, str(e).partition(": ")[2]
        else:
            why = None
        if device not in impl.devices:
            why = f"runs on {', '.join(impl.devices)} only" + (f"; {why}" if why else "")
        if why:
            rows[name] = table.row(name, _package(name, impl), impl.package_version(), None, why, None, Times(0, 0),
                                   out, verdict="skipped")
            continue
        ones.append(Options(target=name, profile=profile, device=device, workers=workers,
                            json=str(out / "reports" / f"{slug(name)}.json"),
                            repro_dir=str(out / "repro" / slug(name))))
    print(f"surveying {len(ones)} of {len(names)} targets, {jobs} at a time; logs in {out / 'logs'}", file=sys.stderr,
          flush=True)
    times: dict[str, Times] = {}
    last_words: dict[str, str] = {}

    def ended(k: int, n: int, name: str, completed, took: Times) -> None:
        (out / "logs" / f"{slug(name)}.txt").write_text(completed.stdout + completed.stderr)
        times[name] = took
        lines = completed.stderr.strip().splitlines()
        last_words[name] = lines[-1].removeprefix("adam-conformance: error: ") if lines else \
            f"its process ended with exit code {completed.returncode}"
        said = {0: "CONFORMANT", 1: "NOT CONFORMANT"}.get(completed.returncode, "unusable")
        elapsed = time.monotonic() - clock
        print(f"[{k}/{n}] {name}: {said} in {took.total:.0f} s (set-up {took.setup:.0f} s); {_clock(elapsed)} "
              f"elapsed, about {_clock(elapsed / k * (n - k))} left",
              file=sys.stderr, flush=True)

    codes = in_jobs(ones, jobs, ended) if ones else {}
    for one in ones:
        impl, report_path = impls[one.target], Path(one.json)
        report = json.loads(report_path.read_text()) if codes[one.target] < 2 and report_path.exists() else None
        rows[one.target] = table.row(one.target, _package(one.target, impl), impl.package_version(), report,
                                     None if report else last_words[one.target], impl.package_warning(),
                                     times[one.target], out)
    ordered = [rows[name] for name in names]
    environment = next((r["report"]["environment"] for r in ordered if r["report"]), {})
    doc = table.document(ordered, environment, started, time.monotonic() - clock, profile)
    (out / "survey.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "survey.md").write_text(table.markdown(doc))
    (out / "survey.html").write_text(table.html(doc))
    counts = doc["counts"]
    print(f"surveyed {counts['targets']} targets in {_clock(time.monotonic() - clock)}: {table.counts_line(counts)}; "
          f"{out / 'survey.md'}, {out / 'survey.html'}, {out / 'survey.json'}")
    return 0


def _declared(name: str) -> registry.Implementation | None:
    """A registered entry's Implementation as declared, its package installed or not."""
    entry = registry.registered().get(name)
    try:
        found = entry.load() if entry else None
    except Exception:  # noqa: BLE001 - resolve has said why
        return None
    return found if isinstance(found, registry.Implementation) else None


def _package(name: str, impl: registry.Implementation) -> str:
    """The distribution a row belongs to: the adapter's, a module:attr target's top package,
    or this suite (a built-in)."""
    if impl.package:
        from packaging.requirements import Requirement

        return Requirement(impl.package).name
    return name.split(":")[0].split(".")[0] if ":" in name else "adam-conformance"


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
