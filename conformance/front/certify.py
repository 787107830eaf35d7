"""``adam-conformance certify``: run the check catalogue on a target, report, reproduce.

The checks run through pytest, exactly as ``pytest --adam-impl`` runs them, never a second
copy, in one worker forked from the fork server (`front.worker`; -n 0: in this process, -n 2
or more: that many pytest-xdist workers): a `Collector` plugin gathers each check's result in
the controller and prints progress. pytest runs isolated from the current directory's
configuration (its own rootdir and ini file, no cache), so nothing of the user's files
is touched but the reports asked for; reproducers go to --repro-dir, or to a fresh
temporary directory. The preflight runs first and a target that fails is diagnosed
(`conformance.diagnose`), each in a process of its own (`front.isolation`), so the report
says what the target rejects and names the known variant it implements.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import io
import json
import subprocess
import sys
import tempfile
import time
import typing
from pathlib import Path

import pytest

from conformance.checks import CATALOGUE, checked_ids
from conformance.front import isolation, worker
from conformance.front.flags import Options
from conformance.front.options import target_of, writable, writable_dir
from conformance.front.plugin import SUITE
from conformance.registry import TargetError
from conformance.report import certificate, reproducer
from conformance.report.environment import describe_environment, software
from conformance.report.fingerprint import fingerprint
from conformance.run import forked, torch_features
from conformance.run.preflight import Preflight
from conformance.run.target import Target
from conformance.truth import golden


@dataclasses.dataclass
class CheckResult:
    id: str
    status: str = "error"  # passed | failed | skipped | error
    reason: str = "did not run"
    duration: float = 0.0
    evidence: dict | None = None
    failure: dict | None = None
    reproducer: str | None = None

    @property
    def statement(self) -> str:
        return CATALOGUE[self.id].statement


class Collector:
    """A pytest plugin (controller side): each check's result, with progress as they finish."""

    def __init__(self, out, check_ids):
        self.out, self.started = out, time.monotonic()
        self.results = {cid: CheckResult(cid) for cid in check_ids}
        self.done = 0

    def pytest_runtest_logreport(self, report) -> None:
        cid = _check_id(report.nodeid)
        if cid is None:
            return
        result = self.results[cid]
        props = dict(report.user_properties)
        if report.when == "call" or report.outcome != "passed":
            result.duration += report.duration
            if report.skipped:
                result.status, result.reason = "skipped", _skip_reason(report)
            elif report.passed:
                result.status, result.reason = "passed", ""
                result.evidence = json.loads(props["adam_evidence"]) if "adam_evidence" in props else None
            elif "adam_failure" in props:
                result.failure = json.loads(props["adam_failure"])
                result.status, result.reason = "failed", result.failure["message"]
            else:
                result.status, result.reason = "error", props.get("adam_error") or _last_line(report)
        if report.when in ("teardown", "???"):  # "???": xdist's report for a crashed worker
            self.done += 1
            self.out.write(f"[{self.done:2d}/{len(self.results)}] {cid:34s} {result.status:7s} "
                           f"{result.duration:6.1f} s  {_short(result.reason)}\n")
            self.out.flush()


def _check_id(nodeid: str) -> str | None:
    head, sep, rest = nodeid.partition("test_check[")
    return rest[:-1] if sep and rest[:-1] in CATALOGUE else None


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


