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
    result = subprocess.run([sys.executable, "-m", "conformance.cli", *command.split()],
                            cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "CONFORMANT: my_adam:MyAdam behaves like torch.optim.Adam" in result.stdout
