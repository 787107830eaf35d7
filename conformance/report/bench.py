"""What ``adam-conformance bench`` measured, as a document (schema adam-conformance-bench/1),
an aligned terminal table and a chart.

A row gives the step time (min, median, IQR), the effective bandwidth (bytes an Adam step
moves per element, times the elements, over the median), its fraction of the best in-place
kernel's rate, the extra peak memory of one step, and the median's ratio to torch's
for-loop, foreach and fused paths. On a set of many small tensors (``overhead_bound``), it
also gives the median over the number of tensors: the per-tensor overhead of a step.
"""

from __future__ import annotations

import torch

from conformance.report.environment import cpu_model, gpu, software
from conformance.run import timing

SCHEMA = "adam-conformance-bench/1"
#: torch's paths every row is compared with (the Adam forms: with weight_decay 0 AdamW is the same work).
BASELINES = ("torch", "torch-foreach", "torch-fused")
PLOT_HINT = "pip install 'adam-conformance[plot]'"


def group(contenders: list[timing.Contender], entries: list[timing.Entry], streams: dict[str, tuple[timing.Entry, int]],
          param_set: timing.ParamSet, dtype: torch.dtype, device: str, amsgrad: bool) -> dict:
    """The figures of one (device, set, dtype) from its measured entries (one a contender, in
    their order) and in-place kernels (`timing.measure`)."""
    per_element = timing.step_bytes(dtype, amsgrad)
    in_place = {name: _rate(e, bpe * param_set.numel) for name, (e, bpe) in streams.items()}
    best = max((r["gbps"] for r in in_place.values() if r["gbps"]), default=None)
    medians = {e.name: e.stats()["median"] for e in entries if e.stats()}
    rows = [_row(c, entry, per_element * param_set.numel, len(param_set.shapes), best, medians)
            for c, entry in zip(contenders, entries)]
    return dict(device=device, set=param_set.name, description=param_set.description,
                dtype=str(dtype).removeprefix("torch."),
                tensors=len(param_set.shapes), numel=param_set.numel, overhead_bound=param_set.overhead_bound,
                bytes_per_element=per_element, bytes_per_step=per_element * param_set.numel, in_place=in_place,
                in_place_gbps=best, rows=rows)


def _row(c: timing.Contender, entry: timing.Entry, nbytes: int, tensors: int, best: float | None,
         medians: dict[str, float]) -> dict:
    """A contender's figures: bytes a step moves over the median, and the median against the others'."""
    stats = entry.stats()
    gbps = nbytes / stats["median"] / 1e9 if stats else None
    return dict(
        target=c.name, spec=c.target.spec if c.target else None, check=c.check, error=entry.error,
        samples=len(entry.samples), steps_per_sample=entry.number if stats else None,
        min_s=stats and stats["min"], median_s=stats and stats["median"], iqr_s=stats and stats["iqr"],
        per_tensor_s=stats and stats["median"] / tensors,
        gbps=gbps, fraction_of_in_place=gbps / best if gbps and best else None,
        extra_peak_bytes=entry.extra_peak,
        ratios={b: stats["median"] / medians[b] if stats and b in medians else None for b in BASELINES},
    )


def _rate(entry: timing.Entry, nbytes: int) -> dict:
    """An in-place kernel's median and the bytes it moves over it."""
    stats = entry.stats()
    return dict(median_s=stats and stats["median"], gbps=nbytes / stats["median"] / 1e9 if stats else None,
                error=entry.error)


def document(settings: dict, groups: list[dict], contenders: dict[str, list[timing.Contender]],
             left_out: list[dict], load_before, load_after) -> dict:
    """The --json document: the machine, the settings, the targets and their checks, those left
    out, and the groups' figures."""
    devices = list(contenders)
    env = software() | dict(cpu=cpu_model(), threads=torch.get_num_threads(),
                            load_average=dict(before=list(load_before), after=list(load_after)))
    if "cuda" in devices:
        env |= gpu()
    targets = [dict(target=c.name, device=device, spec=c.target.spec if c.target else None,
                    description=c.target.impl.description if c.target else None, check=c.check, detail=c.detail,
                    interpreted=c.interpreted)
               for device, those in contenders.items() for c in those]
    return dict(schema=SCHEMA, environment=env, settings=settings | dict(baselines=list(BASELINES)),
                targets=targets, left_out=left_out, results=groups)


# -- the terminal table ---------------------------------------------------------------------

COLUMNS = ("target", "median", "min", "IQR", "GB/s", "of in-place", "extra peak", "×torch", "×foreach", "×fused",
           "n", "check")
#: Where an overhead-bound set's table adds its time per tensor.
PER_TENSOR_AT = COLUMNS.index("IQR") + 1
LEGEND = ["median, min, IQR: time per step. GB/s: the bytes an Adam step moves over the median; of in-place:",
          "that over the best in-place kernel's. extra peak: what one step allocates at its peak. ×torch, ×foreach,",
          "×fused: the median over that torch path's (above 1: slower). n: samples."]
