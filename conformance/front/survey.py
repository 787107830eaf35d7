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

import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

from conformance import registry
from conformance.front.certify import Times, distinct, in_jobs, slug
from conformance.front.flags import Options
from conformance.front.options import writable_dir
from conformance.report import survey as table


def adapters() -> list[str]:
    """Every registered entry that adapts another package."""
    found = []
    for name, entry in registry.registered().items():
        if entry.value.startswith("impls.thirdparty."):
            found.append(name)
    return found


def run(targets: list[str], out: Path, asked: Options) -> int:
    """Survey `targets` (default: every adapter) into `out` with the options `asked` (profile,
    device, jobs, workers). Exit 0 once the table is written."""
    names = targets or adapters()
    distinct(names)
    out.mkdir(parents=True, exist_ok=True)
    writable_dir(out, "--out")
    for folder in ("reports", "logs", "repro"):
        (out / folder).mkdir(exist_ok=True)
    started, clock = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), time.monotonic()
    impls, rows = {}, {}
    for name in names:
        impls[name], rows[name] = _usable(name, out, asked.device)
    ones = [dataclasses.replace(asked, target=name, json=str(out / "reports" / f"{slug(name)}.json"),
                                repro_dir=str(out / "repro" / slug(name))) for name in names if rows[name] is None]
    print(f"surveying {len(ones)} of {len(names)} targets, {asked.jobs} at a time; logs in {out / 'logs'}",
          file=sys.stderr, flush=True)
    for one, (completed, took) in _certified(ones, asked.jobs, out, clock).items():
        report_path = Path(one.json)
        report = json.loads(report_path.read_text()) if completed.returncode in (0, 1) and report_path.exists() \
            else None
        impl = impls[one.target]
        rows[one.target] = table.row(one.target, _package(one.target, impl), impl.package_version(), report,
                                     None if report else _last_words(completed), impl.package_warning(), took, out)
    ordered = [rows[name] for name in names]
    environment = next((r["report"]["environment"] for r in ordered if r["report"]), {})
    doc = table.document(ordered, environment, started, time.monotonic() - clock, asked.profile)
    (out / "survey.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "survey.md").write_text(table.markdown(doc))
    (out / "survey.html").write_text(table.html(doc))
    print(f"surveyed {doc['counts']['targets']} targets in {_clock(time.monotonic() - clock)}: "
          f"{table.counts_line(doc['counts'])}; {out / 'survey.md'}, {out / 'survey.html'}, {out / 'survey.json'}")
    return 0


def _usable(name: str, out: Path, device: str) -> tuple[registry.Implementation, dict | None]:
    """The target's Implementation, and its row where it is skipped (its package is not
    installed, or it cannot run on `device`); a name typed wrong raises TargetError."""
    try:
        impl, why = registry.resolve(name), None
    except registry.TargetError as e:
        impl = _declared(name)
        if impl is None or not impl.package:
            raise  # a name typed wrong, a module that does not import: an error, not a row
        why = str(e).partition(": ")[2]
    if device not in impl.devices:
        why = f"runs on {', '.join(impl.devices)} only" + (f"; {why}" if why else "")
    if why is None:
        return impl, None
    return impl, table.row(name, _package(name, impl), impl.package_version(), None, why, None, Times(0, 0), out,
                           verdict="skipped")


def _certified(ones: list[Options], jobs: int, out: Path, clock: float) -> dict:
    """Each of `ones` certified (`certify.in_jobs`), its log written and its progress said:
    its completed process and times, by its Options."""
    by_name, done = {one.target: one for one in ones}, {}

    def ended(k: int, n: int, name: str, completed, took: Times) -> None:
        (out / "logs" / f"{slug(name)}.txt").write_text(completed.stdout + completed.stderr)
        done[by_name[name]] = completed, took
        said = {0: "CONFORMANT", 1: "NOT CONFORMANT"}.get(completed.returncode, "unusable")
        elapsed = time.monotonic() - clock
        print(f"[{k}/{n}] {name}: {said} in {took.total:.0f} s (set-up {took.setup:.0f} s); {_clock(elapsed)} "
              f"elapsed, about {_clock(elapsed / k * (n - k))} left", file=sys.stderr, flush=True)

    if ones:
        in_jobs(ones, jobs, ended)
    return done


def _last_words(completed) -> str:
    """Why a target has no report: the last line its process wrote to stderr."""
    lines = completed.stderr.strip().splitlines()
    return lines[-1].removeprefix("adam-conformance: error: ") if lines else \
        f"its process ended with exit code {completed.returncode}"


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
