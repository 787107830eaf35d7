"""The README's two commands are the ones CI runs, so a fresh machine needs only them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _command_after(heading: str) -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(re.escape(heading) + r".*?```sh\n(.*?)\n```", readme, re.S)
    assert match, f"README has no sh block after {heading!r}"
    return match.group(1).strip()


def test_ci_runs_the_readme_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text()
    for heading in ("**Set up and run**", "**Run the tests**"):
        command = _command_after(heading)
        assert "\n" + command + "\n" in ci, f"{heading}: .ci/run does not run {command!r}"


def test_the_readme_example_optimizer_is_certified(tmp_path):
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Certify your optimizer"):]
    source = re.search(r"```python\n(.*?)\n```", section, re.S).group(1)
    command = re.search(r"```sh\n\.venv/bin/adam-conformance (certify [^\n]*)\n```", section).group(1)
    (tmp_path / "my_adam.py").write_text(source)
    result = subprocess.run([sys.executable, "-m", "conformance", *command.split()],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "CONFORMANT: my_adam:MyAdam behaves like torch.optim.Adam" in result.stdout


def test_the_check_table_is_the_catalogue():
    from conformance.checks import CATALOGUE

    readme = (ROOT / "README.md").read_text()
    readme = readme[readme.index("## What conformance means"):readme.index("## How strong is the suite")]
    kinds = "parity|invariant|contract|cuda|sharded"
    rows = re.findall(rf"^\| `((?:{kinds})\.[a-z0-9-]+)` \| (.*?) \| (.*?) \|$", readme, re.M)
    table = {check_id: statement.replace("&#124;", "|") for check_id, statement, _ in rows}
    assert table == {check_id: check.statement for check_id, check in CATALOGUE.items()}
    for check_id, _, needs in rows:
        claimed = {n.strip().removesuffix(" accepted") for n in needs.split(",")} - {"-"}
        assert claimed == set(CATALOGUE[check_id].needs), check_id


def test_the_layout_block_names_every_module_and_stage():
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Layout"):readme.index("impls/ ", readme.index("## Layout"))]
    package = ROOT / "conformance"
    stages = {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.name for p in package.glob("*.py") if not p.name.startswith("__")}
    for stage in stages:
        assert f"  {stage}/" in block, stage
        for module in (package / stage).glob("*.py"):
            assert module.name.startswith("__") or module.stem in block, f"{stage}/{module.name}"
    for module in modules:
        assert f"  {module}" in block, module
