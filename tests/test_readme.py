"""The README's two commands are the ones CI runs, so a fresh machine needs only them; the
docs' example optimizer is certified and their layout names every module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The pages that give the set-up and test commands: the README and the site's home page.
FRONT_PAGES = ("README.md", "docs/index.md")


def _command_after(heading: str, page: str = "README.md") -> str:
    text = (ROOT / page).read_text()
    match = re.search(re.escape(heading) + r".*?```sh\n(.*?)\n```", text, re.S)
    assert match, f"{page} has no sh block after {heading!r}"
    return match.group(1).strip()


@pytest.mark.parametrize("page", FRONT_PAGES)
def test_ci_runs_the_readme_commands_verbatim(page):
    ci = (ROOT / ".ci" / "run").read_text()
    for heading in ("**Set up and run**", "**Run the tests**"):
        command = _command_after(heading, page)
        assert "\n" + command + "\n" in ci, f"{page}, {heading}: .ci/run does not run {command!r}"


def test_the_fast_inner_loop_deselects_the_slow_and_end_to_end_tests():
    for page in FRONT_PAGES:
        assert _command_after("**The fast inner loop**", page) == \
            '.venv/bin/python -m pytest -n auto -m "not slow and not e2e"', page


@pytest.mark.e2e
def test_the_readme_example_optimizer_is_certified(tmp_path):
    import subprocess
    import sys

    page = (ROOT / "docs" / "certify.md").read_text()
    section = page[page.index("## Certify your optimizer"):]
    source = re.search(r"```python\n(.*?)\n```", section, re.S).group(1)
    command = re.search(r"```sh\n\.venv/bin/adam-conformance (certify [^\n]*)\n```", section).group(1)
    (tmp_path / "my_adam.py").write_text(source)
    result = subprocess.run([sys.executable, "-m", "conformance", *command.split()],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "CONFORMANT: my_adam:MyAdam behaves like torch.optim.Adam" in result.stdout


def test_the_layout_block_names_every_module_and_stage():
    page = (ROOT / "docs" / "how-it-works.md").read_text()
    block = page[page.index("## Layout"):page.index("impls/ ", page.index("## Layout"))]
    package = ROOT / "conformance"
    stages = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.name for p in package.glob("*.py") if not p.name.startswith("__")}
    for stage in stages:
        assert f"  {stage}/" in block, stage
        for module in (package / stage).glob("*.py"):
            assert module.name.startswith("__") or module.stem in block, f"{stage}/{module.name}"
    for module in modules:
        assert f"  {module}" in block, module
