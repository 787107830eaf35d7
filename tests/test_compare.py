"""`adam-conformance compare`: what changed between two reports, its exit codes, and bad input."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from conformance.report import compare

CHECKS = [
    {"id": "contract.closure", "status": "passed", "parity": None},
    {"id": "parity.trajectory", "status": "passed",
     "parity": {"error": 1.5, "torch_error": 1.5, "budget": 10.0, "where": "param 0 param after step 1"}},
]
FINGERPRINT = {
    "torch": "2.13.0",
    "features": {"decoupled_weight_decay": True, "adamw_is_adam": True},
    "fused_devices": ["cpu", "cuda"],
    "classes": {"adam": {"hierarchy": ["torch.optim.adam.Adam", "torch.optim.optimizer.Optimizer"],
                         "signature": {"params": None, "lr": "0.001", "decoupled_weight_decay": "False"},
                         "errors": {"lr=-1": "ValueError: Invalid learning rate: -1.0"}}},
    "paths": {"fused": {"basic-adam": 3.0, "noncontiguous-layouts": 2.4e7}},
}


def _report(version: int = 2) -> dict:
    doc = {"schema": "adam-conformance-report", "version": version, "target": {"name": "eager", "claims": ["complex"]},
           "environment": {"torch": "2.13.0+cpu"}, "checks": copy.deepcopy(CHECKS)}
    if version >= 2:
        doc["fingerprint"] = copy.deepcopy(FINGERPRINT)
    return doc


def test_identical_reports_differ_in_nothing_and_say_what_was_compared():
    a = _report()
    changes = compare.compare(a, copy.deepcopy(a))
    assert changes == []
    text = compare.render("a.json", a, "b.json", a, changes)
    assert "no difference found: compared 2 checks, the claims, and the torch fingerprint" in text


def test_a_status_change_a_lost_feature_and_an_edited_fingerprint_are_semantic():
    a, b = _report(), _report()
    b["checks"][0]["status"] = "failed"
    b["target"]["claims"] = []
    b["fingerprint"]["classes"]["adam"]["signature"]["lr"] = "0.01"
    del b["fingerprint"]["classes"]["adam"]["signature"]["decoupled_weight_decay"]
    b["fingerprint"]["classes"]["adam"]["hierarchy"].insert(0, "torch.optim.adamw.Base")
    b["fingerprint"]["classes"]["adam"]["errors"]["lr=-1"] = "ValueError: lr must be >= 0"
    b["fingerprint"]["paths"]["fused"]["noncontiguous-layouts"] = 3.1
    b["fingerprint"]["features"]["adamw_is_adam"] = False
    lines = [c.line() for c in compare.compare(a, b) if c.semantic]
    assert lines == [
        "contract.closure: passed -> failed",
        "claims complex: claimed -> not claimed",
        "torch feature adamw_is_adam: True -> False",
        "adam hierarchy: torch.optim.adam.Adam < torch.optim.optimizer.Optimizer -> "
        "torch.optim.adamw.Base < torch.optim.adam.Adam < torch.optim.optimizer.Optimizer",
        "adam parameter decoupled_weight_decay: present -> (absent)",
        "adam default of lr: 0.001 -> 0.01",
        "adam given lr=-1: ValueError: Invalid learning rate: -1.0 -> ValueError: lr must be >= 0",
        "torch fused on golden noncontiguous-layouts (eps): 2.4e+07 -> 3.1",
    ]


def test_a_figure_that_moved_is_reported_but_is_not_semantic():
    a, b = _report(), _report()
    b["checks"][1]["parity"]["error"] = 4.0  # x2.7
    changes = compare.compare(a, b)
    assert [c.line() for c in changes] == ["parity.trajectory error (eps): 1.5 -> 4"]
    assert not compare.document(changes)["semantic"]
    b["checks"][1]["parity"]["error"] = 2.5  # within the factor: not reported
    assert compare.compare(a, b) == []



def test_a_status_that_changed_where_the_check_found_the_target_nondeterministic_is_said_not_semantic():
    """torch's fused CPU path on a strided gradient fails one run and passes the next: its
    failure says so, and the drift job must not flap on it."""
    a, b = _report(), _report()
    b["checks"][0].update(status="failed", reason="nondeterministic: an example that failed passed on replay; it "
                                                  "failed with: step 1, param 0 ...")
    changes = compare.compare(a, b)
    assert [c.line() for c in changes] == ["contract.closure (nondeterministic: the check found it so): passed -> "
                                           "failed"]
    assert not compare.document(changes)["semantic"]

def test_reports_of_two_suite_versions_say_so_without_a_semantic_change():
    a, b = _report(), _report()
    a["suite"], b["suite"] = {"name": "adam-conformance", "version": "0.3.0"}, {"name": "adam-conformance",
                                                                              "version": "0.4.0"}
    changes = compare.compare(a, b)
    assert [c.line() for c in changes] == ["adam-conformance: 0.3.0 -> 0.4.0"] and not changes[0].semantic
    assert "the suite's version (its checks may differ: see CHANGELOG.md):" in compare.render("a", a, "b", b, changes)


def test_a_version_1_report_is_read_without_a_fingerprint():
    changes = compare.compare(_report(version=1), _report())
    assert [(c.kind, c.semantic) for c in changes] == [("fingerprint", False)]


def _cli(tmp_path, a, b, *args) -> subprocess.CompletedProcess:
    paths = []
    for name, doc in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
        paths.append(str(tmp_path / name))
    return subprocess.run([sys.executable, "-m", "conformance", "compare", *paths, *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.e2e
def test_the_command_exits_1_on_a_semantic_change_and_writes_json(tmp_path):
    a, b = _report(), _report()
    b["checks"][1]["status"] = "failed"
    result = _cli(tmp_path, a, b)
    assert result.returncode == 1
    assert "checks that changed status:\n  parity.trajectory: passed -> failed" in result.stdout
    result = _cli(tmp_path, a, b, "--json")
    assert result.returncode == 1 and json.loads(result.stdout)["changes"][0]["what"] == "parity.trajectory"
    assert _cli(tmp_path, a, a).returncode == 0


BAD = {
    "not JSON": ("{\"schema\": ", "not JSON, or cut short"),
    "foreign JSON": (json.dumps({"hello": "world"}), "not an adam-conformance report"),
    "an unknown version": (json.dumps({**_report(), "version": 99}), "report version 99"),
    "no checks": (json.dumps({k: v for k, v in _report().items() if k != "checks"}), "'checks' is missing"),
}


@pytest.mark.e2e
@pytest.mark.parametrize("what", sorted(BAD))
def test_unusable_input_exits_2_with_one_line(tmp_path, what):
    text, message = BAD[what]
    result = _cli(tmp_path, _report(), text)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
