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
    ))
