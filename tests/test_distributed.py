"""Sharded optimizers across processes: the ZeRO and FSDP2 built-ins equal unsharded Adam
bitwise at world sizes 1, 2 and 4; a rank that raises, hangs or dies fails its Case with one
line naming it, and no process is left behind; the command line refuses a bad --world-size
in one line. (That each sharding mutant is caught by its check, and only by it where
tests/kill_matrix.py says so, is tests/test_kill_matrix.py's sharded rows.) The pools of
ranks are shared by every test here (one per world size) and closed at the end."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import runpy
import subprocess
import sys
import time
from multiprocessing import forkserver, resource_tracker
from pathlib import Path

import numpy as np
import pytest
import torch

from conformance import resolve
from conformance.cases.case import Case, Group, Param, Step
from conformance.checks import CATALOGUE, CheckFailure, run_check
from conformance.front import cli
from conformance.front.certify import CheckResult
from conformance.registry import Sharding
from conformance.report import records, reproducer, rerun
from conformance.report.environment import environment
from conformance.run import distributed, pool, processes, runner
from conformance.run.rank import FAULTS
from conformance.run.reference import single_tensor
from conformance.run.target import Target
from tests import sharding_mutants
from tests.kill_matrix import PLACES, target_of

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(distributed.unusable(Sharding("dtensor")) is not None,
                                reason=f"torch.distributed: {distributed.unusable(Sharding('dtensor'))}")


@pytest.fixture(scope="module", autouse=True)
def pools():
    yield
    pool.close_all()


def _children() -> list[int]:
    """The live processes this test process started, and theirs: the ranks are the fork
    server's children. multiprocessing's resource tracker and fork server themselves aside
    (each serves the process until it exits)."""
    helpers = {getattr(resource_tracker._resource_tracker, "_pid", None),
               getattr(forkserver._forkserver, "_forkserver_pid", None)}
    return [pid for pid in processes.descendants([os.getpid()]) if pid not in helpers and processes.alive(pid)]


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


def test_a_distributed_check_says_why_it_skips():
    zero, eager = resolve("zero-eager"), resolve("eager")
    chk = CATALOGUE["sharded.world-sizes"]
    assert "--world-size 2 or more" in chk.unmet(Target(zero, "adam"))
    assert "not a distributed target" in chk.unmet(Target(eager, "adam", world_size=2))
    assert chk.unmet(Target(zero, "adam", world_size=2)) is None
    env = environment(Target(zero, "adam", world_size=2))
    assert (env["world_size"], env["backend"]) == (2, "gloo")


@pytest.mark.parametrize(("args", "says"), [
    (["zero-eager", "--world-size", "9"], "argument --world-size: expected a number of processes from 1 to 8, not '9'"),
    (["zero-eager", "--world-size", "two"], "argument --world-size: expected a number of processes from 1 to 8, "
                                            "not 'two'"),
    (["eager", "--world-size", "2"], "--world-size 2: eager is not a distributed target"),
])
def test_a_bad_world_size_is_said_in_its_last_line_and_exit_2(args, says, capsys):
    """A number out of range is argparse's usage error (the usage, then one line); a target
    that is not distributed, the suite's one line."""
    try:
        code = cli.main(["certify", *args])
    except SystemExit as e:  # argparse's own exit
        code = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and says in err[-1], err


# A hanging rank is found at the limit: 8 s, slow.
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow if k == "hang" else ()) for k in FAULTS])
def test_a_rank_that_fails_ends_its_case_in_one_line_and_the_next_case_runs(kind):
    """A rank that raises leaves its peer waiting on it in torch.distributed: that peer is found
    deadlocked within a second or two of the error, not at the end of the others' grace."""
    impl, case = resolve("zero-eager"), _case()
    distributed.drive(impl, case, "cpu", 2)  # the ranks up before the clock
    started = time.monotonic()
    outcome = distributed.drive(impl, case, "cpu", 2, fault=(1, kind, 2), limit=8.0)
    error = outcome.trace.error
    assert error and outcome.failed[0] == 1 and "rank 1" in error and "\n" not in error, error
    if kind == "raise":
        assert "rank 0 waited in torch.distributed" in error and time.monotonic() - started < pool.GRACE, error
    assert pool.leftovers(outcome.token) == []
    assert _same(distributed.run(impl, case, "cpu", 2), runner.run(single_tensor("adam"), case))


@pytest.mark.slow  # pools at 2 and 4 ranks, and a hang waited out: ~10 s
def test_no_process_is_left_behind():
    """Its own pools and faults, so that it counts something wherever xdist runs it."""
    impl, case = resolve("zero-eager"), _case()
    distributed.drive(impl, case, "cpu", 2)
    assert _children(), "no ranks were started: this test would count nothing"
    for world, kind in [(2, "exit"), (4, "raise"), (2, "hang")]:
        assert distributed.drive(impl, case, "cpu", world, fault=(1, kind, 2), limit=4.0).trace.error
    pool.close_all()
    assert multiprocessing.active_children() == []
    assert _children() == []


