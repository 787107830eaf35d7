"""The body of a reproducer that reruns a failed check's own property, by name, on its minimal
Case(s): the reproducer of a distributed target, whose failure only its ranks can show. It
starts them as certify did (a process pool on gloo, at the failure's world size), so it needs
the suite installed; where it cannot run (no suite, no torch.distributed, a target that does
not load) it says so and exits 2. It exits 1 while the property still fails (a rank that
hangs included), 0 once it holds: never "holds" on a bug that is still there.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys

import numpy as np

from conformance.cases.case import Case
from conformance.checks.catalogue import CheckFailure
from conformance.dtypes import complex_from, is_complex
from conformance.registry import TargetError, resolve
from conformance.report.repro_runtime import decoded
from conformance.run import distributed, pool
from conformance.run.target import Target
from conformance.vocabulary import PROFILES

#: What a reproducer prints and returns where it cannot run the property.
CANNOT = 2


def target_of(record: dict) -> Target:
    """The Target certify ran, rebuilt from a reproducer's record (name, spec, device, world
    size, the claims the preflight left, the explicit keywords, the edges it avoided)."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a module beside you imports, as it did for certify
    impl = resolve(record["target"])
    impl = dataclasses.replace(impl.without(set(impl.claims) - set(record["claims"])),
                               explicit=frozenset(record["explicit"]))
    return Target(impl, record["spec"], record["device"], PROFILES["quick"], avoid=frozenset(record["avoid"]),
                  world_size=record["world_size"])


def arguments(encoded: list[dict]) -> list:
    """The property's arguments: Cases rebuilt from their documents, other values as they are."""
    return [case_of(a["case"]) if "case" in a else a["value"] for a in encoded]


def case_of(doc: dict) -> Case:
    """The Case of a document (`records.case_document`): its arrays read back in their shapes
    (nested lists lose the dimensions after a 0), "nan" and "inf" strings as floats, a complex
    parameter's (re, im) pairs as complex values."""
    meta, arrays = doc["meta"], {}
    for name, values in doc["arrays"].items():
        a = np.asarray(decoded(values), dtype=np.float64)
        index = name.rsplit("/", 1)[-1]
        if index.isdigit() and not name.startswith("objective"):
            param = meta["params"][int(index)]
            shape = list(param["shape"]) + [2] * is_complex(param["dtype"])
            given = sum(s["grads"][int(index)] for s in meta["steps"])
            a = a.reshape([given, *shape] if name.startswith("grads/") else shape)
            a = complex_from(a[..., 0], a[..., 1]) if is_complex(param["dtype"]) else a
        arrays[name] = a
    return Case.from_json(meta, arrays)


def main(record: dict) -> int:
    """Rerun the property of `record` (see `records.rerun_record`) on the target; print what it finds."""
    if record.get("rerun") is None:
        print("this failure cannot be rerun by name (its property is not importable); certify the target again")
        return CANNOT
    try:
        target = target_of(record)
        if target.impl.sharding is not None:
            problem = distributed.unusable(target.impl.sharding, target.device)
            if problem:
                raise TargetError(problem)
        prop = getattr(importlib.import_module(record["rerun"]["module"]), record["rerun"]["name"])
        args = arguments(record["rerun"]["args"])
    except (TargetError, ImportError, AttributeError, ValueError) as e:
        print(f"cannot reproduce here: {e}")
        return CANNOT
    print(f"rerunning {record['rerun']['name']} on {target.impl.name} ({target.spec}, {target.device}, "
          f"{target.world_size} process(es))...")
    try:
        prop(target, *args)
    except CheckFailure as failure:
        print(f"\nthe target still FAILS: {failure}")
        return 1
    except distributed.Hung as hung:
        print(f"\nthe target still FAILS: a rank hung: {hung}")
        return 1
    except pool.PoolError as e:
        print(f"cannot reproduce here: {e}")
        return CANNOT
    finally:
        pool.close_all()
    print("\nthe property now holds on this case")
    return 0
