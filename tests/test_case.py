"""Case and Trace: exact round trips through their serialised form, and clear validation."""

from __future__ import annotations

import numpy as np
import pytest

from conformance.cases.case import Case, CaseError, Group, Param, Step
from conformance.cases.scenarios import SCENARIOS
from conformance.cases.trace import Trace
from conformance.truth import golden

SCENARIO_NAMES = sorted(SCENARIOS)


def _arrays_identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in ((a[k], b[k]) for k in a)
    )


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_case_round_trips_exactly_through_json_and_arrays(name):
    case = SCENARIOS[name][1]()
    meta, arrays = case.to_json()
    again = Case.from_json(meta, arrays)
    meta2, arrays2 = again.to_json()
    assert meta2 == meta and _arrays_identical(arrays, arrays2)
    assert again.fingerprint() == case.fingerprint()
    assert again.features() == case.features()


@pytest.mark.parametrize("name", SCENARIO_NAMES)
def test_golden_files_hold_the_very_case_the_scenario_builds(name):
    _, stored, trace = golden.read_scenario(golden.DEFAULT_DIR, name)
    assert stored.fingerprint() == SCENARIOS[name][1]().fingerprint()
    meta, arrays = trace.to_json()
    assert _arrays_identical(arrays, Trace.from_json(meta, arrays).to_json()[1])


def _case(**changes) -> Case:
    fields = dict(
        spec="adam",
        params=(Param(np.ones((2, 3))), Param(np.zeros(4))),
        groups=(Group((0, 1)),),
        steps=(Step((np.ones((2, 3)), None)),),
    )
    fields.update(changes)
    return Case(**fields)


INVALID = {
    "unknown spec": (dict(spec="adamax"), "spec 'adamax' is not one of"),
    "value not in dtype": (dict(params=(Param(np.full((2, 3), 0.1), "float16"), Param(np.zeros(4)))),
                           "exact in float16"),
    "layout needs 4 dims": (dict(params=(Param(np.ones((2, 3)), layout="channels_last"), Param(np.zeros(4)))),
                            "does not fit shape"),
    "param in no group": (dict(groups=(Group((0,)),)), "exactly one group"),
    "param in two groups": (dict(groups=(Group((0, 1)), Group((1,)))), "exactly one group"),
    "wrong grad shape": (dict(steps=(Step((np.ones(3), None)),)), "not a (2, 3) array"),
    "missing grads": (dict(steps=(Step((None,)),)), "1 gradients for 2 parameters"),
    "unknown event": (dict(steps=(Step((None, None), events=("reboot",)),)), "unknown event 'reboot'"),
    "unsettable key": (dict(steps=(Step((None, None), set=((0, "amsgrad", True),)),)), "cannot set 'amsgrad'"),
    "tensor lr not float32": (dict(groups=(Group((0, 1), lr=0.1, tensor_lr=True),)), "not a float32 value"),
    "group joins late first": (dict(groups=(Group((0, 1), added_at=2),)), "given to the constructor"),
    "record out of range": (dict(record=(0, 1)), "record must list increasing steps"),
}


@pytest.mark.parametrize("what", sorted(INVALID))
def test_invalid_cases_are_rejected_with_a_clear_message(what):
    changes, message = INVALID[what]
    with pytest.raises(CaseError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _case(**changes)


def test_malformed_serialised_cases_raise_case_error_not_a_traceback():
    meta, arrays = _case().to_json()
    with pytest.raises(CaseError, match="array 'init/0' is missing"):
        Case.from_json(meta, {k: v for k, v in arrays.items() if k != "init/0"})
    with pytest.raises(CaseError, match="unsupported case format"):
        Case.from_json({**meta, "format": 99}, arrays)
    with pytest.raises(CaseError, match="malformed case"):
        Case.from_json({k: v for k, v in meta.items() if k != "groups"}, arrays)


def test_features_name_what_a_case_exercises():
    case = SCENARIOS["param-groups"][1]()
    assert case.features() == {"weight_decay", "amsgrad", "maximize", "param_groups"}
    assert {"zero_dim", "empty"} <= SCENARIOS["zero-dim-and-empty"][1]().features()
    assert "complex" in SCENARIOS["complex64-adam"][1]().features()
    assert {"noncontiguous"} <= SCENARIOS["noncontiguous-layouts"][1]().features()
    assert {"tensor_lr", "weight_decay"} <= SCENARIOS["tensor-lr"][1]().features()
    assert "closure" in SCENARIOS["closure"][1]().features()


def test_edges_name_the_ends_of_the_valid_range_a_case_touches():
    assert SCENARIOS["eps-zero"][1]().edges() == {"eps=0"}
    assert "beta1=0" in SCENARIOS["beta1-zero"][1]().edges()
    assert "weight_decay=1" in SCENARIOS["large-lr-and-decay"][1]().edges()
    assert not SCENARIOS["basic-adam"][1]().edges()
