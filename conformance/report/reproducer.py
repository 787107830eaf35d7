"""Standalone reproducer scripts for failed checks.

A reproducer is one Python file that needs only torch and the target's own package: it
holds the minimal Case(s) as JSON, the runner's core (`conformance.run.drive`) and the
comparison (`conformance.report.repro_runtime`) verbatim, and a recipe that imports the target
without the suite. Running it reruns the target beside torch's reference path, prints
where they part, and exits 1 while the target still fails.
"""

from __future__ import annotations

import functools
import inspect
import json
from pathlib import Path

from conformance.report import repro_runtime
from conformance.run import drive
from conformance.truth.budget import INVARIANT_TOLERANCE
from conformance.vocabulary import KEYWORD_FEATURES, torch_class_name


def factory_recipe(factory, target_name: str) -> str:
    """Python source defining ``make_target()``, which returns the target's factory (a factory
    that carries its own, an adapter's, gives that)."""
    if isinstance(getattr(factory, "recipe", None), str):
        return factory.recipe
    if isinstance(factory, functools.partial):
        inner = factory_recipe(factory.func, target_name)
        kwargs = ", ".join(f"{k}={v!r}" for k, v in factory.keywords.items())
        return inner.replace("def make_target():", "def _make_inner():") + (
            f"\n\ndef make_target():\n    import functools\n    return functools.partial(_make_inner(), {kwargs})\n")
    module, qualname = getattr(factory, "__module__", None), getattr(factory, "__qualname__", "")
    if module and qualname and "<" not in qualname and module != "__main__":
        top, _, rest = qualname.partition(".")
        return (f"def make_target():\n    import os\n    import sys\n\n"
                f"    sys.path.insert(0, os.getcwd())  # a module beside you imports, as it did for certify\n"
                f"    from {module} import {top}\n    return {top}{'.' + rest if rest else ''}\n")
    # Not importable by name (a closure, an instance): go through the suite's resolver.
    return (f"def make_target():\n    from conformance import resolve  # this target needs the suite to load\n"
            f"    return resolve({target_name!r}).factory\n")


def write(directory: Path, target_name: str, target, result) -> Path:
    """Write the reproducer of a failed check result into `directory`; return its path."""
    if target.impl.sharding is not None:
        return _write_rerun(directory, target_name, target, result)
    failure = result.failure
    repro = dict(failure.get("repro") or {"mode": "side-by-side"})
    if repro["mode"] == "side-by-side":
        parity = failure.get("parity")
        steps = max((len(c["meta"]["steps"]) for c in failure["cases"]), default=1)
        conclusive = parity and parity["budget"] is not None and parity["torch_error"] is not None
        repro["threshold"] = parity["budget"] + parity["torch_error"] if conclusive else INVARIANT_TOLERANCE * steps
    doc = (f"Reproducer: check {result.id} failed for {target.impl.name} (spec {target.spec}, {target.device}).\n\n"
           f"{result.statement}\n\nFailure: {failure['message']}\n\n"
           f"Run `python {directory / result.id}.py` from where the target's module imports (the\n"
           f"directory certify ran in, for a module there). It reruns the minimal\n"
           f"case beside {torch_class_name(target.spec)}(foreach=False), prints where "
           f"they part, and exits 1 while the target still fails.\n")
    constants = "\n".join([
        f"TARGET_NAME = {target_name!r}",
        f"SPEC = {target.spec!r}",
        f"DEVICE = {target.device!r}",
        f"TARGET_CLAIMS = {sorted(k for k in (*KEYWORD_FEATURES, 'param_groups') if k in target.claims)!r}",
        f"TARGET_EXPLICIT = {sorted(target.impl.explicit)!r}",
        f"REPRO = json.loads(r'''{json.dumps(repro)}''')",
        f"CASES = json.loads(r'''{json.dumps(failure['cases'])}''')",
    ])
    runtime = _without_docstring(inspect.getsource(repro_runtime))
    source = "\n\n".join([
        f'#!/usr/bin/env python3\n"""{doc}"""',
        "from __future__ import annotations\n\nimport json",
        constants,
        factory_recipe(target.impl.factory, target_name),
        "# --- conformance/drive.py, verbatim " + "-" * 40 + "\n" + _without_docstring(inspect.getsource(drive)),
        "# --- conformance/repro_runtime.py, verbatim " + "-" * 32 + "\n" + runtime,
    ])
    path = directory / f"{result.id}.py"
    path.write_text(source)
    path.chmod(0o755)
    return path


def _write_rerun(directory: Path, target_name: str, target, result) -> Path:
    """The reproducer of a distributed target: it reruns the failed property by name on its
    ranks, through the suite (`report.rerun`)."""
    record = dict(target=target_name, spec=target.spec, device=target.device, world_size=target.world_size,
                  claims=sorted(target.claims), explicit=sorted(target.impl.explicit), avoid=sorted(target.avoid),
                  rerun=result.failure.get("rerun"))
    doc = (f"Reproducer: check {result.id} failed for {target.impl.name} (spec {target.spec}, {target.device}, "
           f"{target.world_size} processes).\n\n{result.statement}\n\nFailure: {result.failure['message']}\n\n"
           f"Run `python {directory / result.id}.py` from where the target's module imports (the\n"
           "directory certify ran in). A distributed target's failure shows only across its ranks,\n"
           "so this reruns the check's own property on the minimal case, on as many processes as\n"
           "certify used, through adam-conformance (which must be installed). It exits 1 while the\n"
           "target still fails, 0 once the property holds, 2 where it cannot run here.\n")
    source = "\n".join([
        f'#!/usr/bin/env python3\n"""{doc}"""',
        "import json\nimport sys\n",
        f"RECORD = json.loads(r'''{json.dumps(record)}''')\n",
        "if __name__ == \"__main__\":  # the ranks are started from this process: the guard is needed",
        "    try:",
        "        from conformance.report import rerun",
        "    except ImportError as e:",
        "        print(f\"this reproducer of a distributed target needs adam-conformance installed ({e})\")",
        "        sys.exit(2)",
        "    sys.exit(rerun.main(RECORD))",
        "",
    ])
    path = directory / f"{result.id}.py"
    path.write_text(source)
    path.chmod(0o755)
    return path


def _without_docstring(source: str) -> str:
    """A module's source minus its docstring and __future__ import (the script has them on top)."""
    body = source.split('"""', 2)[2] if source.lstrip().startswith('"""') else source
    return body.replace("from __future__ import annotations\n", "").lstrip()
