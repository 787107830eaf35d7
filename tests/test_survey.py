"""`adam-conformance survey`: the compliance table of many optimizers, its files, and `compare`
between two surveys; the third-party adapters it surveys by default."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from conformance import registry
from conformance.front.certify import Times
from conformance.report import compare
from conformance.report import survey as table
from impls.thirdparty import recipe
from tests.known import THIRDPARTY
from tests.test_certify import PLANTED, _env

HERE = Path(__file__).parent
ROOT = HERE.parent

NOISY = '''
import sys

import torch

print("| not | a | table | row |")  # on import, in the survey's own process too


class Noisy(torch.optim.Adam):
    """torch's Adam that writes to the terminal, as some packages do on import and at each step."""

    def step(self, closure=None):
        print("| not | a | table | row |")
        sys.stdout.write("\\x1b[2J")
        return super().step(closure)
'''


def _check(check_id, status, reason=""):
    return {"id": check_id, "status": status, "reason": reason}


def test_a_groups_cell_is_its_worst_check_and_all_unclaimed_is_not_claimed():
    checks = [_check("parity.golden", "passed"), _check("parity.trajectory", "failed", "over budget"),
              _check("invariant.scale", "passed"), _check("invariant.maximize", "skipped", "not claimed: maximize"),
              _check("contract.closure", "error"), _check("cuda.graph-replay", "skipped", "CUDA only"),
              _check("sharded.world-sizes", "skipped", "not claimed: sharding")]
    assert table.cells(checks) == {"parity": "failed", "invariant": "passed", "contract": "failed",
                                   "cuda": "skipped", "sharded": "not claimed"}


def _survey(rows, torch="2.13.0"):
    return table.document(rows, {"torch": torch, "python": "3.11"}, "2026-12-06T00:00:00+00:00", 10, "quick")


def _row(name, verdict="conformant", cells=None, version="1.0", package="pkg"):
    report = {"checks": [], "target": {"spec": "adamw"}, "summary": {}, "verdict": verdict}
    found = table.row(name, package, version, report, None, None, Times(0.2, 1.0), Path("."))
    return found | {"cells": cells or {"parity": "passed", "contract": "passed"}}


@pytest.mark.e2e
def test_compare_on_two_surveys_shows_the_cells_and_verdicts_that_changed(tmp_path):
    a = _survey([_row("pkg-adamw"), _row("pkg-adam")])
    b = _survey([_row("pkg-adamw", "not conformant", {"parity": "failed", "contract": "passed"}, "1.1"),
                 _row("pkg-adam"), _row("pkg-new")], torch="2.14.1")
    changes = compare.compare(a, b)
    assert [(c.line(), c.semantic) for c in changes] == [
        ("torch: 2.13.0 -> 2.14.1", False),
        ("pkg-adamw: pkg: 1.0 -> 1.1", False),
        ("pkg-adamw: conformant -> not conformant", True),
        ("pkg-adamw parity: passed -> failed", True),
        ("pkg-new: (absent) -> surveyed", True)]
    for name, doc in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "conformance", "compare", "a.json", "b.json"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "cells (optimizer, check group):\n  pkg-adamw parity: passed -> failed" in done.stdout
    report = json.loads((ROOT / "docs" / "releases" / "2.13.0" / "eager.json").read_text())
    (tmp_path / "report.json").write_text(json.dumps(report))
    mixed = subprocess.run([sys.executable, "-m", "conformance", "compare", "a.json", "report.json"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert mixed.returncode == 2 and mixed.stderr.strip().endswith("compare two of a kind")
    assert "Traceback" not in mixed.stderr


@pytest.mark.e2e
@pytest.mark.zoo
def test_the_survey_command_writes_a_row_per_target_whatever_becomes_of_each(tmp_path):
    """A conformant optimizer, a planted bug, one that raises in step(), one that writes to the
    terminal, an adapter whose package is absent and one for CUDA only: each a row, the table
    intact, the findings linked to reproducers that fail on their own, progress on stderr."""
    (tmp_path / "planted.py").write_text(PLANTED)
    (tmp_path / "noisy.py").write_text(NOISY)
    shutil.copy(HERE / "hostile_targets.py", tmp_path / "hostile_targets.py")
    absent = next(name for name in sorted(ADAPTERS) if name != "apex-fusedadam" and _absent(name))
    targets = ["eager", "planted:NoBiasCorrectionAdam", "hostile_targets:RaisesInStep", "noisy:Noisy", absent,
               "apex-fusedadam"]
    done = subprocess.run([sys.executable, "-m", "conformance", "survey", *targets, "--out", "out", "--jobs", "2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**_env(), "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[4/4]" in done.stderr and "left" in done.stderr
    out = tmp_path / "out"
    doc = json.loads((out / "survey.json").read_text())
    assert doc["schema"] == table.SCHEMA
    verdicts = {r["target"]: r["verdict"] for r in doc["rows"]}
    assert verdicts == {"eager": "conformant", "planted:NoBiasCorrectionAdam": "not conformant",
                        "hostile_targets:RaisesInStep": "unusable", "noisy:Noisy": "conformant", absent: "skipped",
                        "apex-fusedadam": "skipped"}
    rows = {r["target"]: r for r in doc["rows"]}
    assert "raised in step()" in rows["hostile_targets:RaisesInStep"]["reason"]
    assert "not installed here" in rows[absent]["reason"]
    assert rows["apex-fusedadam"]["reason"].startswith("runs on cuda only")
    md = (out / "survey.md").read_text()
    table_lines = [line for line in md.splitlines() if line.startswith("| `")]
    assert len(table_lines) == 6 and all(line.count("|") == 11 for line in table_lines)
    assert "not | a | table" not in md and "\x1b" not in md
    planted = rows["planted:NoBiasCorrectionAdam"]
    assert planted["cells"]["parity"] == "failed" and planted["findings"]
    for finding in planted["findings"][:2]:
        script = out / finding["reproducer"]
        assert f"reproducer `{finding['reproducer']}`" in md
        rerun = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                               timeout=300)
        assert rerun.returncode == 1, rerun.stdout + rerun.stderr
    page = (out / "survey.html").read_text()
    assert page.count("<tr data-package=") == 6 and "http" not in page.replace("http-equiv", "")


def test_targets_that_cannot_run_here_are_rows_that_say_why_without_a_certify_run(tmp_path, capsys):
    """The fast inner loop's survey, in this process: an adapter whose package is absent and one
    for CUDA only are skipped rows saying why, and the table, the page and the JSON are written."""
    from conformance.front.cli import main

    absent = [name for name in sorted(ADAPTERS) if name != "apex-fusedadam" and _absent(name)][:1]
    targets = [*absent, "apex-fusedadam"]
    assert main(["survey", *targets, "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr()
    assert f"surveying 0 of {len(targets)} targets" in said.err and f"surveyed {len(targets)} targets" in said.out
    out = tmp_path / "out"
    rows = {r["target"]: r for r in json.loads((out / "survey.json").read_text())["rows"]}
    assert list(rows) == targets and {r["verdict"] for r in rows.values()} == {"skipped"}
    assert rows["apex-fusedadam"]["reason"].startswith("runs on cuda only")
    assert all("not installed here" in rows[name]["reason"] for name in absent)
    assert sum(line.startswith("| `") for line in (out / "survey.md").read_text().splitlines()) == len(targets)
    assert (out / "survey.html").read_text().count("<tr data-package=") == len(targets)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-quic"]


def test_a_row_says_its_declared_state_and_its_set_up_time():
    row = _row("pkg-adamw8bit") | {"seconds": 71.0, "setup_seconds": 42.0}
    row["report"] = {"target": {"spec": "adamw", "state_precision": "8bit-dynamic"}}
    quick = _row("pkg-adamw") | {"seconds": 12.0, "setup_seconds": 1.0}
    text = table.markdown(_survey([row, quick]))
    assert "| `pkg-adamw8bit` | pkg 1.0 | adamw | CONFORMANT (declared 8-bit state) |" in text
    assert text.count("| 71 (set-up 42) |") == 1 and "| 12 |" in text
    assert "CONFORMANT (declared 8-bit state)" in table.html(_survey([row]))


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian: apt-get install chromium)")
def test_the_page_renders_and_filters_in_a_real_browser(tmp_path):
    """Chromium, headless: the page's filter (package, from its address) hides the other
    package's rows once its script has run; a screenshot of the page is drawn."""
    doc = _survey([_row("pkg-adamw", "not conformant", {"parity": "failed", "contract": "passed"}),
                   _row("other-adam", package="other")])
    page = tmp_path / "survey.html"
    page.write_text(table.html(doc))
    browse = lambda *args: subprocess.run([CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                                          capture_output=True, text=True, timeout=120)
    dom = browse("--dump-dom", page.as_uri() + "?package=other").stdout
    rows = dom.split("<tr data-package=")[1:]
    assert len(rows) == 2, dom[:2000]
    hidden = {row.split('"')[1]: "hidden" in row.split(">")[0] for row in rows}
    assert hidden == {"pkg": True, "other": False}
    shot = tmp_path / "page.png"
    browse(f"--screenshot={shot}", "--window-size=1000,600", "--hide-scrollbars", page.as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1000 and len(png) > 5000


def _absent(name: str) -> bool:
    try:
        registry.resolve(name)
    except registry.TargetError as e:
        return "not installed" in str(e)
    return False


ADAPTERS = {name: value for name, value in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
            ["entry-points"]["adam_conformance.implementations"].items() if value.startswith("impls.thirdparty.")}


def test_the_adapters_are_those_the_tests_know():
    assert sorted(ADAPTERS) == sorted(THIRDPARTY)


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_each_adapter_names_its_package_states_its_versions_and_is_its_own_recipe(name):
    """Declared without importing its package; its recipe compiles and names the package's class."""
    import importlib

    from packaging.requirements import Requirement

    module, _, attr = ADAPTERS[name].partition(":")
    impl = getattr(importlib.import_module(module), attr)
    assert impl.name == name and impl.package
    package = Requirement(impl.package).name
    assert name.startswith({"bitsandbytes": "bnb", "torch-optimi": "optimi"}.get(package, package) + "-")
    assert "complex" not in impl.claims and "tensor_lr" not in impl.claims  # none of these documents them
    source = impl.factory.recipe
    compile(source, name, "exec")
    assert "conformance" not in source and "impls" not in source


def test_a_package_outside_the_adapters_versions_is_warned_of():
    impl = registry.Implementation("x", lambda p, **k: None, package="torch>=99")
    assert impl.package_warning().startswith("torch ") and "outside the versions" in impl.package_warning()
    assert registry.Implementation("y", lambda p, **k: None, package="torch>=2").package_warning() is None
    assert "not installed" in registry.Implementation("z", lambda p, **k: None,
                                                      package="no-such-package-x>=1").package_warning()


def test_a_recipe_renames_torchs_keywords_and_fixes_the_entrys_mode():
    space = {}
    exec(recipe("collections:OrderedDict", {"decoupled_weight_decay": "weight_decouple"}, {"nus": (1, 1)}), space)
    made = space["make_target"]()([], decoupled_weight_decay=True, lr=0.1)
    assert dict(made) == {"nus": (1, 1), "weight_decouple": True, "lr": 0.1}


def test_the_published_survey_is_rendered_from_its_json_and_covers_the_ecosystem():
    """docs/ecosystem: the md and the html are what its json renders to, and the json holds at
    least 12 third-party entries from 8 packages, each certified here with its version."""
    root = ROOT / "docs" / "ecosystem"
    doc = table.load(root / "survey.json")
    assert (root / "survey.md").read_text() == table.markdown(doc)
    assert (root / "survey.html").read_text() == table.html(doc)
    ran = [r for r in doc["rows"] if r["report"] is not None]
    assert len(ran) >= 12 and len({r["package"] for r in ran}) >= 8
    assert all(r["version"] for r in ran) and doc["machine"]["cpus"] and doc["environment"]["torch"]
