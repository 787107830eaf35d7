"""What a run found, as JSON-able records: check evidence, failures, their minimal Cases.

Records travel from pytest (xdist workers included) to reports as JSON strings in a
test's ``user_properties``.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from conformance.cases.case import Case
from conformance.dtypes import components
from conformance.truth.budget import Parity


def parity_record(p: Parity | None) -> dict | None:
    if p is None:
        return None
    record = dataclasses.asdict(p)
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in record.items()}


def case_document(case: Case) -> dict:
    """A Case as plain JSON: its metadata, and its arrays as nested lists (complex as
    a trailing (re, im) axis, NaN and infinities as strings)."""
    meta, arrays = case.to_json()
    return dict(meta=meta, arrays={k: _listed(components(a)) for k, a in arrays.items()}, description=case.describe())


def _listed(a: np.ndarray):
    """Nested lists; strict JSON has no NaN or infinities, so they become "nan", "inf", "-inf"
    (which float() reads back)."""
    if a.dtype.kind != "f" or np.all(np.isfinite(a)):
        return a.tolist()
    named = np.vectorize(lambda x: x if np.isfinite(x) else str(float(x)), otypes=[object])
    return named(a).tolist()


def evidence_record(evidence) -> str:
    deviation = evidence.torch_deviation
    return json.dumps(dict(
        examples=evidence.examples,
        parity=parity_record(evidence.parity),
        torch_deviation=None if deviation is None else dict(
            message=str(deviation), cases=[c.describe() for c in deviation.cases]),
    ))


def failure_record(failure) -> str:
    return json.dumps(dict(
        message=str(failure),
        parity=parity_record(failure.parity),
        cases=[case_document(c) for c in failure.cases],
        repro=failure.repro,
        severity=failure.severity,
        necessary=failure.necessary,
        rerun=rerun_record(failure.retest),
    ))


def rerun_record(retest) -> dict | None:
    """The failed property and its arguments, as a reproducer reruns it by name (`report.rerun`):
    {"module", "name", "args"}, each argument a {"case": document} or a {"value": JSON value};
    None where the property is not importable by name or an argument is neither."""
    if retest is None:
        return None
    prop, args = retest
    if "<" in prop.__qualname__ or "." in prop.__qualname__:
        return None
    encoded = []
    for a in args:
        if isinstance(a, Case):
            encoded.append({"case": case_document(a)})
        elif isinstance(a, (int, float, str, bool)) or a is None:
            encoded.append({"value": a})
        else:
            return None
    return dict(module=prop.__module__, name=prop.__qualname__, args=encoded)
