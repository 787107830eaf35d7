"""Sharded optimizers across processes: the ZeRO and FSDP2 built-ins equal unsharded Adam
bitwise at world sizes 1, 2 and 4; each sharding mutant is caught by its check; a rank that
raises, hangs or dies fails its Case with one line naming it, and no process is left behind;
the command line refuses a bad --world-size in one line. The pools of ranks are shared by
every test here (one per world size) and closed at the end."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing import resource_tracker

import numpy as np
import pytest

from conformance import resolve
from conformance.cases.case import Case, Group, Param, Step
from conformance.checks import CATALOGUE, CheckFailure, run_check
from conformance.front import cli
from conformance.registry import Sharding
from conformance.report.environment import environment
from conformance.run import distributed, runner
from conformance.run.reference import single_tensor
from conformance.run.target import Target
from conformance.vocabulary import PROFILES
from tests import sharding_mutants
from tests.kill_matrix import PLACES

pytestmark = pytest.mark.skipif(distributed.unusable(Sharding("dtensor")) is not None,
                                reason=f"torch.distributed: {distributed.unusable(Sharding('dtensor'))}")


@pytest.fixture(scope="module", autouse=True)
def pools():
    yield
    distributed.close_all()


def _children() -> list[int]:
    """The live processes this test process started (Linux /proc), zombies and multiprocessing's
    resource tracker aside (it serves the process until it exits)."""
    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    found = []
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{tid}/children") as f:
            found += [int(c) for c in f.read().split()]
    alive = []
    for pid in set(found) - {tracker}:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rpartition(")")[2].split()[0] != "Z":
                    alive.append(pid)
        except OSError:
            pass
    return alive


def _case(spec: str = "adam") -> Case:
    """Float32 params of 21, 5, 1, 0 elements and a 0-d one (an empty shard at 4 ranks), AMSGrad, decay."""
    rng = np.random.default_rng(7)
    shapes = [(7, 3), (5,), (1,), (0,), ()]
    draw = lambda s: rng.standard_normal(s).astype(np.float32).astype(np.float64)
    steps = tuple(Step(tuple(draw(s) for s in shapes)) for _ in range(3))
    group = Group(tuple(range(len(shapes))), lr=0.01, weight_decay=0.1, amsgrad=True)
    return Case(spec, tuple(Param(draw(s)) for s in shapes), (group,), steps)


def _same(a, b) -> bool:
    return a.error is None and b.error is None and all(np.array_equal(x, y) for x, y in zip(a.params, b.params)) \
        and all(np.array_equal(a.state[i][k], b.state[i][k]) for i in range(len(a.params)) for k in b.state[i])


@pytest.mark.parametrize("name", ["zero-eager", "zero-torch-adamw", "fsdp2-torch", "fsdp2-torch-adamw"])
def test_the_sharded_builtins_equal_unsharded_adam_bitwise_at_1_2_and_4(name):
    impl = resolve(name)
    case = _case(impl.spec)
    unsharded = runner.run(single_tensor(impl.spec), case)
    for world in (1, 2, 4):
        sharded = distributed.run(impl, case, "cpu", world)
        assert _same(sharded, unsharded), (name, world, sharded.error)


@pytest.mark.parametrize("mutant", sharding_mutants.MUTANTS, ids=lambda m: m.__name__)
def test_each_sharding_mutant_is_caught_by_its_check(mutant):
    check_id = next(c for c, place in PLACES.items() if place.witness is mutant)
    impl = sharding_mutants.implementation(mutant)
    target = Target(impl, impl.spec, "cpu", PROFILES["quick"], world_size=2)
    with pytest.raises(CheckFailure):
        run_check(CATALOGUE[check_id], target, explain=False)


@pytest.mark.parametrize("cls", sharding_mutants.CORRECT, ids=lambda m: m.__name__)
def test_the_correct_sharded_variants_pass_the_sharded_checks(cls):
    impl = sharding_mutants.implementation(cls)
    target = Target(impl, impl.spec, "cpu", PROFILES["quick"], world_size=2)
    for check_id in ("sharded.world-sizes", "sharded.ranks-agree", "sharded.resharded-resume", "sharded.shard-size"):
        run_check(CATALOGUE[check_id], target, explain=False)


def test_a_distributed_check_says_why_it_skips():
    zero, eager = resolve("zero-eager"), resolve("eager")
    chk = CATALOGUE["sharded.world-sizes"]
    assert "--world-size 2 or more" in chk.unmet(Target(zero, "adam"))
    assert "not a distributed target" in chk.unmet(Target(eager, "adam", world_size=2))
    assert chk.unmet(Target(zero, "adam", world_size=2)) is None
    env = environment(Target(zero, "adam", world_size=2))
    assert (env["world_size"], env["backend"]) == (2, "gloo")


@pytest.mark.parametrize(("args", "says"), [
    (["zero-eager", "--world-size", "9"], "--world-size 9: expected a number of processes from 1 to 8"),
    (["zero-eager", "--world-size", "two"], "--world-size two: expected a number of processes from 1 to 8"),
    (["eager", "--world-size", "2"], "--world-size 2: eager is not a distributed target"),
])
def test_a_bad_world_size_is_one_line_and_exit_2(args, says, capsys):
    assert cli.main(["certify", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("kind", distributed.FAULTS)
def test_a_rank_that_fails_ends_its_case_in_one_line_and_the_next_case_runs(kind):
    impl, case = resolve("zero-eager"), _case()
    outcome = distributed.drive(impl, case, "cpu", 2, fault=(1, kind, 2), limit=8.0)
    error = outcome.trace.error
    assert error and 1 in distributed.named(error) and "\n" not in error, error
    assert distributed.leftovers(outcome.token) == []
    assert _same(distributed.run(impl, case, "cpu", 2), runner.run(single_tensor("adam"), case))


def test_no_process_is_left_behind():
    """Its own pools and faults, so that it counts something wherever xdist runs it."""
    impl, case = resolve("zero-eager"), _case()
    distributed.drive(impl, case, "cpu", 2)
    assert _children(), "no ranks were started: this test would count nothing"
    for world, kind in [(2, "exit"), (4, "raise"), (2, "hang")]:
        assert distributed.drive(impl, case, "cpu", world, fault=(1, kind, 2), limit=4.0).trace.error
    distributed.close_all()
    assert multiprocessing.active_children() == []
    assert _children() == []
