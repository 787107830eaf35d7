"""pytest plugin: ``pytest --adam-impl TARGET`` runs the check catalogue in any test suite.

Loaded through the ``pytest11`` entry point for every pytest run in an environment
with the suite installed, so it imports nothing heavy (no torch) until ``--adam-impl``
is given. The checks are ordinary test items (``test_check[parity.trajectory]``), so
``-k``, ``-x``, ``-n``, ``--junitxml`` and every other pytest habit work.

With ``--adam-impl``, the controller runs the preflight once (`conformance.run.preflight`,
in a process of its own) and hands its record to the pytest-xdist workers through
``workerinput``, as pytest-randomly hands over its seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conformance.front.flags import Options, add_pytest_flags

SUITE = Path(__file__).with_name("suite.py")
TARGET = pytest.StashKey()
PREFLIGHT = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("adam-conformance", "certify an Adam / AdamW implementation")
    group.addoption("--adam-impl", metavar="TARGET",
                    help="run the check catalogue against TARGET: a registered name or package.module:attr")
    add_pytest_flags(group)
    group.addoption("--adam-database", metavar="DIR",
                    help="hypothesis example database, so failures replay first next time "
                         "(default: the user cache directory; 'none' keeps none)")
    group.addoption("--adam-preflight", metavar="PATH",
                    help="use the preflight record at PATH instead of running the preflight "
                         "(adam-conformance certify passes the one it ran)")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("adam_impl"):
        return
    from conformance.checks import checked_ids
    from conformance.front.options import target_of
    from conformance.registry import TargetError

    try:
        opts = Options.parsed(config.getoption("adam_impl"), "pytest", lambda name: config.getoption("adam_" + name))
        target = target_of(opts)
        checked_ids(opts.skip, "--adam-skip")
        found = _preflight(config, opts, target)
    except TargetError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[TARGET] = found.apply(target)
    config.stash[PREFLIGHT] = found
    if config.getoption("adam_check_timeout") is None:
        config.option.adam_check_timeout = found.check_timeout(target.profile)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks())
    config.args.append(str(SUITE))


def _preflight(config: pytest.Config, opts, target):
    """The preflight record: a worker's from its controller, a given one, or a fresh run."""
    from conformance.front.isolation import preflight
    from conformance.run.preflight import Preflight

    if hasattr(config, "workerinput"):
        return Preflight.from_json(json.loads(config.workerinput["adam_preflight"]))
    given = config.getoption("adam_preflight")
    if given:
        return Preflight.from_json(json.loads(Path(given).read_text()))
    return preflight(opts, target)


class XdistHooks:
    """Registered only where pytest-xdist is installed: the preflight record goes to each worker."""

    def pytest_configure_node(self, node) -> None:
        node.workerinput["adam_preflight"] = json.dumps(node.config.stash[PREFLIGHT].to_json())


def database_dir(config: pytest.Config) -> Path | None:
    chosen = config.getoption("adam_database")
    if chosen == "none":
        return None
    if chosen:
        return Path(chosen)
    target = config.stash[TARGET]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "adam-conformance" / "examples" / f"{_safe(target.impl.name)}-{target.spec}-{target.device}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    if TARGET not in config.stash:
        return None
    from conformance.report.environment import describe_environment

    target = config.stash[TARGET]
    lines = describe_environment(target, config.getoption("adam_seed"), config.stash[PREFLIGHT],
                                 config.getoption("adam_skip"))
    return [f"adam-conformance: {line}" for line in lines]
