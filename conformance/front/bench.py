"""``adam-conformance bench``: how fast targets step, beside torch's paths and the machine's
in-place memory bandwidth, all measured in one run.

For each device, parameter set and dtype, every target gets its own copy of the same
parameters and gradients, is warmed up, and is sampled round-robin with the others and with
the in-place kernels (how: `conformance.run.timing`; the figures, the table, the chart and
the JSON: `conformance.report.bench`). torch's for-loop, foreach and fused paths are always
measured alongside. Targets are called with lr 1e-3, betas (0.9, 0.999), eps 1e-8 and
weight_decay 0, so Adam and AdamW forms do the same work.

Before timing, each target runs a quick check, not a certificate: the suite's own
``parity.golden`` at the quick profile (every golden trace it can run, against torch's error
budget). A target that is not conformant is still timed and marked; one whose step raises is
listed with why. A default target that runs under an interpreter here (Triton without a
usable GPU) is left out, in one line on stderr and in the JSON; named, it is timed. Exit 0
once measured; 2 on bad input.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import torch

from conformance.checks import CATALOGUE, CheckFailure, CheckSkipped, run_check
from conformance.front.options import build_target, writable
from conformance.registry import TargetError
from conformance.report import bench as report
from conformance.run import timing, torch_features
from conformance.run.target import Target
from conformance.run.timing import Contender

DEFAULT_TARGETS = ("eager", "foreach", "compiled", "triton", "torch", "torch-foreach", "torch-fused")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclasses.dataclass(frozen=True)
class Options:
    """What the command line asks of bench (`conformance.front.cli` builds it)."""

    targets: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    amsgrad: bool = False
    warmup: int = 3
    steps: int | None = None  # steps per sample; None: enough for timing.MIN_SAMPLE_S
    repeats: int = 15
    max_seconds: float = 60.0
    threads: int | None = None  # None: torch's default, what users run with
    json: str | None = None
    png: str | None = None


def bench(opts: Options) -> int:
    """Measure, print the table (progress on stderr), write --json and --png. Exit 0."""
    sets, dtypes = _validated(opts)
    contenders, left_out = _contenders(opts)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    load_before = os.getloadavg()
    groups = []
    for device, those in contenders.items():
        for c in those:
            if c.target is not None:
                _say(f"{device}: quick check of {c.name}")
                c.check, c.detail = quick_check(c.target)
        groups += [_group(those, timing.SETS[s], DTYPES[d], device, opts) for s in sets for d in dtypes]
    settings = dict(warmup=opts.warmup, steps_per_sample=opts.steps, repeats=opts.repeats,
                    max_seconds=opts.max_seconds, amsgrad=opts.amsgrad)
    _publish(report.document(settings, groups, contenders, left_out, load_before, os.getloadavg()), opts)
    return 0


def _say(line: str) -> None:
    """A line of progress on stderr."""
    print(f"bench: {line}", file=sys.stderr, flush=True)


def _validated(opts: Options) -> tuple[list[str], list[str]]:
    """The sets and dtypes to measure (all by default); TargetError (one line) for bad input."""
    sets, dtypes = _chosen(opts.sets, timing.SETS, "--set"), _chosen(opts.dtypes, DTYPES, "--dtype")
    if opts.png and report.plot_unavailable():
        raise TargetError(report.plot_unavailable())
    writable(opts.json, "--json")
    writable(opts.png, "--png")
    if "cuda" in opts.devices and torch_features.cuda_unusable():
        raise TargetError(f"--device cuda: {torch_features.cuda_unusable()}")
    return sets, dtypes


def _chosen(names: tuple[str, ...], known: dict, option: str) -> list[str]:
    """`names` without repeats (all of `known` if none); TargetError naming an unknown one."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise TargetError(f"unknown {option} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return list(dict.fromkeys(names)) or list(known)


