"""The mutant zoo against the catalogue: every mutant killed at the quick profile, no correct
variant rejected, and every check earning its place (see tests/kill_matrix.py). The CUDA
zoo runs where CUDA is usable and is skipped, with that reason, elsewhere; the sharding zoo
runs at world size 2 where torch.distributed can."""

from __future__ import annotations

import pytest

from conformance.checks import CATALOGUE
from conformance.registry import Sharding
from conformance.run import distributed, torch_features
from tests import kill_matrix, mutants
from tests.kill_matrix import PLACES, ZOOS, by_property, killers, row, zoo_of

_NO_CUDA = torch_features.cuda_unusable()
ON_CUDA = pytest.mark.skipif(_NO_CUDA is not None, reason=f"CUDA only: {_NO_CUDA}")
_NO_PROCESSES = distributed.unusable(Sharding("dtensor"))
ACROSS_PROCESSES = pytest.mark.skipif(_NO_PROCESSES is not None, reason=f"torch.distributed: {_NO_PROCESSES}")
MARKS = {"cpu": [], "cuda": [ON_CUDA], "sharded": [ACROSS_PROCESSES]}
#: The whole zoo takes ten minutes and more on two cores, a few seconds a mutant and half a minute
#: a sharded one: the fast inner loop (``-m "not slow"``) kills one mutant on the CPU, and the rest
#: of the zoo is marked slow.
FAST = {mutants.NoBiasCorrection}

pytestmark = pytest.mark.zoo


def _zoo(which: int):
    """(class, device) of every zoo's mutants (which=0) or correct variants (which=1)."""
    return [pytest.param(cls, device, id=cls.__name__ + ("" if device == "cpu" else f"-{device}"),
                         marks=MARKS[device] + ([] if device == "cpu" and cls in FAST else [pytest.mark.slow]))
            for device, zoo in ZOOS.items() for cls in zoo[which]]


@pytest.mark.parametrize(("mutant", "device"), _zoo(0))
def test_the_suite_kills_the_mutant(mutant, device):
    """The checks it witnesses catch it by their property, and one that is the only check to catch
    its witness is the only one (the whole row runs); else any check's kill will do."""
    witnessed = [check_id for check_id, place in PLACES.items() if place.witness is mutant]
    alone = any(not PLACES[check_id].reason for check_id in witnessed)
    cells = row(mutant, "quick", device) if alone else row(mutant, "quick", device, checks=witnessed or None,
                                                               first_kill=not witnessed)
    assert killers(cells), f"{mutant.__name__} ({mutant.__doc__.strip()}) was certified conformant"
    for check_id, place in PLACES.items():
        if place.witness is not mutant:
            continue
        outcome, _, message = cells[check_id]
        assert outcome == "killed" and by_property(message), f"{check_id} no longer catches its witness: {message}"
        if not place.reason:
            assert killers(cells) == {check_id}, f"{check_id} is no longer the only check to catch {mutant.__name__}"


@pytest.mark.parametrize(("cls", "device"), _zoo(1))
def test_a_correct_variant_is_certified(cls, device):
    cells = row(cls, "quick", device)
    alarms = {c: cells[c][2] for c in killers(cells)}
    assert not alarms, f"false alarm on {cls.__name__} ({cls.__doc__.strip()}): {alarms}"


def test_every_check_earns_its_place():
    assert set(PLACES) == set(CATALOGUE)
    assert all(place.witness in [m for zoo, _ in ZOOS.values() for m in zoo] for place in PLACES.values())
    for check_id, chk in CATALOGUE.items():  # a device's checks are proven by that device's zoo
        assert PLACES[check_id].witness in ZOOS[zoo_of(chk)][0], check_id
    assert sum(not place.reason for place in PLACES.values()) >= 8  # the checks no other can stand in for


def test_every_branch_a_target_claims_has_a_mutant_confined_to_it():
    """The covering examples must reach each: test_the_suite_kills_the_mutant kills them at quick."""
    assert set(mutants.BRANCHES.values()) <= set(mutants.MUTANTS)
    assert {"coupled (L2) weight decay", "tensor lr", "float16", "bfloat16", "float64", "parameter layout",
            "several groups", "a group added late", "0-d parameters"} <= set(mutants.BRANCHES)


def test_the_zoo_is_large_and_each_mutant_says_its_bug_in_one_line():
    assert len(mutants.MUTANTS) >= 30 and len(set(mutants.MUTANTS)) == len(mutants.MUTANTS)
    for cls in [cls for zoo, correct in ZOOS.values() for cls in zoo + correct]:
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
