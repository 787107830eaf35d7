"""The target's preflight and diagnosis, each in a process of its own under a time limit,
so that a target that hangs or crashes there cannot take certify or pytest down. Each is
forked from the fork server (`conformance.run.forked`), which has imported torch.

`main` (``python -m conformance.front.isolation TARGET --json PATH``, with the options
`flags` gives it) is the preflight's process: exit 0 with its record written, or 2 with one
line saying why the target cannot be certified.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conformance.front.flags import Options, add_flags
from conformance.front.options import target_of
from conformance.registry import TargetError
from conformance.run import forked
from conformance.run.preflight import Preflight, PreflightError
from conformance.run.preflight import run as run_preflight
from conformance.run.target import Target

#: The least time the diagnosis gets, whatever the check time limit: it starts a process
#: (torch's import alone takes seconds) and runs a dozen probes.
DIAGNOSIS_TIMEOUT = 30.0


def preflight(opts: Options, target: Target) -> Preflight:
    """The preflight of the target `opts` name, under the profile's time limit: a target that
    hangs or crashes there leaves a record that says so, and the checks run with the profile's
    limit. ``opts.spec`` is the one asked for (None: the preflight may read a plain function's
    from what it returns). Raises PreflightError if the target cannot be certified."""
    limit = target.profile.timeout
    with tempfile.TemporaryDirectory(prefix="adam-conformance-") as scratch:
        path = Path(scratch) / "preflight.json"
        start = time.perf_counter()
        try:
            done = forked.run(main, (dataclasses.replace(opts, json=str(path)).argv("preflight"),), limit)
        except subprocess.TimeoutExpired:
            return Preflight(duration_s=limit, interrupted=f"it timed out after {limit:g} s")
        if done.returncode == 2:
            raise PreflightError(_last_words(done.stderr, "the preflight failed"))
        if done.returncode != 0 or not path.exists():
            return Preflight(duration_s=time.perf_counter() - start,
                             interrupted=f"its process died (exit code {done.returncode})")
        return Preflight.from_json(json.loads(path.read_text()))


def diagnosis(opts: Options, target: Target, limit: float, out, report: dict | None = None) -> dict | None:
    """`adam-conformance diagnose` of the target `opts` name, which failed (it may hang or
    crash), given certify's `report` of it so far (``--report``): its findings, or None, with
    what stopped it written to `out`."""
    out.write("\ndiagnosing which known variant it implements...\n")
    out.flush()
    limit = max(limit, DIAGNOSIS_TIMEOUT)
    with tempfile.TemporaryDirectory(prefix="adam-conformance-") as scratch:
        path, given = Path(scratch) / "diagnosis.json", Path(scratch) / "report.json"
        asked = dataclasses.replace(opts, spec=target.spec, device=target.device, json=str(path))
        argv = ["diagnose", *asked.argv("diagnose")]
        if report is not None:
            given.write_text(json.dumps(report))
            argv += ["--report", str(given)]
        try:
            done = forked.run(_command, (argv,), limit)
        except subprocess.TimeoutExpired:
            out.write(f"  no diagnosis: it ran past the {limit:g} s limit\n")
            return None
        if done.returncode != 0 or not path.exists():
            out.write(f"  no diagnosis: {_last_words(done.stderr, 'the diagnosis stopped without a word')}\n")
            return None
        return json.loads(path.read_text())


def _command(argv: list[str]) -> None:
    """``adam-conformance ARGV`` (``python -m conformance``), in the forked process; it exits."""
    sys.argv = ["adam-conformance", *argv]
    runpy.run_module("conformance", run_name="__main__", alter_sys=True)


def _last_words(stderr: str, otherwise: str) -> str:
    lines = stderr.strip().splitlines()
    return lines[-1].strip() if lines else otherwise


@contextlib.contextmanager
def workers_environment(scratch: str):
    """What pytest's workers inherit: the caller's directory importable (module:attr targets
    beside it), hypothesis's own files in `scratch`, not in the caller's directory."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "HYPOTHESIS_STORAGE_DIRECTORY")}
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), saved["PYTHONPATH"]]))
    os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(Path(scratch) / "hypothesis")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(argv: list[str] | None = None) -> int:
    """The preflight's process: TARGET and the options it takes (`flags`); --json is required."""
    parser = argparse.ArgumentParser(prog="python -m conformance.front.isolation")
    parser.add_argument("target")
    add_flags(parser, "preflight")
    args = parser.parse_args(argv)
    if not args.json:
        parser.error("--json PATH is required")
    opts = Options.parsed(args.target, "preflight", functools.partial(getattr, args))
    try:
        found = run_preflight(target_of(opts), read_spec=opts.spec is None)
    except TargetError as e:
        print(f"{e}", file=sys.stderr)
        return 2
    Path(opts.json).write_text(json.dumps(found.to_json()))
    return 0

if __name__ == "__main__":
    sys.exit(main())
