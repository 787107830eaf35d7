"""Golden traces: each scenario's Case and its oracle Trace, pinned on disk.

Layout of a golden directory::

    NAME.json      {"name", "description", "case": <Case metadata>, "trace": <Trace metadata>}
    NAME.npz       the arrays, "case/..." and "trace/...", read with allow_pickle=False
    SHA256SUMS     "<sha256>  <file>" per file, as `sha256sum` writes it (`sha256sum -c` checks it)

The traces ship inside the package (``conformance/data/golden``, which in the repository
is a link to ``golden/``), so an installed suite has the same truth as the checkout.
Reading them checks them against the manifest first: missing, unreadable or tampered
data is a `GoldenError`, never a skipped check.

Files are written deterministically (sorted JSON, an uncompressed zip with fixed
timestamps), so `regenerate` rebuilds them bit for bit. Case arrays whose values are
exactly float32 are stored as float32 to keep the folder small; oracle values stay
float64.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import numpy as np

from conformance.cases.case import Case, CaseError
from conformance.cases.scenarios import SCENARIOS
from conformance.cases.trace import Trace
from conformance.truth import oracle

DEFAULT_DIR = Path(str(resources.files("conformance"))) / "data" / "golden"
MANIFEST = "SHA256SUMS"


class GoldenError(Exception):
    """The golden traces cannot be trusted: one line saying what and how to fix it."""


def write_scenario(directory: Path, name: str, description: str, case: Case, trace: Trace) -> list[Path]:
    case_meta, case_arrays = case.to_json()
    trace_meta, trace_arrays = trace.to_json()
    doc = dict(name=name, description=description, case=case_meta, trace=trace_meta)
    json_path, npz_path = directory / f"{name}.json", directory / f"{name}.npz"
    json_path.write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    arrays = {f"case/{k}": _compact(a) for k, a in case_arrays.items()}
    arrays.update({f"trace/{k}": a for k, a in trace_arrays.items()})
    npz_path.write_bytes(_npz_bytes(arrays))
    return [json_path, npz_path]


def read_scenario(directory: Path, name: str) -> tuple[str, Case, Trace]:
    """(description, Case, oracle Trace) of one golden scenario; CaseError if malformed."""
    try:
        doc = json.loads((directory / f"{name}.json").read_text())
        with np.load(directory / f"{name}.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise CaseError(f"unreadable: {type(e).__name__}: {e}") from None
    if not isinstance(doc, dict) or not {"case", "trace"} <= set(doc):
        raise CaseError("malformed: the JSON has no case and trace")
    split = lambda prefix: {k[len(prefix):]: _widen(a) for k, a in arrays.items() if k.startswith(prefix)}
    case = Case.from_json(doc["case"], split("case/"))
    trace = Trace.from_json(doc["trace"], split("trace/"))
    if len(trace.params) != len(case.params) or trace.steps != case.recorded:
        raise CaseError("malformed: the trace does not match its case")
    for i, p in enumerate(case.params):
        if trace.params[i].shape[1:] != p.shape:
            raise CaseError(f"malformed: trace of param {i} has shape {trace.params[i].shape[1:]}, case {p.shape}")
    return doc.get("description", ""), case, trace


def scenarios(directory: Path = DEFAULT_DIR) -> list[str]:
    """Names of the scenarios stored in `directory`, sorted."""
    return sorted(p.stem for p in directory.glob("*.json"))


def load_all(directory: Path = DEFAULT_DIR) -> Iterator[tuple[str, Case, Trace]]:
    """Every scenario's (name, Case, oracle Trace), once the files match their manifest."""
    intact(directory)
    for name in scenarios(directory):
        try:
            _, case, trace = read_scenario(directory, name)
        except CaseError as e:
            raise GoldenError(f"golden scenario {name} in {directory} is {e}{_FIX}") from None
        yield name, case, trace


_FIX = "; reinstall adam-conformance (`adam-conformance golden verify` lists every problem)"


