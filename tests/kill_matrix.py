"""The kill matrix: every mutant of the zoo through every check, with the time each took.

    .venv/bin/python -m tests.kill_matrix [--profile quick] [-n WORKERS] [--json PATH] [--device cuda|sharded]

prints the matrix (mutants by checks: the seconds a check took to catch the mutant, `.`
where it passed, `-` where it was skipped), each check's unique kills, the verdict on
each correct-but-different implementation (a false alarm is a failure too), and a
summary: mutants killed, the median and worst time-to-kill (the fastest check that
catches a mutant), and the profile's total time for the zoo. Exit 1 if a mutant
survives or a correct implementation is rejected. With ``--device cuda`` it runs the CUDA
zoo (tests/cuda_mutants.py) on the GPU instead; with ``--device sharded``, the sharding zoo
(tests/sharding_mutants.py) at world size 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import statistics
import sys
import time
import warnings

from conformance.checks import CATALOGUE, CheckFailure, CheckSkipped, run_check
from conformance.registry import Implementation
from conformance.run import pool, preflight
from conformance.run.target import Target
from conformance.vocabulary import PROFILES
from tests import cuda_mutants, mutants, sharding_mutants


@dataclasses.dataclass(frozen=True)
class Place:
    """Why a check is in the catalogue: `witness` is a mutant it catches through its own
    property. With a `reason` the check is a deliberate second line of defence (other
    checks catch its witness too); without one it is the only check that catches it."""

    witness: type
    reason: str = ""


#: Every check earns its place: it is the only one to catch a mutant, or it is a second
#: line of defence for the reason given. tests/test_kill_matrix.py holds each entry true.
PLACES = {
    "parity.trajectory": Place(mutants.EpsInsideSqrt, "the definition of conformance; contract.non-finite runs "
                               "the same comparison on Cases with NaN and inf, parity.golden on pinned Cases, so a "
                               "numeric bug is caught two or three times over, by design"),
    "parity.golden": Place(mutants.TailNotUpdated),
    "contract.in-place": Place(mutants.ParamReplaced),
    "contract.grad-untouched": Place(mutants.GradModifiedInPlace),
    "contract.global-state": Place(mutants.ChangesDefaultDtype),
    "contract.closure": Place(mutants.ClosureUnderNoGrad),
    "contract.state-entries": Place(mutants.StepAsPythonInt),
    "contract.defaults": Place(mutants.DefaultDecayOfAdamW),
    "parity.long-horizon": Place(mutants.BiasCorrectionDroppedLate),
    "contract.invalid-hyperparameters": Place(mutants.InvalidHyperparametersAccepted),
    "contract.sparse-gradients": Place(mutants.SparseGradientDensified),
    "contract.non-finite": Place(mutants.NaNDroppedFromAmsgradMax),
    "contract.accepts-valid": Place(mutants.RejectsZeroLr),
    "contract.no-grad-untouched": Place(mutants.ZeroGradFillsZeros, "states the frozen-parameter contract "
                                        "outright, bitwise, where parity sees it only as a distance and only on Cases "
                                        "that resume a frozen parameter"),
    "contract.state-dict": Place(mutants.CheckpointStoresSqrt, "bitwise resume: a checkpoint that loses bits "
                                 "stays within parity's budget; contract.no-grad-untouched sees it only when a "
                                 "frozen parameter is reloaded"),
    "contract.determinism": Place(mutants.StochasticRounding, "the ground the bitwise checks stand on; "
                                  "contract.state-dict catches the same nondeterminism but would misname it"),
    "invariant.first-step": Place(mutants.NoBiasCorrection, "reference-free: holds without the oracle, so a "
                                  "misreading of Adam shared by the oracle and a target is still caught"),
    "invariant.permutation": Place(mutants.GradReadOneElementOff, "reference-free: the update is elementwise, "
                                   "whatever the oracle says"),
    "invariant.partition": Place(mutants.FactoredSecondMoment, "reference-free: grouping, splitting and "
                                 "ordering tensors (what multi-tensor kernels get wrong) change nothing"),
    "invariant.maximize": Place(mutants.MaximizeIgnored, "reference-free form of maximize's meaning"),
    "invariant.scale": Place(mutants.ZeroEpsBecomesDefault, "reference-free: forces eps = 0, where a hidden "
                             "eps shows; parity.golden catches this one only on its tiny magnitudes"),
    "invariant.step-bound": Place(mutants.Beta2InBfloat16, "reference-free: the Adam paper's bound on any step"),
    "invariant.amsgrad-monotone": Place(mutants.AmsgradMaxFlushedToZero, "reference-free: AMSGrad's defining "
                                        "property; it found Triton's bfloat16 subnormal bug in this project"),
    "invariant.decay-on-zero-grad": Place(mutants.SkipsAllZeroGradients, "reference-free closed form of the "
                                          "decay, the one point where Adam and AdamW part most"),
    "cuda.graph-replay": Place(cuda_mutants.HostStepCounter),
    "cuda.no-host-sync": Place(cuda_mutants.LrBakedIntoGraph, "names the cause: cuda.graph-replay sees a host read "
                               "as a value baked in at capture; this check sees the synchronisation, with no graph"),
    "cuda.no-allocation": Place(cuda_mutants.TemporariesInStep),
    "sharded.ranks-agree": Place(sharding_mutants.StaleReplica),
    "sharded.resharded-resume": Place(sharding_mutants.RestoresByOldPartition),
    "sharded.world-sizes": Place(sharding_mutants.StepPerSubGroup, "the bitwise bar across world sizes; parity sees "
                                 "the same wrong step count at the certified world size, as a distance"),
    "sharded.shard-size": Place(sharding_mutants.PrecisionFromShardSize, "names the cause: parity sees the "
                                "low-precision state as a distance, sharded.world-sizes as a different trajectory"),
    "sharded.rank-failure": Place(sharding_mutants.DaemonOutlivesRank),
}
#: The zoo of each device (and of distributed targets, at world size 2): the mutants, then the
#: correct-but-different implementations.
ZOOS = {"cpu": (mutants.MUTANTS, mutants.CORRECT), "cuda": (cuda_mutants.MUTANTS, cuda_mutants.CORRECT),
        "sharded": (sharding_mutants.MUTANTS, sharding_mutants.CORRECT)}
MODULES = {"cpu": mutants, "cuda": cuda_mutants, "sharded": sharding_mutants}
#: The world size the sharded zoo is certified at.
WORLD_SIZE = 2


def zoo_of(chk) -> str:
    """The zoo whose mutants prove a check: the sharded one, or its device's."""
    return "sharded" if chk.sharded else chk.device or "cpu"


