"""Golden traces: they verify, tampering is caught, and they rebuild bit for bit."""

from __future__ import annotations

import json
import shutil

import pytest

from conformance.front.cli import main
from conformance.truth import golden


@pytest.fixture
def copy(tmp_path):
    target = tmp_path / "golden"
    shutil.copytree(golden.DEFAULT_DIR, target)
    return target


def test_the_committed_golden_traces_verify(capsys):
    assert main(["golden", "verify"]) == 0
    out = capsys.readouterr().out
    assert f"{len(golden.scenarios())} scenarios" in out and "verified" in out


def test_there_are_enough_scenarios_and_the_folder_is_small():
    assert len(golden.scenarios()) >= 30
    assert sum(p.stat().st_size for p in golden.DEFAULT_DIR.iterdir()) < 5_000_000


def _verify(directory, capsys) -> tuple[int, str]:
    code = main(["golden", "verify", "--dir", str(directory)])
    return code, capsys.readouterr().err


def test_a_flipped_byte_is_detected(copy, capsys):
    path = copy / "basic-adam.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    code, err = _verify(copy, capsys)
    assert code == 1 and "basic-adam.npz: checksum mismatch" in err


def test_a_missing_file_is_detected(copy, capsys):
    (copy / "closure.json").unlink()
    code, err = _verify(copy, capsys)
    assert code == 1 and "closure.json: missing" in err


def test_an_unlisted_file_is_detected(copy, capsys):
    (copy / "extra.json").write_text("{}")
    code, err = _verify(copy, capsys)
    assert code == 1 and "extra.json: not listed in SHA256SUMS" in err


def test_a_malformed_file_is_detected_even_with_a_matching_checksum(copy, capsys):
    doc = json.loads((copy / "basic-adamw.json").read_text())
    doc["case"]["params"][0]["layout"] = "diagonal"
    (copy / "basic-adamw.json").write_text(json.dumps(doc))
    golden.regenerate_manifest(copy)  # the checksum now matches the broken file
    code, err = _verify(copy, capsys)
    assert code == 1 and "basic-adamw: invalid case" in err and "unknown layout 'diagonal'" in err


def test_a_truncated_archive_is_detected(copy, capsys):
    path = copy / "tensor-lr.npz"
    path.write_bytes(path.read_bytes()[:100])
    golden.regenerate_manifest(copy)
    code, err = _verify(copy, capsys)
    assert code == 1 and "tensor-lr: unreadable" in err


def test_a_malformed_manifest_is_detected(copy, capsys):
    (copy / "SHA256SUMS").write_text("not a checksum line\n")
    code, err = _verify(copy, capsys)
    assert code == 1 and "SHA256SUMS line 1: malformed" in err


@pytest.mark.slow
def test_regenerate_rebuilds_every_file_bit_for_bit(tmp_path):
    written = golden.regenerate(tmp_path, progress=lambda line: None)
    committed = sorted(p.name for p in golden.DEFAULT_DIR.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == committed
    for name in committed:
        assert (tmp_path / name).read_bytes() == (golden.DEFAULT_DIR / name).read_bytes(), f"{name} differs"
    assert len(written) == 2 * len(golden.scenarios())
