"""The drift table across real torch releases (docs/releases/, written by tox): every declared
release has its reports, the table and the short one in docs/torch-releases.md are generated
from them and current, real drift between real releases shows in `compare`, and the matrix
workflow's comparison fails on a planted change and passes on the committed reports."""

from __future__ import annotations

import configparser
import json
import shutil
from pathlib import Path

import pytest

from conformance.front import releases
from conformance.report import compare

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "releases"
#: The page with the short table.
PAGE = ROOT / "docs" / "torch-releases.md"


def _declared() -> list[str]:
    """The release each torchXY tox environment installs."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini")
    factored = [line.partition(":") for line in tox["testenv"]["set_env"].splitlines() if line.strip()]
    return [setting.split("=")[1].strip() for factor, _, setting in factored if factor.strip().startswith("torch")]


def test_every_declared_release_has_its_reports_and_the_table_is_current(capsys):
    assert sorted(p.name for p in DOCS.iterdir() if p.is_dir()) == sorted(_declared())
    assert releases.main([str(DOCS), "--readme", str(PAGE), "--check"]) == 0, capsys.readouterr().err


def test_the_table_answers_an_upgrades_questions_from_the_reports():
    found = releases.load(DOCS)
    said = releases.answers(found)
    assert len(said) == 4 and all(line.startswith("**") for line in said)
    has = lambda reps: reps["torch"]["fingerprint"]["features"]["decoupled_weight_decay"]
    first_dwd = next(r for r, reps in found.items() if has(reps))
    assert f"since {first_dwd}" in said[0] or first_dwd == next(iter(found))


def test_real_releases_differ_in_compare_where_torch_changed():
    """2.6 against 2.13: features and signatures that really changed, found from the reports."""
    old, new = (compare.load(str(DOCS / r / "torch-adamw.json")) for r in ("2.6.0", "2.13.0"))
    lines = {c.what: (c.before, c.after) for c in compare.compare(old, new) if c.semantic}
    assert lines["torch feature decoupled_weight_decay"] == (False, True)
    assert lines["torch feature adamw_is_adam"] == (False, True)
    assert lines["adam parameter decoupled_weight_decay"] == (None, "present")


@pytest.fixture
def copied(tmp_path) -> Path:
    shutil.copytree(DOCS, tmp_path / "releases")
    shutil.copy(PAGE, tmp_path / PAGE.name)
    return tmp_path


def test_a_missing_or_edited_report_makes_the_table_stale(copied, capsys):
    args = [str(copied / "releases"), "--readme", str(copied / PAGE.name), "--check"]
    assert releases.main(args) == 0
    last = copied / "releases" / max(_declared(), key=releases.version_key)
    report = json.loads((last / "torch-fused.json").read_text())
    report["fingerprint"]["classes"]["adam"]["hierarchy"].insert(1, "torch.optim.adam.Planted")
    report["fingerprint"]["features"]["adamw_is_adam"] = not report["fingerprint"]["features"]["adamw_is_adam"]
    (last / "torch.json").write_text(json.dumps(report))
    assert releases.main(args) == 1 and "is stale" in capsys.readouterr().err
    (last / "torch.json").unlink()
    assert releases.main(args) == 1 and "no report of torch" in capsys.readouterr().err


def test_the_matrix_comparison_passes_on_the_committed_reports_and_fails_on_planted_drift(copied, capsys):
    fresh = copied / "artifacts" / "reports-torch213"
    shutil.copytree(DOCS / "2.13.0", fresh)
    (fresh / "README.md").unlink(missing_ok=True)
    assert releases.main([str(DOCS), "--against", str(copied / "artifacts")]) == 0
    report = json.loads((fresh / "torch.json").read_text())
    report["fingerprint"]["classes"]["adam"]["errors"]["lr=-1"] = "ValueError: reworded"
    report["checks"][0]["status"] = "failed" if report["checks"][0]["status"] != "failed" else "passed"
    (fresh / "torch.json").write_text(json.dumps(report))
    assert releases.main([str(DOCS), "--against", str(copied / "artifacts")]) == 1
    err = capsys.readouterr().err
    assert "torch.json: 2 semantic change(s) from the committed torch 2.13.0 report" in err and "reworded" in err


@pytest.mark.e2e
def test_the_fused_strided_gradient_reproducer_agrees_with_the_reports_of_the_installed_release():
    import subprocess
    import sys

    import torch

    release = torch.__version__.split("+")[0]
    found = releases.load(DOCS)
    if release not in found:
        pytest.skip(f"torch {release} has no committed reports")
    strided = any(releases.STRIDED in releases.necessary(c) for c in found[release]["torch-fused"]["checks"])
    run = subprocess.run([sys.executable, str(DOCS / "fused_strided_grad.py")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == (1 if strided else 0), run.stdout + run.stderr


@pytest.mark.parametrize("what", ["no such folder", "a folder not named for a release", "no fingerprint",
                                  "--against no such folder"])
def test_bad_input_is_one_line(copied, capsys, what):
    root, args = copied / "releases", []
    if what == "no such folder":
        root = copied / "nowhere"
    elif what == "a folder not named for a release":
        (root / "latest").mkdir()
    elif what == "no fingerprint":
        report = json.loads((root / "2.13.0" / "torch.json").read_text())
        del report["fingerprint"]
        (root / "2.13.0" / "torch.json").write_text(json.dumps(report))
    else:
        args = ["--against", str(copied / "nowhere")]
    assert releases.main([str(root), *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("releases: ") and "Traceback" not in err
