"""MkDocs hooks (``hooks:`` in mkdocs.yml): three pages generated from the code at build time,
so that they cannot drift from it, and the pages' links to the repository's own files.

- ``reference/checks.md``: the check catalogue (`conformance.checks.CATALOGUE`), with each
  check's witness mutant and place (`PLACES` in tests/kill_matrix.py);
- ``reference/report.md``: the JSON report schema (conformance/report/report.schema.json), as
  tables and raw;
- ``reference/cli.md``: every command and option of ``adam-conformance``, walked from the
  argparse parser `conformance.front.cli.build_parser` returns.

A link from a page to a file of the repository outside docs/ (``../conformance/registry.py``)
works where the Markdown is read in the repository; in the site it becomes a link into
``repo_url`` where mkdocs.yml sets one, else its text alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import posixpath
import re
import sys
import types
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: A Markdown link or image: (text, target).
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
#: Warnings here count as MkDocs' own: `mkdocs build --strict` fails on them.
LOG = logging.getLogger("mkdocs.hooks")
#: The check kinds, in the order the catalogue page lists them.
KINDS = ("parity", "invariant", "contract", "cuda", "sharded")


def _cell(text) -> str:
    """`text` fit for one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "&#124;")


def _first_paragraph(doc: str | None) -> str:
    """A docstring's first paragraph, its reST literals as Markdown code."""
    return " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "`")


def _table(head: tuple[str, ...], rows: list[tuple]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + \
           ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


# -- the check catalogue ---------------------------------------------------------------------


def _needs(chk) -> str:
    """What a check needs: features claimed, edges accepted, the device or processes it observes."""
    from conformance.vocabulary import EDGES

    needs = [f"{n} accepted" if n in EDGES else n for n in sorted(chk.needs)]
    if chk.device:
        needs.append(f"{chk.device.upper()} only")
    if chk.sharded:
        needs.append("a distributed target, world size 2 or more")
    return ", ".join(needs) or "-"


def _witness(place) -> str:
    cls = place.witness
    path = cls.__module__.replace(".", "/") + ".py"
    return f"[`{cls.__name__}`](../../{path}): {_first_paragraph(cls.__doc__)}"


def checks_page() -> str:
    """The catalogue: per kind, each check's id, statement, needs, witness mutant and place."""
    from conformance.checks import CATALOGUE
    from tests.kill_matrix import PLACES

    counts = ", ".join(f"{sum(c.startswith(k + '.') for c in CATALOGUE)} {k}" for k in KINDS)
    lines = ["# The check catalogue", "",
             "Generated when the site is built, from the suite's check registry (`conformance.checks.CATALOGUE`) "
             "and the kill matrix (`PLACES` in [tests/kill_matrix.py](../../tests/kill_matrix.py)), so it says "
             "what the code holds.", "",
             f"{len(CATALOGUE)} checks: {counts}. A target that does not claim what a check needs skips it, and the "
             "report says why (\"not claimed: amsgrad\"). Each check has a *witness*, a planted bug of the mutant zoo "
             "that it must catch through its own property; its *place* says whether it is the only check that "
             "catches its witness or a deliberate second line of defence, and why. What the properties mean and how "
             "Cases are drawn: [What conformance means](../conformance.md); the zoo: "
             "[The mutant zoo](../mutant-zoo.md).", ""]
    for kind in KINDS:
        ids = sorted(c for c in CATALOGUE if c.startswith(kind + "."))
        lines += [f"## {kind}", "", _first_paragraph(sys.modules[f"conformance.checks.{kind}"].__doc__), ""]
        rows = [(f"`{c}`", CATALOGUE[c].statement, _needs(CATALOGUE[c]), _witness(PLACES[c]),
                 f"second line: {PLACES[c].reason}" if PLACES[c].reason else "only it catches its witness")
                for c in ids]
        lines += _table(("id", "property", "needs", "witness", "place"), rows) + [""]
    return "\n".join(lines)


# -- the JSON report schema ------------------------------------------------------------------


def _anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _nested(node: dict) -> tuple[dict | None, str]:
    """The object with named properties inside `node` (itself, its items, its values) and the
    suffix its path takes; (None, "") if there is none."""
    for inner, suffix in ((node, ""), (node.get("items"), "[]"), (node.get("additionalProperties"), ".*")):
        if isinstance(inner, dict) and "properties" in inner:
            return inner, suffix
    return None, ""


def _type(node, path: str) -> str:
    """A schema node's type in words, nested objects and definitions as links to their tables."""
    if not isinstance(node, dict):
        return "any" if node else "nothing"
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    if "properties" in node:
        words = [f"[object](#{_anchor(path)})"]
    elif "items" in node:
        words = [f"array of {_type(node['items'], path + '[]')}"]
    elif isinstance(node.get("additionalProperties"), dict):
        words = [f"object of {_type(node['additionalProperties'], path + '.*')}"]
    else:
        words = []
    kinds = node.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    said = " or ".join(words + [k for k in kinds if not (words and k in ("object", "array"))]) or "any"
    bounds = [f"matching `{node['pattern']}`" if "pattern" in node else "",
              f"at least {node['minimum']}" if "minimum" in node else ""]
    return " ".join([said] + [b for b in bounds if b])


def _sections(path: str, node: dict, out: list[str]) -> None:
    """`node`'s table of fields, then the table of each object nested in it, depth first."""
    required = set(node.get("required", ()))
    rows = [(f"`{key}`", _type(sub, f"{path}.{key}"), "yes" if key in required else "",
             sub.get("description", "") if isinstance(sub, dict) else "")
            for key, sub in node["properties"].items()]
    out += [f"### `{path}` {{#{_anchor(path)}}}", ""]
    if node.get("description"):
        out += [_first_paragraph(node["description"]), ""]
    out += _table(("field", "type", "required", "what"), rows) + [""]
    for key, sub in node["properties"].items():
        inner, suffix = _nested(sub) if isinstance(sub, dict) else (None, "")
        if inner is not None and "$ref" not in sub:
            _sections(f"{path}.{key}{suffix}", inner, out)


def report_page() -> str:
    """The report schema: its top level, each nested object, each definition, then the raw JSON."""
    from conformance.report.certificate import SCHEMA_PATH, VERSION

    text = SCHEMA_PATH.read_text()
    schema = json.loads(text)
    lines = ["# The JSON report schema", "",
             f"Generated when the site is built from `conformance/report/report.schema.json` "
             f"([raw](#schema-raw)), the JSON Schema of the report `adam-conformance certify --json` writes, "
             f"version {VERSION}. The tests validate every report they write against it. What the fields mean in "
             f"practice: [Certify and read the verdict](../certify.md#the-json-report).", "", "## The report", ""]
    _sections("report", schema, lines)
    lines += ["## Definitions", ""]
    for name, node in schema["$defs"].items():
        if "properties" in node:
            _sections(name, node, lines)
        else:
            lines += [f"### `{name}` {{#{_anchor(name)}}}", "", f"{_type(node, name)}. "
                      f"{_first_paragraph(node.get('description'))}".rstrip(" ."), ""]
    return "\n".join(lines + ["## The schema, raw {#schema-raw}", "", "```json", text.rstrip(), "```", ""])


# -- the command line ------------------------------------------------------------------------


def _kind(action: argparse.Action) -> str:
    """An option's type in words: its choices, or its converter (a builtin's name, else its docstring)."""
    if action.choices:
        return "one of " + ", ".join(f"`{c}`" for c in action.choices)
    if action.nargs == 0:
        return "flag"
    if action.type in (None, str):
        return "text"
    if action.type in (int, float):
        return action.type.__name__
    return _first_paragraph(action.type.__doc__) or getattr(action.type, "__name__", "")


def _row(action: argparse.Action) -> tuple[str, str, str, str]:
    """flags, type, default, help of one action."""
    name = ", ".join(action.option_strings) or (action.metavar or action.dest)
    if action.option_strings and action.nargs != 0:
        name += f" {action.metavar or action.dest.upper()}"
    repeat = {"*": "; any number", "+": "; one or more"}.get(action.nargs, "")
    if isinstance(action, argparse._AppendAction):
        repeat = "; repeatable"
    quiet = action.default is None or action.default is False or action.default in ([], argparse.SUPPRESS)
    default = "" if quiet else f"`{action.default}`"
    text = (action.help or "") % {"default": action.default, "prog": ""} if action.help else ""
    return f"`{name}`", _kind(action) + repeat, default, text


def _command(parser: argparse.ArgumentParser, path: list[str], summary: str, out: list[str]) -> None:
    """One command's section (usage, description, options), then its subcommands'."""
    if path:
        out += [f"## `{' '.join(path)}`", ""]
    about = parser.description or summary
    out += ([about, ""] if about else []) + ["```", parser.format_usage().strip(), "```", ""]
    actions = [a for a in parser._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and a.help != argparse.SUPPRESS]
    if actions:
        out += _table(("argument", "type", "default", "what"), [_row(a) for a in actions]) + [""]
    for sub in (a for a in parser._actions if isinstance(a, argparse._SubParsersAction)):
        helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
        for name, child in sub.choices.items():
            _command(child, path + [name], helps.get(name, ""), out)


def _pytest_parser() -> argparse.ArgumentParser:
    """The pytest plugin's options (`conformance.front.plugin.pytest_addoption`), on an argparse parser."""
    from conformance.front import plugin

    parser = argparse.ArgumentParser(prog="pytest", add_help=False)
    group = types.SimpleNamespace(addoption=parser.add_argument)
    plugin.pytest_addoption(types.SimpleNamespace(getgroup=lambda *args: group))
    return parser


def cli_page() -> str:
    """Every command of `adam-conformance`, as `build_parser` builds them."""
    from conformance.front.cli import build_parser

    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines to the terminal: the page's are fixed
    try:
        lines = ["# The command line", "",
                 "Generated when the site is built, by walking the parser `conformance.front.cli.build_parser()` "
                 "returns: every command, and each option's flags, type or choices, default and help. The same "
                 "text, for one command: `adam-conformance COMMAND --help`.", ""]
        _command(build_parser(), [], "", lines)
        _command(_pytest_parser(), ["pytest"], "The pytest plugin: `pytest --adam-impl TARGET` runs the check "
                 "catalogue in any test suite, with the certifying options as `--adam-*` (the same table).", lines)
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(lines)


#: The generated pages, by where they sit in the site.
PAGES = {"reference/checks.md": checks_page, "reference/report.md": report_page, "reference/cli.md": cli_page}


# -- MkDocs events ---------------------------------------------------------------------------


def on_config(config):
    """The repository's root on sys.path: the pages import the suite and its tests."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return config


def on_files(files, config):
    """Add the generated pages."""
    from mkdocs.structure.files import File

    with warnings.catch_warnings():  # what torch's import says of its own deprecations is not the site's
        warnings.simplefilter("ignore", DeprecationWarning)
        for uri, render in PAGES.items():
            files.append(File.generated(config, uri, content=render()))
    return files


def repository_path(page_uri: str, target: str) -> str | None:
    """The repository path a relative link from docs/`page_uri` points to outside docs/, or None."""
    if re.match(r"[a-z][a-z0-9+.-]*:|[#/]", target):
        return None
    path = posixpath.normpath(posixpath.join("docs", posixpath.dirname(page_uri), target.split("#")[0]))
    return path if not path.startswith(("docs/", "../")) and path != "docs" else None


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Links to the repository's own files: into `repo_url`, or their text alone."""
    repo = (config.get("repo_url") or "").rstrip("/")

    def resolve(match: re.Match) -> str:
        text, target = match.groups()
        path = repository_path(page.file.src_uri, target)
        if path is None:
            return match.group(0)
        if not (ROOT / path).exists():
            LOG.warning(f"Doc file '{page.file.src_uri}' links to '{target}', which names no file of the repository")
            return match.group(0)
        kind = "tree" if (ROOT / path).is_dir() else "blob"
        return f"{text}({repo}/{kind}/main/{path})" if repo else text.lstrip("!")[1:-1]

    return LINK.sub(resolve, markdown)
