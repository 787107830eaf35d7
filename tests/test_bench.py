"""`adam-conformance bench`: every column and key present, ratios to the torch paths of the same
run, failing and non-conformant targets listed and marked, the time per tensor on the set of
many tiny tensors, a target that runs interpreted left out unless named, bad input refused in
one line, the bytes an Adam step moves. No timing is asserted: these machines are shared."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import time

import pytest
import torch

from conformance.front import bench
from conformance.front.cli import main
from conformance.front.options import build_target
from conformance.report import bench as report
from conformance.run import timing

MUTANT, RAISES = "tests.mutants:BetasSwapped", "tests.hostile_targets:RaisesInStep"


def _bench(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["bench", *args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One run on the small set and the tiny tensors: a conformant target, a non-conformant one and one that raises."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    code, out, err = _bench("torch-foreach", MUTANT, RAISES, "--set", "mlp", "--set", "tiny", "--dtype", "float32",
                            "--warmup", "1", "--steps", "1", "--repeats", "3", "--json", str(path))
    return code, out, err, json.loads(path.read_text())


def test_the_table_has_every_column_and_a_row_per_target_with_torchs_paths_added(run):
    code, out, err, _ = run
    assert code == 0, err
    assert "bench: cpu mlp float32: sampling" in err  # progress goes to stderr
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("target"))
    assert header.split() == ["target", "median", "min", "IQR", "GB/s", "of", "in-place", "extra", "peak",
                              "×torch", "×foreach", "×fused", "n", "check"]
    assert "28 B/element" in out and "in place: mul_" in out
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 1:] if line.startswith("  ") and
            line.split()[0] in {"torch", "torch-foreach", "torch-fused", MUTANT, RAISES}}
    assert set(rows) == {"torch", "torch-foreach", "torch-fused", MUTANT, RAISES}
    assert "-" not in rows["torch-foreach"].split()[1:] and rows["torch-foreach"].rstrip().endswith("ok")


def test_a_failing_target_is_listed_and_marked_and_a_wrong_one_still_timed(run):
    _, out, _, doc = run
    rows = {r["target"]: r for r in doc["results"][0]["rows"]}
    assert rows[RAISES]["median_s"] is None and rows[RAISES]["error"].startswith("step raised RuntimeError: boom")
    assert rows[MUTANT]["check"] == "not conformant" and rows[MUTANT]["median_s"] > 0
    assert rows["torch-foreach"]["check"] == "ok"
    line = lambda name: next(x for x in out.splitlines() if x.startswith(f"  {name} "))
    assert line(RAISES).rstrip().endswith("RAISED, NOT TIMED")
    assert line(MUTANT).rstrip().endswith("NOT CONFORMANT")
    assert f"  {MUTANT} (cpu): parity.golden: golden " in out


def test_the_json_has_its_keys_and_ratios_to_the_torch_paths_of_the_same_run(run):
    _, _, _, doc = run
    assert doc["schema"] == "adam-conformance-bench/1"
    assert {"torch", "cpu", "threads", "load_average"} <= set(doc["environment"])
    assert doc["settings"]["baselines"] == list(report.BASELINES)
    assert doc["left_out"] == [] and all(t["interpreted"] is None for t in doc["targets"])
    group = doc["results"][0]
    assert {"device", "set", "dtype", "tensors", "numel", "overhead_bound", "bytes_per_element", "bytes_per_step",
            "in_place", "in_place_gbps", "rows"} <= set(group)
    assert (group["set"], group["numel"], group["bytes_per_element"]) == ("mlp", 101110, 28)
    medians = {r["target"]: r["median_s"] for r in group["rows"]}
    for row in group["rows"]:
        assert set(row) == {"target", "spec", "check", "error", "samples", "steps_per_sample", "min_s", "median_s",
                            "iqr_s", "per_tensor_s", "gbps", "fraction_of_in_place", "extra_peak_bytes", "ratios"}
        if row["median_s"] is not None:
            assert row["samples"] == 3 and row["min_s"] <= row["median_s"]
            assert row["gbps"] == pytest.approx(28 * 101110 / row["median_s"] / 1e9)
            assert row["fraction_of_in_place"] == pytest.approx(row["gbps"] / group["in_place_gbps"])
            assert row["ratios"] == pytest.approx({b: row["median_s"] / medians[b] for b in report.BASELINES})
            assert row["per_tensor_s"] == pytest.approx(row["median_s"] / 4)


@pytest.mark.parametrize("args, says", [
    (["no-such-target", "--set", "mlp"], "unknown implementation 'no-such-target'"),
    (["torch", "--set", "huge"], "unknown --set 'huge'; known: mlp, transformer, tiny"),
    (["torch", "--dtype", "float64"], "unknown --dtype 'float64'; known: float32, bfloat16"),
    (["torch", "--png", "chart.png"], "--png needs matplotlib, which is not installed: "
                                      "pip install 'adam-conformance[plot]'"),
])
def test_bad_input_is_one_line_and_exit_2(args, says, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as where the [plot] extra is not installed
    code, out, err = _bench(*args)
    assert (code, out) == (2, "")
    assert len(err.splitlines()) == 1 and err.startswith("adam-conformance: error: ") and says in err


@pytest.mark.parametrize("dtype, amsgrad, expected", [
    (torch.float32, False, 28), (torch.float32, True, 36), (torch.bfloat16, False, 14), (torch.bfloat16, True, 18),
])
def test_an_adam_step_moves_seven_passes_and_amsgrad_nine(dtype, amsgrad, expected):
    assert timing.step_bytes(dtype, amsgrad) == expected


def test_a_target_slower_than_the_budget_gets_fewer_samples_and_none_if_one_step_exceeds_it():
    """Sleeps never return early, so these bounds hold on a loaded machine too."""
    slow = timing.Entry("slow", lambda: time.sleep(0.3))
    timing.warm_up(slow, 2, number=None, min_sample_s=0.02, budget_s=1.0, repeats=15)
    assert (slow.error, slow.number) == (None, 1) and 1 <= slow.wanted <= 3
    slower = timing.Entry("slower", lambda: time.sleep(0.02))
    timing.warm_up(slower, 3, number=None, min_sample_s=0.02, budget_s=0.01, repeats=15)
    assert slower.error.startswith("not sampled: its first step took") and not slower.wanted


def test_the_tiny_set_gives_the_time_per_tensor_in_the_table_and_the_json(run):
    _, out, _, doc = run
    tiny = next(g for g in doc["results"] if g["set"] == "tiny")
    assert (tiny["tensors"], tiny["overhead_bound"]) == (4096, True)
    assert not next(g for g in doc["results"] if g["set"] == "mlp")["overhead_bound"]
    rows = {r["target"]: r for r in tiny["rows"]}
    assert rows["torch-foreach"]["per_tensor_s"] == pytest.approx(rows["torch-foreach"]["median_s"] / 4096)
    assert rows["torch-foreach"]["gbps"] == pytest.approx(28 * tiny["numel"] / rows["torch-foreach"]["median_s"] / 1e9)
    assert rows[RAISES]["per_tensor_s"] is None
    lines = out.splitlines()
    table = lines[next(k for k, line in enumerate(lines) if line.startswith("cpu · tiny")):]
    header = next(line for line in table if line.lstrip().startswith("target"))
    assert header.split() == ["target", "median", "min", "IQR", "per", "tensor", "GB/s", "of", "in-place", "extra",
                              "peak", "×torch", "×foreach", "×fused", "n", "check"]
    cells = re.split(r"\s{2,}", next(line for line in table if line.startswith("  torch-foreach ")).strip())
    assert cells[4] == report._time(rows["torch-foreach"]["per_tensor_s"]) and cells[5] == report._num(
        rows["torch-foreach"]["gbps"])
    assert "per tensor: the median over the number of tensors" in out


def test_a_target_that_runs_interpreted_is_left_out_by_default_and_timed_when_named(monkeypatch, tmp_path):
    """`interpreted` stands in for Triton's interpreter: timing it for real takes minutes."""
    why = "an interpreter, for this test"
    monkeypatch.setattr(bench, "DEFAULT_TARGETS", ("eager", "torch"))
    monkeypatch.setattr(bench, "interpreted", lambda target: why if target.impl.name == "eager" else None)
    args = ("--set", "mlp", "--dtype", "float32", "--warmup", "1", "--steps", "1", "--repeats", "1", "--json",
            str(tmp_path / "bench.json"))
    code, out, err = _bench(*args)
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert code == 0, err
    assert f"bench: cpu: left out eager, which runs interpreted here ({why}); name it to time it\n" in err
    assert doc["left_out"] == [dict(target="eager", device="cpu", why=f"runs interpreted here: {why}")]
    assert "eager" not in {t["target"] for t in doc["targets"]} and "  eager " not in out
    code, out, err = _bench("eager", *args)
    doc = json.loads((tmp_path / "bench.json").read_text())
    assert code == 0, err
    assert f"bench: cpu: eager runs interpreted here ({why}); timed because named" in err and doc["left_out"] == []
    assert {t["target"]: t["interpreted"] for t in doc["targets"]} == {
        "eager": why, "torch": None, "torch-foreach": None, "torch-fused": None}
    assert next(r for r in doc["results"][0]["rows"] if r["target"] == "eager")["median_s"] > 0


def test_the_builtin_triton_says_it_runs_interpreted_without_a_gpu():
    triton_fused = pytest.importorskip("impls.triton_fused")
    if triton_fused.triton is None:
        pytest.skip("Triton is not installed")
    why = bench.interpreted(build_target("triton", device="cpu" if triton_fused.INTERPRETED else "cuda"))
    assert (why is not None) == triton_fused.INTERPRETED and "interpreter" in (why or "interpreter")
    assert bench.interpreted(build_target("torch-fused")) is None


def test_a_target_from_a_module_using_triton_runs_interpreted_under_triton_interpret(monkeypatch):
    target = build_target(MUTANT)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert bench.interpreted(target) is None  # its module does not use Triton
    monkeypatch.setattr(sys.modules[target.impl.factory.__module__], "triton", object(), raising=False)
    assert bench.interpreted(target).startswith("TRITON_INTERPRET=1")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert bench.interpreted(target) is None