def target_of(cls, profile: str, device: str = "cpu") -> Target:
    """The implementation as certify takes it: a plain class, through the preflight (a CUDA
    mutant with the claims it declares; a sharding one too, at `WORLD_SIZE` on the CPU)."""
    if device == "sharded":
        impl = sharding_mutants.implementation(cls)
        target = Target(impl, impl.spec, "cpu", PROFILES[profile], world_size=WORLD_SIZE)
        return preflight.run(target).apply(target)
    if device == "cuda":
        impl = cuda_mutants.implementation(cls)
    else:
        impl = Implementation.from_callable(cls.__name__, mutants.factory(cls), spec=mutants.spec_of(cls),
                                            description=(cls.__doc__ or "").strip(),
                                            state_precision=getattr(cls, "STATE_PRECISION", None))
    target = Target(impl, impl.spec, device, PROFILES[profile])
    return preflight.run(target).apply(target)


def row(cls, profile: str = "quick", device: str = "cpu", checks=None,
        first_kill: bool = False) -> dict[str, tuple[str, float, str]]:
    """check id -> (outcome: killed | passed | skipped, seconds, message) for one implementation:
    every check, or those in `checks`; with `first_kill`, up to the first that kills it."""
    target = target_of(cls, profile, device)
    out = {}
    for check_id, chk in CATALOGUE.items():
        if (checks is not None and check_id not in checks) or (first_kill and killers(out)):
            continue
        if chk.unmet(target):
            out[check_id] = ("skipped", 0.0, chk.unmet(target))
            continue
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():  # torch warns on the sparse and non-finite inputs, on purpose
                warnings.simplefilter("ignore")
                run_check(chk, target, explain=False)  # a verdict is all the matrix needs
            outcome, message = "passed", ""
        except CheckFailure as failure:
            outcome, message = "killed", str(failure).splitlines()[0]
        except CheckSkipped as e:
            outcome, message = "skipped", str(e)
        except Exception as e:  # a mutant that breaks the machinery is caught all the same
            outcome, message = "killed", f"error: {type(e).__name__}: {e}"
        out[check_id] = (outcome, time.perf_counter() - start, message)
    if device == "sharded":  # the next implementation starts on fresh ranks
        pool.close_all()
    return out