def intact(directory: Path = DEFAULT_DIR) -> None:
    """Raise GoldenError unless every file in `directory` matches its manifest."""
    problems = _file_problems(directory)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise GoldenError(f"the golden traces in {directory} do not verify: {problems[0]}{more}{_FIX}")


def regenerate(directory: Path = DEFAULT_DIR, progress: Callable[[str], None] = print) -> list[Path]:
    """Rebuild every scenario with the oracle, then write them all and the manifest."""
    built = []
    for k, (name, (description, build)) in enumerate(sorted(SCENARIOS.items()), start=1):
        start = time.perf_counter()
        case = build()
        built.append((name, description, case, oracle.run(case)))
        progress(f"[{k:2d}/{len(SCENARIOS)}] {name} ({time.perf_counter() - start:.1f} s)")
    directory.mkdir(parents=True, exist_ok=True)
    written = [path for scenario in built for path in write_scenario(directory, *scenario)]
    for stale in sorted(set(directory.iterdir()) - set(written) - {directory / MANIFEST}):
        if stale.suffix in (".json", ".npz"):
            stale.unlink()
            progress(f"removed {stale.name}: no such scenario")
    regenerate_manifest(directory)
    return written


def regenerate_manifest(directory: Path) -> None:
    """Write SHA256SUMS for the .json and .npz files in `directory`."""
    files = sorted(p for p in directory.iterdir() if p.suffix in (".json", ".npz"))
    (directory / MANIFEST).write_text("".join(f"{_sha256(p)}  {p.name}\n" for p in files))


def verify(directory: Path = DEFAULT_DIR) -> list[str]:
    """Problems found in `directory` (empty when it verifies): checksums, files, contents."""
    problems = _file_problems(directory)
    present = {p.name for p in directory.iterdir() if p.is_file()} if directory.is_dir() else set()
    stems = sorted({Path(n).stem for n in present if n.endswith((".json", ".npz"))})
    for stem in stems:
        if not {f"{stem}.json", f"{stem}.npz"} <= present:
            continue  # already reported as missing or unlisted
        try:
            read_scenario(directory, stem)
        except CaseError as e:
            problems.append(f"{stem}: {e}")
    return problems


def _file_problems(directory: Path) -> list[str]:
    """Files missing, unlisted or changed since the manifest was written."""
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return [f"{manifest}: missing"]
    listed, problems = {}, []
    for n, line in enumerate(manifest.read_text().splitlines(), start=1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or "/" in name:
            problems.append(f"{MANIFEST} line {n}: malformed (expected '<sha256>  <file name>')")
            continue
        listed[name] = digest
    present = {p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST}
    for name in sorted(set(listed) - present):
        problems.append(f"{name}: missing (listed in {MANIFEST})")
    for name in sorted(present - set(listed)):
        problems.append(f"{name}: not listed in {MANIFEST}")
    for name in sorted(set(listed) & present):
        try:
            changed = _sha256(directory / name) != listed[name]
        except OSError as e:
            problems.append(f"{name}: unreadable ({e.strerror})")
            continue
        if changed:
            problems.append(f"{name}: checksum mismatch: the file changed since the manifest was written")
    return problems


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz (uncompressed zip of .npy files) with fixed timestamps: the same arrays, the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.require(arrays[name], requirements='C'), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buffer.getvalue()


def _compact(a: np.ndarray) -> np.ndarray:
    """float32 / complex64 storage for arrays whose values are exactly that."""
    narrow = {np.dtype(np.float64): np.float32, np.dtype(np.complex128): np.complex64}.get(a.dtype)
    if narrow is not None:
        with np.errstate(over="ignore"):
            small = a.astype(narrow)
        if np.array_equal(small.astype(a.dtype), a, equal_nan=True):
            return small
    return a


def _widen(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.float32:
        return a.astype(np.float64)
    if a.dtype == np.complex64:
        return a.astype(np.complex128)
    return a
