"""The walls that keep the suite honest, and its words in one place.

Case -> run -> Trace -> checks -> report: each stage is a subpackage, and no import runs
against that flow; the suite never imports the built-in implementations (they plug in as
any third-party package does); the oracle and the budget never import torch, and the
plugin, the registry and the CLI's parser stay light. The deliberate copies of the
vocabulary in the standalone reproducer runtime match the originals.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import dtypes, vocabulary
from conformance.checks import contract
from conformance.report import certificate, repro_runtime
from conformance.run import drive

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "conformance"

#: The stages, lowest first: a module may import its own stage and those below it.
LAYERS = [
    ("conformance.vocabulary", "conformance.dtypes", "conformance.spec"),
    ("conformance.registry",),
    ("conformance.cases",),
    ("conformance.truth",),
    ("conformance.run",),
    ("conformance.checks",),
    ("conformance.diagnose",),
    ("conformance.report",),
    ("conformance.front",),
]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    return next(k for k, stage in enumerate(LAYERS) if any(module == s or module.startswith(s + ".") for s in stage))


def _imports() -> dict[str, set[str]]:
    """Every module of the suite and what it imports, lazily inside functions too (``from
    package import module`` imports the module, not the package's own code)."""
    trees = {_module(path): ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}
    graph = {}
    for module, tree in trees.items():
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                inner = {f"{node.module}.{a.name}" for a in node.names} & set(trees)
                found |= inner or {node.module}
        graph[module] = found
    return graph


def test_the_suite_never_imports_the_builtin_implementations():
    for module, found in _imports().items():
        assert not any(n == "impls" or n.startswith("impls.") for n in found), f"{module} imports impls"


def test_no_import_runs_against_the_flow():
    graph = _imports()
    for module, found in graph.items():
        if module in ("conformance", "conformance.__main__"):  # the re-exports and the entry point
            continue
        for name in found:
            if name in graph and name != "conformance":
                assert _layer(name) <= _layer(module), f"{module} imports {name}, a later stage"


def test_there_are_no_import_cycles():
    imports = _imports()
    graph = {m: {n for n in found if n in imports and n not in (m, "conformance")} for m, found in imports.items()}
    done, path = set(), []

    def visit(module: str) -> None:
        assert module not in path, "import cycle: " + " -> ".join(path[path.index(module):] + [module])
        if module in done:
            return
        path.append(module)
        for name in sorted(graph[module]):
            visit(name)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


LIGHT = {
    "the oracle, the budget and the golden traces": "import conformance.truth.oracle, conformance.truth.budget, "
                                                     "conformance.truth.golden",
    "the registry and the vocabulary": "import conformance.registry, conformance.vocabulary; import conformance",
    "the pytest plugin": "import conformance.front.plugin",
    "the CLI's parser": "from conformance.front.cli import build_parser; build_parser().parse_args(['list'])",
}


@pytest.mark.parametrize("what", sorted(LIGHT))
def test_light_modules_import_without_torch(what):
    """torch cannot be imported at all: any import of it fails."""
    code = f"import sys; sys.modules['torch'] = None; {LIGHT[what]}"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_reproducer_runtimes_copies_match_the_vocabulary():
    assert set(drive.DTYPES) == set(dtypes.ALL)
    assert set(drive.KEYWORDS) == set(vocabulary.KEYWORD_FEATURES)
    assert drive.STATE_KEYS == vocabulary.STATE_KEYS
    assert drive.DEFAULTS == vocabulary.TORCH_DEFAULTS
    assert repro_runtime.WIDTH == contract.WIDTH
    assert repro_runtime.EPS == {d: dtypes.eps(d) for d in dtypes.ALL}
    for spec in vocabulary.SPECS:
        repro_runtime.SPEC = spec  # a reproducer's constant
        claims = set(repro_runtime.torch_claims())
        adamw = {"decoupled_weight_decay"} if spec == "adamw" else set()
        assert claims == set(vocabulary.KEYWORD_FEATURES) - adamw | {"param_groups"}


def test_the_report_schema_speaks_the_vocabulary():
    schema = json.loads(certificate.SCHEMA_PATH.read_text())
    assert schema["$defs"]["feature"]["enum"] == list(vocabulary.FEATURES)
    assert schema["$defs"]["severity"]["enum"] == list(vocabulary.SEVERITIES)
    assert schema["properties"]["profile"]["enum"] == list(vocabulary.PROFILES)
    assert schema["properties"]["target"]["properties"]["spec"]["enum"] == list(vocabulary.SPECS)
    assert schema["properties"]["target"]["properties"]["state_precision"]["enum"] == list(vocabulary.STATE_PRECISIONS)
    assert schema["properties"]["environment"]["properties"]["device"]["enum"] == list(vocabulary.DEVICES)


def test_the_options_exist_once():
    """Every option of the table is a field of Options and every field but the target an
    option, at the table's default: nothing to keep in step by hand."""
    import dataclasses

    from conformance.front.flags import FLAGS, Options

    fields = {f.name: f.default for f in dataclasses.fields(Options) if f.name != "target"}
    assert fields == {f.name: () if f.repeat else f.default for f in FLAGS}