def _last_line(report) -> str:
    text = str(report.longrepr or "").strip().splitlines()
    crashed = [line for line in text if "crashed" in line]
    return (crashed or text or ["unknown error"])[-1].strip()


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def certify(args: Options, found: Preflight | None = None) -> int:
    """Run the catalogue on `args.target` (its preflight `found`, or run here); 0 if conformant,
    1 if not (2 is raised as an error)."""
    target = target_of(args)
    checked_ids(args.skip, "--skip")
    writable(args.json, "--json")
    writable(args.junit, "--junit")
    repro_dir = Path(args.repro_dir).resolve() if args.repro_dir else None
    if repro_dir:
        writable_dir(repro_dir, "--repro-dir")
    try:
        golden.intact()
    except golden.GoldenError as e:
        raise TargetError(str(e)) from None
    out = sys.stdout
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(1) as aside:  # the header's facts (both cached), beside the preflight
        facts = aside.submit(lambda: (torch_features.detect(), software()))
        if found is None:
            found = isolation.preflight(args, target)
        facts.result()
    target = found.apply(target)
    header = describe_environment(target, args.seed, found, args.skip)
    out.write("adam-conformance certify\n" + "".join(f"  {line}\n" for line in header) + "\n")
    results = run(target, args, found, out)
    failures = [result for result in results if result.failure]
    if failures:  # a temporary folder only where there is a reproducer to keep
        repro_dir = repro_dir or Path(tempfile.mkdtemp(prefix="adam-conformance-repro-"))
    for result in failures:
        result.reproducer = str(reproducer.write(repro_dir, args.target, target, result))
    diagnosis = None
    if any(r.status == "failed" for r in results):  # a hang or a crash alone says nothing of the arithmetic
        limit = args.check_timeout or found.check_timeout(target.profile)
        dropped = (*args.without, *(note.feature for note in found.dropped))
        so_far = certificate.document(target, header, args.seed, results, time.time() - started, None, found, args.skip)
        diagnosis = isolation.diagnosis(dataclasses.replace(args, without=dropped), target, limit, out, so_far)
    torch_print = fingerprint(progress=lambda line: out.write(f"{line}\n"))
    doc = certificate.document(target, header, args.seed, results, time.time() - started, diagnosis, found, args.skip,
                               torch_print)
    out.write("\n" + certificate.render(doc) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
        out.write(f"JSON report: {args.json}\n")
    if args.junit:
        out.write(f"JUnit XML: {args.junit}\n")
    return 0 if doc["verdict"] == "conformant" else 1


def certify_all(args: Options, names: list[str], recorded: list[str] = ()) -> int:
    """Certify each of `names`, then `recorded`, with `args`: one after another in this process
    (the fingerprint and the imports shared), or with ``jobs`` > 1 that many at once, each a
    ``certify`` of its own whose output is shown whole when it ends. --json and --junit name
    directories, --repro-dir gets a folder per target. Every name is resolved first, so a typo
    costs nothing; a target found unusable later is reported and the others still run. Exit
    code: the worst of theirs, where a recorded target's verdict counts as conformant (its
    being unusable still counts)."""
    names = [*names, *recorded]
    if len(names) == 1:
        return certify(args)
    distinct(names)
    for name in names:
        target_of(dataclasses.replace(args, target=name))
    folders = {option: Path(path) for option, path in (("--json", args.json), ("--junit", args.junit),
                                                        ("--repro-dir", args.repro_dir)) if path}
    for option, folder in folders.items():
        writable_dir(folder, option)
    started, codes = time.time(), {}
    ones = [dataclasses.replace(args, target=name, json=args.json and str(folders["--json"] / f"{slug(name)}.json"),
                                junit=args.junit and str(folders["--junit"] / f"{slug(name)}.xml"),
                                repro_dir=args.repro_dir and str(folders["--repro-dir"] / slug(name)))
            for name in names]
    if args.jobs > 1:
        print(f"certifying {len(ones)} targets, {args.jobs} at a time; each one's output follows when it ends\n",
              flush=True)
        codes = in_jobs(ones, args.jobs)
    for k, one in enumerate(ones if args.jobs == 1 else (), start=1):
        print(f"== [{k}/{len(names)}] {one.target} ==", flush=True)
        codes[one.target] = _certify_one(one)
        print(flush=True)
    said = {0: "CONFORMANT", 1: "NOT CONFORMANT", 2: "unusable (exit 2)"}
    print(f"certified {len(names)} targets in {time.time() - started:.0f} s:")
    width = max(map(len, names))
    for name in names:
        print(f"  {name:{width}s}  {said[codes[name]]}" + ("  (recorded: not in the exit code)" if name in recorded
                                                           and codes[name] < 2 else ""))
    return max(0 if name in recorded and code < 2 else code for name, code in codes.items())


def _certify_one(one: Options, found: Preflight | None = None) -> int:
    """`certify`, its errors said in one line: exit 2."""
    try:
        return certify(one, found)
    except TargetError as e:
        print(f"adam-conformance: error: {e}", file=sys.stderr, flush=True)
        return 2


def distinct(names: list[str]) -> None:
    """TargetError if a target is named twice."""
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise TargetError(f"a target is named twice: {', '.join(twice)}")


def slug(name: str) -> str:
    """A target's name as a file name: ``my_adam:MyAdam`` -> ``my_adam-MyAdam``."""
    return name.replace(":", "-").replace("/", "-")


def _shown(k: int, n: int, name: str, ended: subprocess.CompletedProcess, _times: Times) -> None:
    """A job's output, whole, as it ends."""
    print(f"== [{k}/{n}] {name} ==\n{ended.stdout}", end="", flush=True)
    print(ended.stderr, end="", file=sys.stderr, flush=True)
    print(flush=True)


class Times(typing.NamedTuple):
    """A job's seconds: its set-up (resolving the target and the preflight, which builds the
    optimizer once: a package's import and JIT builds are paid there) and in all."""

    setup: float
    total: float


def in_jobs(ones: list[Options], jobs: int, ended=_shown) -> dict[str, int]:
    """Each of `ones` certified by a process of its own (forked: torch is not imported again),
    `jobs` at a time; ``ended(k, n, name, completed, times)`` told as each ends (by default its
    output is printed whole). The fingerprint is measured first, so the jobs read it cached; each
    preflight is forked from here, not from the job. Exit codes by name (2: unusable)."""
    fingerprint(progress=lambda line: print(line, flush=True))

    def job(one: Options) -> tuple[subprocess.CompletedProcess, Times]:
        start = time.monotonic()
        try:
            target = target_of(one)
            found = isolation.preflight(one, target)
        except TargetError as e:
            took = time.monotonic() - start
            return subprocess.CompletedProcess(one.target, 2, "", f"adam-conformance: error: {e}\n"), Times(took, took)
        setup = time.monotonic() - start
        return forked.run(_certify_one, (one, found)), Times(setup, time.monotonic() - start)

    codes = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        running = {pool.submit(job, one): one.target for one in ones}
        for k, done in enumerate(concurrent.futures.as_completed(running), start=1):
            name, (completed, times) = running[done], done.result()
            ended(k, len(ones), name, completed, times)
            codes[name] = completed.returncode if completed.returncode in (0, 1) else 2
    return codes


def run(target: Target, args: Options, found: Preflight, out) -> list[CheckResult]:
    """The catalogue through pytest, isolated; results in catalogue order."""
    collector = Collector(out, sorted(CATALOGUE))
    with tempfile.TemporaryDirectory(prefix="adam-conformance-") as scratch:
        ini = Path(scratch) / "pytest.ini"
        ini.write_text("[pytest]\n")
        record = Path(scratch) / "preflight.json"
        record.write_text(json.dumps(found.to_json()))
        given = dataclasses.replace(args, spec=target.spec, profile=target.profile.name,
                                    world_size=target.world_size)
        # one worker: forked, not xdist's; and with -n 0 too where the target's preflight process died or
        # hung: in this process it would end certify, with whatever exit code it chose
        forked_worker = args.workers == 1 or (args.workers == 0 and bool(found.interrupted))
        if forked_worker and args.workers == 0:
            out.write("-n 0 not taken: the preflight's process did not end well, so the checks run in a worker\n\n")
        # no cache, and no unraisable-exception plugin: its garbage collections at the end cost a third
        # of a second, to print warnings nobody reads here
        argv = [str(SUITE), "-c", str(ini), "--rootdir", scratch, "-p", "no:cacheprovider", "-p",
                "no:unraisableexception", "-q", "--no-header", "-W", "ignore::UserWarning",
                "-n", "0" if forked_worker else str(args.workers), "--max-worker-restart", str(len(CATALOGUE)),
                *given.argv("pytest"), "--adam-preflight", str(record)]
        plugins = [collector]
        if forked_worker:
            plugins.append(worker.Controller(argv, args.check_timeout or found.check_timeout(target.profile)))
        argv += ["--junitxml", str(Path(args.junit).resolve())] if args.junit else []
        pytest_output = io.StringIO()
        with contextlib.redirect_stdout(pytest_output), isolation.workers_environment(scratch):
            code = pytest.main(argv, plugins=plugins)
    if code not in (0, 1):  # pytest itself could not run (not a verdict)
        tail = "\n".join(pytest_output.getvalue().strip().splitlines()[-15:])
        raise RuntimeError(f"pytest could not run the checks (exit code {code}):\n{tail}")
    return list(collector.results.values())