PER_TENSOR_LEGEND = ("per tensor: the median over the number of tensors, the overhead a step pays per tensor "
                     "(on sets of many small tensors).")


def render(doc: dict) -> str:
    """The aligned tables, one per (device, set, dtype), then what each mark means."""
    env = doc["environment"]
    load = env["load_average"]
    out = [f"adam-conformance bench: torch {env['torch']}, {env['cpu']}, threads {env['threads']}"
           + (f", {env['gpu']}" if "gpu" in env else "")
           + f"; load average {load['before'][0]:.2f} before, {load['after'][0]:.2f} after"]
    notes: dict[str, str] = {}
    checks = {(t["target"], t["device"]): t for t in doc["targets"]}
    for g in doc["results"]:
        out += ["", *_table(g, checks, notes)]
    if notes:
        out += ["", "marks: the quick check (parity.golden at the quick profile, not a certificate), "
                "and steps that failed:"]
        out += [f"  {key}: {why}" for key, why in notes.items()]
    out += ["", *LEGEND]
    if any(g["overhead_bound"] for g in doc["results"]):
        out.append(PER_TENSOR_LEGEND)
    return "\n".join(out)


def _table(g: dict, checks: dict, notes: dict) -> list[str]:
    """One group's heading and aligned rows, fastest first; the rows' marks explained in `notes`."""
    in_place = ", ".join(f"{k} {_num(r['gbps'])} GB/s" for k, r in g["in_place"].items())
    lines = [f"{g['device']} · {g['set']} · {g['dtype']}: {g['tensors']} tensors, "
             f"{g['numel'] / 1e6:.2f}M elements ({g['description']})",
             f"  {g['bytes_per_element']} B/element, {_bytes(g['bytes_per_step'])} a step; in place: {in_place}"]
    rows = sorted(g["rows"], key=lambda r: (r["median_s"] is None, r["median_s"] or 0))
    cells = [list(COLUMNS)] + [_cells(r, checks[(r["target"], g["device"])], g, notes) for r in rows]
    if g["overhead_bound"]:
        for row, r in zip(cells, [None, *rows]):
            row.insert(PER_TENSOR_AT, "per tensor" if r is None else _time(r["per_tensor_s"]))
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    last = len(widths) - 1
    for row in cells:
        lines.append("  " + "  ".join(c.ljust(w) if i in (0, last) else c.rjust(w)
                                      for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    return lines


def _cells(row: dict, check: dict, g: dict, notes: dict) -> list[str]:
    """A row's cells; its marks explained in `notes`."""
    status = check["check"]
    marks = [] if status == "ok" else [status.upper()]
    if status != "ok":
        notes[f"{row['target']} ({g['device']})"] = check["detail"]
    if row["error"] and status != "cannot load":
        marks.append("FAILED" if row["samples"] else "NOT TIMED")
        notes[f"{row['target']} ({g['device']} {g['set']} {g['dtype']})"] = row["error"]
    return [row["target"], _time(row["median_s"]), _time(row["min_s"]), _time(row["iqr_s"]), _num(row["gbps"]),
            _num(row["fraction_of_in_place"] and 100 * row["fraction_of_in_place"], "%"),
            _bytes(row["extra_peak_bytes"]), *(_num(row["ratios"][b], "x") for b in BASELINES),
            str(row["samples"]), ", ".join(marks) or "ok"]


def _num(x: float | None, unit: str = "") -> str:
    """Three significant figures, or all the digits before the point."""
    return "-" if x is None else f"{x:.0f}{unit}" if x >= 100 else f"{x:#.3g}{unit}"


def _time(seconds: float | None) -> str:
    """Seconds in s, ms, µs or ns, three significant figures."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"
    raise AssertionError("unreachable")


def _bytes(n: int | None) -> str:
    """Bytes in GB, MB, kB or B."""
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


# -- the chart ------------------------------------------------------------------------------


def plot_unavailable() -> str | None:
    """Why --png cannot draw here (matplotlib is not installed), in one line; None: it can."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return f"--png needs matplotlib, which is not installed: {PLOT_HINT}"
    return None


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
    for ax, g in zip(axes.flat, groups):
        timed = sorted((r for r in g["rows"] if r["gbps"]), key=lambda r: r["gbps"])
        marks = [checks[(r["target"], g["device"])] for r in timed]
        ax.barh([r["target"] + ("" if m == "ok" else f" ({m})") for r, m in zip(timed, marks)],
                [r["gbps"] for r in timed], color=["tab:blue" if m == "ok" else "tab:orange" for m in marks])
        for k, r in enumerate(timed):
            ax.text(r["gbps"], k, f" {_time(r['median_s'])}", va="center", fontsize=7)
        if g["in_place_gbps"]:
            ax.axvline(g["in_place_gbps"], color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(f"{g['device']} · {g['set']} · {g['dtype']}", fontsize=9)
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
