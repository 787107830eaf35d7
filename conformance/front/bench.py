"""``adam-conformance bench``: how fast targets step, beside torch's paths and the machine's
in-place memory bandwidth, all measured in one run.

For each device, parameter set and dtype, every target gets its own copy of the same
parameters and gradients, is warmed up, and is sampled round-robin with the others and with
the in-place kernels (how: `conformance.run.timing`). A row gives the step time (min,
median, IQR), the effective bandwidth (bytes an Adam step moves per element, times the
elements, over the median), its fraction of the best in-place kernel's rate, the extra peak
memory of one step, and the median's ratio to torch's for-loop, foreach and fused paths,
which are always measured alongside. Targets are called with lr 1e-3, betas (0.9, 0.999),
eps 1e-8 and weight_decay 0, so Adam and AdamW forms do the same work.

Before timing, each target runs a quick check, not a certificate: the golden scenarios of
its spec (float32 and bfloat16; AMSGrad with --amsgrad) judged against torch's error
budget, as ``parity.golden`` judges them. A target that is not conformant is still timed
and marked; one whose step raises is listed with why. Exit 0 once measured; 2 on bad input.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from pathlib import Path

import torch

from conformance.checks.assertions import within_budget
from conformance.checks.catalogue import CheckFailure
from conformance.front.options import build_target, writable
from conformance.registry import TargetError
from conformance.run import timing, torch_features
from conformance.run.target import Target
from conformance.truth import golden

DEFAULT_TARGETS = ("eager", "foreach", "compiled", "triton", "torch", "torch-foreach", "torch-fused")
#: torch's paths every row is compared with (the Adam forms: with weight_decay 0 AdamW is the same work).
BASELINES = ("torch", "torch-foreach", "torch-fused")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
CHECK_SCENARIOS = {"adam": ("basic-adam", "eps-comparable-to-gradients", "bfloat16-values"),
                   "adamw": ("basic-adamw", "large-lr-and-decay-adamw", "bfloat16-adamw-long-decay")}
AMSGRAD_SCENARIOS = {"adam": "amsgrad-shrinking-gradients", "adamw": "amsgrad-adamw-shrinking"}
PLOT_HINT = "pip install 'adam-conformance[plot]'"


@dataclasses.dataclass(frozen=True)
class Options:
    targets: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    dtypes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ("cpu",)
    amsgrad: bool = False
    warmup: int = 3
    steps: int | None = None  # steps per sample; None: enough for MIN_SAMPLE_S
    repeats: int = 15
    max_seconds: float = 60.0
    threads: int | None = None  # None: torch's default, what users run with
    json: str | None = None
    png: str | None = None


MIN_SAMPLE_S = 0.02


@dataclasses.dataclass
class Contender:
    """A target on one device and what its quick check said."""

    name: str
    target: Target | None
    check: str  # ok | not conformant | raised | not checked | cannot load
    detail: str

    def entry(self, param_set: timing.ParamSet, dtype: torch.dtype, device: str, amsgrad: bool) -> timing.Entry:
        """An Entry stepping this target's optimizer over a fresh copy of the set."""
        if self.target is None:
            return timing.Entry(self.name, None, error=self.detail)
        impl = self.target.impl
        if amsgrad and "amsgrad" not in impl.claims:
            return timing.Entry(self.name, None, error="does not claim amsgrad")
        kw = {k: v for k, v in (("weight_decay", 0.0), ("amsgrad", amsgrad)) if k in impl.claims}
        try:
            opt = self.target.optimizer(timing.make_params(param_set, dtype, device), **kw)
            return timing.Entry(self.name, opt.step)
        except Exception as e:  # listed with why, as a target whose step raises
            return timing.Entry(self.name, None, error=f"constructor raised {timing.one_line(e)}")


