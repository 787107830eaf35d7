"""The documentation site (mkdocs.yml, docs/): every page is in the nav or deliberately left
out, every nav entry is a page, the links within docs/ and the README's links into it
resolve, and the pages docs/hooks.py generates say what the code holds. The build itself,
`mkdocs build --strict`, runs in .ci/run (4 to 7 s on 2 cores)."""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIG = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
#: A relative link of a page: its target, without the anchor.
RELATIVE = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:|#|/)([^)#\s]+)[^)\s]*\)")


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = _hooks()


def _nav(entries) -> list[str]:
    """Every page the nav lists, in order."""
    found = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        found += _nav(value) if isinstance(value, list) else [value]
    return found


def _excluded(page: str) -> bool:
    """Whether mkdocs.yml leaves `page` out deliberately (exclude_docs, not_in_nav: gitignore-like lines)."""
    patterns = [p.strip() for key in ("exclude_docs", "not_in_nav") for p in CONFIG.get(key, "").splitlines()]
    return any(p and (fnmatch.fnmatch(page, p.lstrip("/")) or fnmatch.fnmatch(Path(page).name, p)
                      or page.startswith(p.lstrip("/")) and p.endswith("/")) for p in patterns)


NAV = _nav(CONFIG["nav"])
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md"))


def test_every_page_is_in_the_nav_or_left_out_on_purpose():
    assert [page for page in PAGES if page not in NAV and not _excluded(page)] == []


def test_every_nav_entry_is_a_page_or_a_generated_one_and_none_twice():
    assert len(NAV) == len(set(NAV))
    missing = [page for page in NAV if not (DOCS / page).is_file() and page not in HOOKS.PAGES]
    assert not missing, f"in the nav, but no page: {missing}"
    assert not [page for page in HOOKS.PAGES if (DOCS / page).exists()], "a generated page is also a file"
    assert set(HOOKS.PAGES) <= set(NAV)


@pytest.mark.parametrize("page", PAGES)
def test_every_link_within_docs_names_a_file_or_a_generated_page(page):
    source = DOCS / page
    broken = []
    for target in RELATIVE.findall(source.read_text()):
        path = (source.parent / target).resolve()
        if path.is_relative_to(DOCS) and not path.exists() and path.relative_to(DOCS).as_posix() not in HOOKS.PAGES:
            broken.append(target)
    assert not broken


def test_the_readmes_links_into_docs_name_pages_of_the_site():
    linked = [t for t in RELATIVE.findall((ROOT / "README.md").read_text()) if t.startswith("docs/")]
    assert len(linked) >= 15
    for target in linked:
        path = (ROOT / target).resolve()
        assert path.exists(), target
        assert path.suffix != ".md" or path.relative_to(DOCS).as_posix() in NAV, f"{target}: not in the nav"


def test_ci_builds_the_site_strictly_and_its_output_is_ignored():
    ci = (ROOT / ".ci" / "run").read_text()
    build = next(line for line in ci.splitlines() if "mkdocs build" in line)
    assert "--strict" in build and "--quiet" not in build and " -q" not in build  # --quiet hides what strict counts
    assert CONFIG["hooks"] == ["docs/hooks.py"] and CONFIG["docs_dir"] == "docs"
    assert "/site/" in (ROOT / ".gitignore").read_text().split()


def test_the_catalogue_page_holds_every_check_its_needs_and_its_witness():
    from conformance.checks import CATALOGUE
    from tests.kill_matrix import PLACES

    page = HOOKS.checks_page()
    rows = {row.split(" | ")[0].strip("| `"): row for row in page.splitlines() if row.startswith("| `")}
    assert set(rows) == set(CATALOGUE)
    for check_id, chk in CATALOGUE.items():
        assert HOOKS._cell(chk.statement) in rows[check_id], check_id
        assert all(need in rows[check_id] for need in chk.needs), check_id
        assert f"[`{PLACES[check_id].witness.__name__}`]" in rows[check_id], check_id


def test_the_report_page_names_every_field_of_the_schema():
    from conformance.report.certificate import SCHEMA_PATH

    page, schema = HOOKS.report_page(), json.loads(SCHEMA_PATH.read_text())

    def fields(node):
        if isinstance(node, dict):
            yield from node.get("properties", {})
            for value in node.values():
                yield from fields(value)
        elif isinstance(node, list):
            for value in node:
                yield from fields(value)

    assert not [f for f in set(fields(schema)) if f"| `{f}` |" not in page]
    assert json.loads(page.split("```json\n")[1].split("\n```")[0]) == schema


def test_the_cli_page_names_every_command_and_option():
    from conformance.front.cli import build_parser

    page = HOOKS.cli_page()

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    assert f"## `{' '.join(path + [name])}`" in page
                    walk(child, path + [name])
            elif not isinstance(action, argparse._HelpAction):
                assert all(f"`{flag}" in page for flag in action.option_strings), action.option_strings

    walk(build_parser(), [])


@pytest.mark.parametrize(("repo_url", "expected"), [
    ("", "see `tests/mutants.py`, [the zoo](../mutant-zoo.md) and [x](https://example.org/a.py)"),
    ("https://example.org/r", "see [`tests/mutants.py`](https://example.org/r/blob/main/tests/mutants.py), "
                              "[the zoo](../mutant-zoo.md) and [x](https://example.org/a.py)"),
])
def test_links_to_the_repository_become_links_into_it_or_plain_text(repo_url, expected):
    text = "see [`tests/mutants.py`](../../tests/mutants.py), [the zoo](../mutant-zoo.md) and [x](https://example.org/a.py)"
    page = SimpleNamespace(file=SimpleNamespace(src_uri="recipes/add-check.md"))
    assert HOOKS.on_page_markdown(text, page, {"repo_url": repo_url}, None) == expected