def by_property(message: str) -> bool:
    """Whether a kill came from the check's property, not from a run that raised."""
    return not message.startswith(("error:", "the run raised")) and "a run raised" not in message


def killers(cells: dict) -> set[str]:
    return {c for c, (outcome, _, _) in cells.items() if outcome == "killed"}


def _row_by_name(args):
    name, profile, device = args
    return name, row(getattr(MODULES[device], name), profile, device)


def matrix(classes, profile: str = "quick", workers: int = 1, device: str = "cpu") -> dict[str, dict]:
    jobs = [(cls.__name__, profile, device) for cls in classes]
    if workers <= 1:
        return dict(map(_row_by_name, jobs))
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return dict(pool.map(_row_by_name, jobs))


def time_to_kill(cells: dict) -> float | None:
    kills = [seconds for outcome, seconds, _ in cells.values() if outcome == "killed"]
    return min(kills) if kills else None


def unique_kills(result: dict) -> dict[str, list[str]]:
    """check id -> the mutants only it kills."""
    unique = {check_id: [] for check_id in CATALOGUE}
    for name, cells in result.items():
        if len(killers(cells)) == 1:
            unique[killers(cells).pop()].append(name)
    return unique


def render(result: dict, correct: dict) -> str:
    checks = list(CATALOGUE)
    legend = [f"  c{k:02d} {check_id}" for k, check_id in enumerate(checks)]
    width = max(len(n) for n in [*result, *correct])
    head = " " * width + " " + " ".join(f"c{k:02d}" for k in range(len(checks))) + "  to kill"
    lines = ["checks:", *legend, "", head]
    for name, cells in result.items():
        marks = []
        for check_id in checks:
            outcome, seconds, _ = cells[check_id]
            marks.append(f"{seconds:3.0f}s" if outcome == "killed" and seconds >= 0.5 else
                         " <1s" if outcome == "killed" else "   ." if outcome == "passed" else "   -")
        ttk = time_to_kill(cells)
        lines.append(f"{name:{width}s} " + " ".join(marks) + f"  {'SURVIVED' if ttk is None else f'{ttk:.2f} s'}")
    lines += ["", "unique kills (mutants only that check catches), else why the check is a second line:"]
    for check_id, names in unique_kills(result).items():
        place, zoo = PLACES[check_id], zoo_of(CATALOGUE[check_id])
        why = (f"second line: {place.reason}" if place.reason else
               f"{zoo.upper()} only: see --device {zoo}" if zoo != "cpu" else "no unique kill in this zoo")
        lines.append(f"  {check_id:34s} {', '.join(names) or why}")
    lines += ["", "correct but different (each must be certified):"]
    for name, cells in correct.items():
        rejected = sorted(killers(cells))
        lines.append(f"  {name:{width}s} {'FALSE ALARM: ' + ', '.join(rejected) if rejected else 'certified'}")
    return "\n".join(lines)


def summary(result: dict, correct: dict, seconds: float) -> str:
    kills = [time_to_kill(cells) for cells in result.values()]
    caught = [k for k in kills if k is not None]
    total = sum(s for cells in result.values() for _, s, _ in cells.values())
    certified = sum(not killers(cells) for cells in correct.values())
    return (f"{len(caught)} of {len(kills)} mutants killed; time to kill: median {statistics.median(caught):.2f} s, "
            f"worst {max(caught):.2f} s; every check on every mutant: {total:.0f} s of check time; "
            f"{certified} of {len(correct)} correct variants certified ({seconds:.0f} s wall in all)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.kill_matrix", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="quick")
    parser.add_argument("-n", dest="workers", type=int, default=1)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--device", choices=list(ZOOS), default="cpu")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    zoo, right = ZOOS[args.device]
    everything = matrix(zoo + right, args.profile, args.workers, args.device)
    result = {m.__name__: everything[m.__name__] for m in zoo}
    correct = {c.__name__: everything[c.__name__] for c in right}
    print(render(result, correct))
    print("\n" + summary(result, correct, time.perf_counter() - start))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({name: {c: list(v) for c, v in cells.items()} for name, cells in everything.items()}, f, indent=1)
    survived = any(time_to_kill(cells) is None for cells in result.values())
    return 1 if survived or any(killers(cells) for cells in correct.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
