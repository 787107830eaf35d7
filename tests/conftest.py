"""Shared fixtures for the project's own tests."""

from __future__ import annotations

import sys
import textwrap

import pytest


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a module into a fresh directory on sys.path and return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)