def bench(opts: Options) -> int:
    """Measure, print the table (progress on stderr), write --json and --png. Exit 0."""
    sets, dtypes = _chosen(opts.sets, timing.SETS, "--set"), _chosen(opts.dtypes, DTYPES, "--dtype")
    if opts.png:
        _need_matplotlib()
    writable(opts.json, "--json")
    writable(opts.png, "--png")
    if "cuda" in opts.devices and torch_features.cuda_unusable():
        raise TargetError(f"--device cuda: {torch_features.cuda_unusable()}")
    names = list(dict.fromkeys([*(opts.targets or DEFAULT_TARGETS), *BASELINES]))
    contenders = {device: [_contender(name, device, explicit=name in opts.targets) for name in names]
                  for device in opts.devices}
    if opts.threads:
        torch.set_num_threads(opts.threads)
    say = lambda line: print(f"bench: {line}", file=sys.stderr, flush=True)
    load_before = os.getloadavg()
    groups = []
    for device, those in contenders.items():
        for c in those:
            if c.target is not None:
                say(f"{device}: quick check of {c.name}")
                c.check, c.detail = quick_check(c.target, opts.amsgrad)
        for set_name in sets:
            for dtype_name in dtypes:
                where = f"{device} {set_name} {dtype_name}"
                groups.append(measure(those, timing.SETS[set_name], dtype_name, device, opts,
                                      lambda line, w=where: say(f"{w}: {line}")))
    doc = document(opts, groups, contenders, load_before, os.getloadavg())
    print(render(doc))
    if opts.json:
        Path(opts.json).write_text(json.dumps(doc, indent=1) + "\n")
        print(f"JSON: {opts.json}")
    if opts.png:
        plot(doc, opts.png)
        print(f"chart: {opts.png}")
    return 0


def _chosen(names: tuple[str, ...], known: dict, option: str) -> list[str]:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise TargetError(f"unknown {option} {', '.join(map(repr, unknown))}; known: {', '.join(known)}")
    return list(dict.fromkeys(names)) or list(known)


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise TargetError(f"--png needs matplotlib, which is not installed: {PLOT_HINT}") from None


def _contender(name: str, device: str, explicit: bool) -> Contender:
    """A named target is resolved as certify resolves it (exit 2 if it cannot be); a default one
    that cannot load here (Triton not installed, say) is listed as such."""
    try:
        return Contender(name, build_target(name, device=device), "ok", "")
    except TargetError as e:
        if explicit:
            raise
        return Contender(name, None, "cannot load", str(e))


def quick_check(target: Target, amsgrad: bool) -> tuple[str, str]:
    """(status, detail): the spec's golden scenarios judged against torch's error budget."""
    names = CHECK_SCENARIOS[target.spec] + ((AMSGRAD_SCENARIOS[target.spec],) if amsgrad else ())
    judged = []
    for name in names:
        try:
            _, case, truth = golden.read_scenario(golden.DEFAULT_DIR, name)
            if not target.accepts(case):
                continue
            within_budget(target, case, truth)
        except CheckFailure as e:
            head = str(e).strip().splitlines()[0]
            return ("raised" if e.severity == "api" else "not conformant"), f"golden scenario {name}: {head}"
        except Exception as e:  # a target the runner cannot drive
            return "raised", f"golden scenario {name}: {timing.one_line(e)}"
        judged.append(name)
    if not judged:
        return "not checked", "claims none of the features of the golden scenarios used"
    return "ok", f"within torch's error budget on {', '.join(judged)}"