@pytest.mark.slow  # waits out the hang
def test_a_rank_that_hangs_in_a_collective_is_named_with_its_step_and_where_it_waits():
    """Found within seconds (every silent rank waits in torch.distributed), never at the check's limit."""
    impl, case = sharding_mutants.SkipsStepWithoutGrads.TARGET, _case()
    steps = list(case.steps)
    steps[1] = Step((None, *steps[1].grads[1:]))  # the last rank skips step 2: the others wait in its broadcast
    case = dataclasses.replace(case, steps=tuple(steps))
    started = time.monotonic()
    with pytest.raises(distributed.Hung) as hung:
        distributed.run(impl, case, "cpu", 2)
    said = str(hung.value)
    assert "(deadlocked)" in said and "rank 0 last said it began step 3, waiting in torch.distributed" in said, said
    assert "called from sharding_mutants.py" in said and "\n" not in said, said
    assert len(hung.value.case.steps) == 3 and time.monotonic() - started < 20


def test_a_state_tensor_a_rank_lacks_is_reported_missing_not_dropped():
    """A DTensor target whose rank with an empty shard keeps no state: the Trace says so."""
    impl = resolve("fsdp2-torch")
    shapes = [(1, 5), (6,)]  # at 2 ranks, param 0's second shard is empty
    rng = np.random.default_rng(3)
    draw = lambda s: rng.standard_normal(s).astype(np.float32).astype(np.float64)
    case = Case("adam", tuple(Param(draw(s)) for s in shapes), (Group((0, 1), amsgrad=True),),
                tuple(Step(tuple(draw(s) for s in shapes)) for _ in range(2)))
    trace = distributed.run(dataclasses.replace(impl, factory=_SkipsEmptyShards), case, "cpu", 2)
    missing = [o for o in trace.observations if o.kind == "state-missing"]
    assert missing and missing[0].param == 0 and "rank 1 holds no" in missing[0].detail, trace.observations
    assert "exp_avg" not in trace.state[0] and "exp_avg" in trace.state[1]


class _SkipsEmptyShards(torch.optim.Adam):
    """Adam over DTensors that leaves out the parameters whose shard on this rank is empty."""

    def step(self, closure=None):
        held = {p: p.grad for g in self.param_groups for p in g["params"] if p.to_local().numel() == 0}
        for p in held:
            p.grad = None
        try:
            return super().step(closure)
        finally:
            for p, grad in held.items():
                p.grad = grad


#: The sharding zoo, each with a check that catches it (the witnessed ones: tests/kill_matrix.py).
WITNESSED = {place.witness: check_id for check_id, place in PLACES.items() if place.witness in sharding_mutants.MUTANTS}
WITNESSED[sharding_mutants.SkipsStepWithoutGrads] = "parity.trajectory"


@pytest.mark.e2e
@pytest.mark.zoo
@pytest.mark.parametrize("cls", list(WITNESSED), ids=lambda c: c.__name__)
def test_every_sharding_mutants_reproducer_exits_1_while_its_bug_is_there(cls, tmp_path):
    """It starts its ranks (a pool on gloo, at the world size of the failure) and reruns the
    failed property on the minimal case: never "now holds" on a bug that is still there."""
    target = target_of(cls, "quick", "sharded")
    with pytest.raises(CheckFailure) as caught:
        run_check(CATALOGUE[WITNESSED[cls]], target, explain=False)
    failure = json.loads(records.failure_record(caught.value))
    assert failure["rerun"] is not None, failure["message"]
    result = CheckResult(WITNESSED[cls], "failed", failure=failure)
    path = reproducer.write(tmp_path, f"tests.sharding_mutants:{cls.__name__}.TARGET", target, result)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1 and "the target still FAILS" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.zoo
def test_a_sharding_mutants_failure_reruns_in_process_and_still_fails(tmp_path, capsys, monkeypatch):
    """The fast inner loop's case of the test above (whose reproducers run end to end): the
    sharded check fails on its witness, and the reproducer it writes, loaded here and handed to
    `rerun.main` as its script does, starts the ranks again and says the target still fails."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # rerun puts the working directory on it
    cls = sharding_mutants.RestoresByOldPartition
    target = target_of(cls, "quick", "sharded")
    with pytest.raises(CheckFailure) as caught:
        run_check(CATALOGUE[WITNESSED[cls]], target, explain=False)
    failure = json.loads(records.failure_record(caught.value))
    result = CheckResult(WITNESSED[cls], "failed", failure=failure)
    path = reproducer.write(tmp_path, f"tests.sharding_mutants:{cls.__name__}.TARGET", target, result)
    record = runpy.run_path(str(path), run_name="reproducer")["RECORD"]  # not __main__: its body is not run
    assert (record["world_size"], record["rerun"]["name"]) == (target.world_size, failure["rerun"]["name"])
    capsys.readouterr()
    assert rerun.main(record) == 1
    out = capsys.readouterr().out
    assert f"rerunning {record['rerun']['name']} on" in out and "the target still FAILS" in out, out
