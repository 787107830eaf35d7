"""The mutant zoo against the catalogue: every mutant killed at the quick profile, no correct
variant rejected, and every check earning its place (see tests/kill_matrix.py)."""

from __future__ import annotations

import pytest

from conformance.checks import CATALOGUE
from tests import kill_matrix, mutants
from tests.kill_matrix import PLACES, by_property, killers, row


@pytest.mark.parametrize("mutant", mutants.MUTANTS, ids=lambda m: m.__name__)
def test_the_suite_kills_the_mutant(mutant):
    cells = row(mutant, "quick")
    assert killers(cells), f"{mutant.__name__} ({mutant.__doc__.strip()}) was certified conformant"
    for check_id, place in PLACES.items():
        if place.witness is not mutant:
            continue
        outcome, _, message = cells[check_id]
        assert outcome == "killed" and by_property(message), f"{check_id} no longer catches its witness: {message}"
        if not place.reason:
            assert killers(cells) == {check_id}, f"{check_id} is no longer the only check to catch {mutant.__name__}"


@pytest.mark.parametrize("cls", mutants.CORRECT, ids=lambda m: m.__name__)
def test_a_correct_variant_is_certified(cls):
    cells = row(cls, "quick")
    alarms = {c: cells[c][2] for c in killers(cells)}
    assert not alarms, f"false alarm on {cls.__name__} ({cls.__doc__.strip()}): {alarms}"


def test_every_check_earns_its_place():
    assert set(PLACES) == set(CATALOGUE)
    assert all(place.witness in mutants.MUTANTS for place in PLACES.values())
    assert sum(not place.reason for place in PLACES.values()) >= 8  # the checks no other can stand in for


def test_every_branch_a_target_claims_has_a_mutant_confined_to_it():
    """The covering examples must reach each: test_the_suite_kills_the_mutant kills them at quick."""
    assert set(mutants.BRANCHES.values()) <= set(mutants.MUTANTS)
    assert {"coupled (L2) weight decay", "tensor lr", "float16", "bfloat16", "float64", "parameter layout",
            "several groups", "a group added late", "0-d parameters"} <= set(mutants.BRANCHES)


def test_the_zoo_is_large_and_each_mutant_says_its_bug_in_one_line():
    assert len(mutants.MUTANTS) >= 30 and len(set(mutants.MUTANTS)) == len(mutants.MUTANTS)
    for cls in mutants.MUTANTS + mutants.CORRECT:
        doc = (cls.__doc__ or "").strip()
        assert doc and "\n" not in doc, cls.__name__


def test_the_matrix_renders_kills_second_lines_and_false_alarms():
    killed = {c: ("passed", 0.1, "") for c in CATALOGUE} | {"contract.closure": ("killed", 0.2, "no loss")}
    rejected = {c: ("passed", 0.1, "") for c in CATALOGUE} | {"parity.golden": ("killed", 3.0, "over")}
    text = kill_matrix.render({"Lossless": killed}, {"Careful": rejected})
    assert "contract.closure                   Lossless" in text
    assert "invariant.partition                second line: reference-free" in text
    assert "Careful  FALSE ALARM: parity.golden" in text
    assert kill_matrix.summary({"Lossless": killed}, {"Careful": rejected}, 1.0).startswith(
        "1 of 1 mutants killed; time to kill: median 0.20 s, worst 0.20 s")


def test_the_test_map_names_each_checks_witness():
    """tests/README.md answers, for each check id, where it is proven."""
    from pathlib import Path

    text = (Path(__file__).with_name("README.md")).read_text()
    for check_id, place in PLACES.items():
        assert f"| `{check_id}` | `{place.witness.__name__}` |" in text, check_id