def measure(contenders: list[Contender], param_set: timing.ParamSet, dtype_name: str, device: str, opts: Options,
            say) -> dict:
    """One (device, set, dtype): every contender and the in-place kernels sampled round-robin."""
    dtype = DTYPES[dtype_name]
    entries = [c.entry(param_set, dtype, device, opts.amsgrad) for c in contenders]
    streams = timing.stream_entries(param_set.numel, dtype, device)
    timed = entries + [e for e, _ in streams.values()]
    for k, entry in enumerate(timed):
        if entry.error is None:
            say(f"warming up {entry.name} ({k + 1}/{len(timed)})")
            timing.warm_up(entry, opts.warmup, number=opts.steps, min_sample_s=MIN_SAMPLE_S,
                           budget_s=opts.max_seconds, repeats=opts.repeats)
    rounds = max((e.wanted for e in timed if e.error is None), default=0)
    say(f"sampling {rounds} rounds round-robin over {sum(e.error is None for e in timed)} entries")
    timing.sample_round_robin(timed)
    for entry in entries:
        if entry.error is None and entry.per_call <= opts.max_seconds:
            try:
                entry.extra_peak = timing.extra_peak_bytes(entry.call, device)
            except Exception as e:
                entry.error = f"step raised {timing.one_line(e)} while its memory was measured"
    per_element = timing.step_bytes(dtype, opts.amsgrad)
    in_place = {name: _rate(e, bpe * param_set.numel) for name, (e, bpe) in streams.items()}
    best = max((r["gbps"] for r in in_place.values() if r["gbps"]), default=None)
    medians = {e.name: e.stats()["median"] for e in entries if e.stats()}
    rows = []
    for c, entry in zip(contenders, entries):
        stats = entry.stats()
        gbps = per_element * param_set.numel / stats["median"] / 1e9 if stats else None
        rows.append(dict(
            target=c.name, spec=c.target.spec if c.target else None, check=c.check, error=entry.error,
            samples=len(entry.samples), steps_per_sample=entry.number if stats else None,
            min_s=stats and stats["min"], median_s=stats and stats["median"], iqr_s=stats and stats["iqr"],
            gbps=gbps, fraction_of_in_place=gbps / best if gbps and best else None,
            extra_peak_bytes=entry.extra_peak,
            ratios={b: stats["median"] / medians[b] if stats and b in medians else None for b in BASELINES},
        ))
    return dict(device=device, set=param_set.name, description=param_set.description, dtype=dtype_name,
                tensors=len(param_set.shapes), numel=param_set.numel, bytes_per_element=per_element,
                bytes_per_step=per_element * param_set.numel, in_place=in_place, in_place_gbps=best, rows=rows)


def _rate(entry: timing.Entry, nbytes: int) -> dict:
    stats = entry.stats()
    return dict(median_s=stats and stats["median"], gbps=nbytes / stats["median"] / 1e9 if stats else None,
                error=entry.error)


def document(opts: Options, groups: list[dict], contenders: dict[str, list[Contender]], load_before,
             load_after) -> dict:
    """The --json document (schema adam-conformance-bench/1)."""
    env = dict(python=platform.python_version(), platform=platform.platform(), torch=torch.__version__,
               cpu=_cpu_model(), threads=torch.get_num_threads(),
               load_average=dict(before=list(load_before), after=list(load_after)))
    if "cuda" in opts.devices:
        env["gpu"] = torch.cuda.get_device_name()
    settings = dict(warmup=opts.warmup, steps_per_sample=opts.steps, repeats=opts.repeats,
                    max_seconds=opts.max_seconds, amsgrad=opts.amsgrad, baselines=list(BASELINES))
    targets = [dict(target=c.name, device=device, spec=c.target.spec if c.target else None,
                    description=c.target.impl.description if c.target else None, check=c.check, detail=c.detail)
               for device, those in contenders.items() for c in those]
    return dict(schema="adam-conformance-bench/1", environment=env, settings=settings, targets=targets,
                results=groups)


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


# -- the terminal table ---------------------------------------------------------------------

COLUMNS = ("target", "median", "min", "IQR", "GB/s", "of in-place", "extra peak", "×torch", "×foreach", "×fused",
           "n", "check")