def _contenders(opts: Options) -> tuple[dict[str, list[Contender]], list[dict]]:
    """Each device's contenders, the targets named (or the defaults) and torch's paths; and those
    left out: a default target that runs interpreted here, one line on stderr saying so."""
    names = list(dict.fromkeys([*(opts.targets or DEFAULT_TARGETS), *report.BASELINES]))
    contenders: dict[str, list[Contender]] = {device: [] for device in opts.devices}
    left_out = []
    for device, those in contenders.items():
        for name in names:
            c = _contender(name, device, explicit=name in opts.targets)
            if c.interpreted and name not in opts.targets:
                _say(f"{device}: left out {name}, which runs interpreted here ({c.interpreted}); name it to time it")
                left_out.append(dict(target=name, device=device, why=f"runs interpreted here: {c.interpreted}"))
                continue
            if c.interpreted:
                _say(f"{device}: {name} runs interpreted here ({c.interpreted}); timed because named, which can "
                     "take many minutes on the larger sets")
            those.append(c)
    return contenders, left_out


def _contender(name: str, device: str, explicit: bool) -> Contender:
    """A named target is resolved as certify resolves it (exit 2 if it cannot be); a default one
    that cannot load here (Triton not installed, say) is listed as such."""
    try:
        target = build_target(name, device=device, profile="quick")
    except TargetError as e:
        if explicit:
            raise
        return Contender(name, None, "cannot load", str(e))
    return Contender(name, target, "not checked", "", interpreted=interpreted(target))


def interpreted(target: Target) -> str | None:
    """Why `target` runs under an interpreter here (None: it runs natively): its registry entry's
    `how` says so (the built-in triton's names Triton's interpreter where CUDA is unusable or
    TRITON_INTERPRET=1), or its factory's module uses Triton and TRITON_INTERPRET=1."""
    how = target.impl.describe_how()
    if "interpreter" in how.lower():
        return how
    module = sys.modules.get(getattr(target.impl.factory, "__module__", None) or "")
    if os.environ.get("TRITON_INTERPRET") == "1" and module is not None and "triton" in vars(module):
        return "TRITON_INTERPRET=1: Triton runs its kernels in its interpreter"
    return None


def quick_check(target: Target) -> tuple[str, str]:
    """(status, detail): the suite's parity.golden at the target's profile, the first line of a failure."""
    try:
        evidence = run_check(CATALOGUE["parity.golden"], target, explain=False)
    except CheckSkipped as e:
        return "not checked", f"parity.golden: {e}"
    except CheckFailure as e:
        head = str(e).strip().splitlines()[0]
        return ("raised" if e.severity == "api" else "not conformant"), f"parity.golden: {head}"
    except Exception as e:  # a target the runner cannot drive
        return "raised", f"parity.golden: {timing.one_line(e)}"
    return "ok", f"parity.golden: {evidence.examples} golden traces within torch's error budget"


def _group(contenders: list[Contender], param_set: timing.ParamSet, dtype: torch.dtype, device: str,
           opts: Options) -> dict:
    """One (device, set, dtype) measured, progress on stderr, and its figures."""
    where = f"{device} {param_set.name} {str(dtype).removeprefix('torch.')}"
    entries = [c.entry(param_set, dtype, device, opts.amsgrad) for c in contenders]
    streams = timing.measure(entries, param_set.numel, dtype, device, warmup=opts.warmup, steps=opts.steps,
                             repeats=opts.repeats, max_seconds=opts.max_seconds,
                             say=lambda line: _say(f"{where}: {line}"))
    return report.group(contenders, entries, streams, param_set, dtype, device, opts.amsgrad)


def _publish(doc: dict, opts: Options) -> None:
    """Print the table; write --json and --png, saying where."""
    print(report.render(doc))
    if opts.json:
        Path(opts.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"JSON: {opts.json}")
    if opts.png:
        report.plot(doc, opts.png)
        print(f"chart: {opts.png}")
