"""The public names resolve: every name in ``conformance.__all__``, every dotted
``conformance.…`` name the README, the docs or a docstring of the suite names, and every
file path of this repository the README or a page of the docs links to."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import conformance

ROOT = Path(__file__).resolve().parent.parent
DOTTED = re.compile(r"\bconformance(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
PATH = re.compile(r"\]\(((?:conformance|impls|tests|docs|\.ci)/[^)#\s]*)\)")
DOCS = sorted((ROOT / "docs").rglob("*.md"))
TEXTS = [ROOT / "README.md", *DOCS, ROOT / "docs" / "hooks.py", *sorted((ROOT / "conformance").rglob("*.py"))]
#: A relative link of a page: its target, without the anchor.
RELATIVE = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)#\s]+)[^)\s]*\)")


def _resolves(dotted: str) -> bool:
    """Whether `dotted` is a module, or an attribute (chain) of the longest module it starts with."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        try:
            for attr in parts[k:]:
                found = getattr(found, attr)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("name", conformance.__all__)
def test_every_public_name_resolves(name):
    assert getattr(conformance, name) is not None


def test_every_dotted_name_the_texts_use_resolves():
    named = {(name.rstrip("."), path.relative_to(ROOT).as_posix())
             for path in TEXTS for name in DOTTED.findall(path.read_text())}
    assert len(named) > 20
    broken = sorted((name, where) for name, where in named
                    if not name.endswith((".py", ".json", ".md")) and not _resolves(name))
    assert not broken, f"names that no longer resolve: {broken}"


def test_every_path_the_readme_links_to_exists():
    linked = set(PATH.findall((ROOT / "README.md").read_text()))
    assert linked and not sorted(p for p in linked if not (ROOT / p).exists())


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_repository_file_a_page_links_to_exists(page):
    """Links out of docs/ (``../conformance/registry.py``); links within it are tests/test_docs.py's."""
    linked = {(page.parent / target).resolve() for target in RELATIVE.findall(page.read_text())}
    outside = [p for p in linked if not p.is_relative_to(ROOT / "docs")]
    assert not sorted(str(p.relative_to(ROOT)) for p in outside if not p.exists())