def render(doc: dict) -> str:
    """The aligned tables, one per (device, set, dtype), then what each mark means."""
    env = doc["environment"]
    load = env["load_average"]
    out = [f"adam-conformance bench: torch {env['torch']}, {env['cpu']}, threads {env['threads']}"
           + (f", {env['gpu']}" if "gpu" in env else "")
           + f"; load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after"]
    notes: dict[str, str] = {}
    checks = {(t["target"], t["device"]): t for t in doc["targets"]}
    for group in doc["results"]:
        in_place = ", ".join(f"{k} {_num(r['gbps'])} GB/s" for k, r in group["in_place"].items())
        out += ["", f"{group['device']} · {group['set']} · {group['dtype']}: {group['tensors']} tensors, "
                f"{group['numel'] / 1e6:.2f}M elements ({group['description']})",
                f"  {group['bytes_per_element']} B/element, {_bytes(group['bytes_per_step'])} a step; "
                f"in place: {in_place}"]
        rows = sorted(group["rows"], key=lambda r: (r["median_s"] is None, r["median_s"] or 0))
        cells = [COLUMNS] + [_cells(r, checks[(r["target"], group["device"])], group, notes) for r in rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
        for row in cells:
            out.append("  " + "  ".join(c.ljust(w) if i in (0, len(COLUMNS) - 1) else c.rjust(w)
                                        for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    if notes:
        out += ["", "marks: the quick check (golden scenarios against torch's error budget, not a certificate), "
                "and steps that failed:"]
        out += [f"  {key}: {why}" for key, why in notes.items()]
    out += ["", "median, min, IQR: time per step. GB/s: the bytes an Adam step moves over the median; of in-place:",
            "that over the best in-place kernel's. extra peak: what one step allocates at its peak. ×torch, ×foreach,",
            "×fused: the median over that torch path's (above 1: slower). n: samples."]
    return "\n".join(out)


def _cells(row: dict, check: dict, group: dict, notes: dict) -> tuple[str, ...]:
    """A row's cells; its marks explained in `notes`."""
    status = check["check"]
    marks = [] if status == "ok" else [status.upper()]
    if status != "ok":
        notes[f"{row['target']} ({group['device']})"] = check["detail"]
    if row["error"] and status != "cannot load":
        marks.append("FAILED" if row["samples"] else "NOT TIMED")
        notes[f"{row['target']} ({group['device']} {group['set']} {group['dtype']})"] = row["error"]
    return (row["target"], _time(row["median_s"]), _time(row["min_s"]), _time(row["iqr_s"]), _num(row["gbps"]),
            _num(row["fraction_of_in_place"] and 100 * row["fraction_of_in_place"], "%"),
            _bytes(row["extra_peak_bytes"]), *(_num(row["ratios"][b], "x") for b in BASELINES),
            str(row["samples"]), ", ".join(marks) or "ok")


def _num(x: float | None, unit: str = "") -> str:
    """Three significant figures, or all the digits before the point."""
    return "-" if x is None else f"{x:.0f}{unit}" if x >= 100 else f"{x:#.3g}{unit}"


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale or unit == "µs":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


# -- the chart ------------------------------------------------------------------------------


def plot(doc: dict, path: str) -> None:
    """Effective GB/s per target (log scale), one panel per (device, set, dtype), the in-place rate dashed;
    a target whose quick check failed in orange, its mark beside its name."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    groups = doc["results"]
    checks = {(t["target"], t["device"]): t["check"] for t in doc["targets"]}
    columns = min(2, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 0.3 * len(groups[0]["rows"]) * rows + 1.2 * rows),
                             squeeze=False)
    for ax, group in zip(axes.flat, groups):
        timed = sorted((r for r in group["rows"] if r["gbps"]), key=lambda r: r["gbps"])
        marks = [checks[(r["target"], group["device"])] for r in timed]
        ax.barh([r["target"] + ("" if m == "ok" else f" ({m})") for r, m in zip(timed, marks)],
                [r["gbps"] for r in timed], color=["tab:blue" if m == "ok" else "tab:orange" for m in marks])
        for k, r in enumerate(timed):
            ax.text(r["gbps"], k, f" {_time(r['median_s'])}", va="center", fontsize=7)
        if group["in_place_gbps"]:
            ax.axvline(group["in_place_gbps"], color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(f"{group['device']} · {group['set']} · {group['dtype']}", fontsize=9)
        ax.set_xscale("log")
        ax.set_xlabel("effective GB/s, log scale (dashed: the in-place kernel's)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle(f"adam-conformance bench: torch {doc['environment']['torch']}, {doc['environment']['cpu']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
