"""The torch a report was made with, as data, so that two reports show what changed
between releases (`report.compare`): what torch's Adam and AdamW are (their constructors'
signatures and defaults, their class hierarchies, the messages of their errors for invalid
hyperparameters, the features `run.torch_features` detects, the devices the fused kernels
run on) and how far each of torch's paths (for-loop, foreach, fused) is from every golden
trace, the fixed truth across versions.

Measuring the paths runs torch through every golden scenario (tens of seconds), so a
fingerprint is kept in the user's cache, one per torch release, golden manifest and
suite version.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from importlib.metadata import version
from pathlib import Path

import torch

from conformance.run import reference, runner, torch_features
from conformance.truth import budget, golden
from conformance.vocabulary import SPECS, TORCH_PATHS

#: Invalid hyperparameters, and how each is passed: the messages torch gives are recorded.
INVALID = {
    "lr=-1": dict(lr=-1.0),
    "lr=nan": dict(lr=float("nan")),
    "eps=-1e-8": dict(eps=-1e-8),
    "beta1=1": dict(betas=(1.0, 0.999)),
    "beta2=-0.1": dict(betas=(0.9, -0.1)),
    "weight_decay=-0.1": dict(weight_decay=-0.1),
    "lr=tensor([1e-3, 1e-3])": dict(lr=torch.tensor([1e-3, 1e-3])),
    "betas=(tensor, float)": dict(betas=(torch.tensor(0.9), 0.999)),
}


def fingerprint(progress=print) -> dict:
    """The installed torch's fingerprint, from the cache or measured (`progress` is told)."""
    path = _cache_path()
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    progress(f"fingerprinting torch {torch.__version__} against the golden traces (once per release)...")
    found = dict(torch=torch.__version__, features=torch_features.detect(),
                 fused_devices=list(torch_features.fused_devices()),
                 classes={"adam": _class(torch.optim.Adam), "adamw": _class(torch.optim.AdamW)},
                 paths=_paths())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(found, indent=1, sort_keys=True))
    except OSError:
        pass  # an unwritable cache costs time, not correctness
    return found


def _cache_path() -> Path:
    manifest = hashlib.sha256((golden.DEFAULT_DIR / golden.MANIFEST).read_bytes()).hexdigest()[:16]
    key = f"torch-{torch.__version__}-golden-{manifest}-suite-{version('adam-conformance')}"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "adam-conformance" / "fingerprints" / f"{key.replace('+', '_')}.json"


def _class(cls: type) -> dict:
    """A class's hierarchy, its constructor's parameters and defaults, and its error messages."""
    params = inspect.signature(cls).parameters.values()
    return dict(
        hierarchy=[f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__ if c is not object],
        signature={p.name: None if p.default is p.empty else repr(p.default) for p in params},
        errors={what: _error(cls, kwargs) for what, kwargs in INVALID.items()},
    )


def _error(cls: type, kwargs: dict) -> str:
    """What constructing `cls` with `kwargs` raised ("accepted" if nothing)."""
    try:
        cls([torch.zeros(3, requires_grad=True)], **kwargs)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return "accepted"


def _paths() -> dict[str, dict[str, float | str]]:
    """Per torch path, per golden scenario: the largest error from the golden trace, in eps
    at the values' scale, what the path raised, or why it could not run here."""
    scenarios = list(golden.load_all())
    distances = {}
    for label, flags in TORCH_PATHS.items():
        forms = dict(zip(SPECS, reference.torch_paths(label, flags, label)))
        distances[label] = {name: _distance(forms[case.spec], case, truth) for name, case, truth in scenarios}
    return distances


def _distance(impl, case, truth) -> float | str:
    try:
        trace = runner.run(impl, case)
    except runner.Unclaimed as e:  # a feature this release lacks (decoupled_weight_decay before 2.x, say)
        return f"not run: {e}"
    if trace.error:
        return f"raised: {trace.error}"
    error, deviations = budget.distance(trace, truth, case)
    return float(error) if not deviations else f"{deviations} element(s) NaN or inf unlike the golden trace"
