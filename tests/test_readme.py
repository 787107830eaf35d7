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
    for heading in ("**Set up and run**", "**Run the tests:**"):
        command = _command_after(heading)
        assert command in ci.splitlines(), f"{heading}: .ci/run does not run {command!r}"
