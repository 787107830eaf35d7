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

from conformance.vocabulary import DEVICES, PROFILES, SPECS

SUITE = Path(__file__).with_name("suite.py")
TARGET = pytest.StashKey()
PREFLIGHT = pytest.StashKey()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("adam-conformance", "certify an Adam / AdamW implementation")
    group.addoption("--adam-impl", metavar="TARGET",
                    help="run the check catalogue against TARGET: a registered name or package.module:attr")
    group.addoption("--adam-spec", choices=SPECS,
                    help="semantics to certify against (default: what the target declares, else adam)")
    group.addoption("--adam-profile", choices=list(PROFILES), default="standard",
                    help="how hard to look: examples per check and case sizes (default: standard)")
    group.addoption("--adam-device", choices=DEVICES, default="cpu", help="device to run on (default: cpu)")
    group.addoption("--adam-without", action="append", default=[], metavar="FEATURE",
                    help="disclaim a feature (repeatable), e.g. complex, float16, noncontiguous")
    group.addoption("--adam-skip", action="append", default=[], metavar="CHECK_ID",
                    help="skip a check (repeatable); the report says it was skipped on request")
    group.addoption("--adam-seed", type=int, default=0, help="hypothesis seed (default: 0, deterministic)")
    group.addoption("--adam-world-size", default="1", metavar="N",
                    help="processes a distributed target runs on, 1 to 8 (gloo on the CPU, nccl with CUDA)")
    group.addoption("--adam-check-timeout", type=float, metavar="SECONDS",
                    help="time limit per check; past it the check errors and the run goes on (default: the "
                         "profile's, 120 quick, 900 standard, 7200 thorough, plus what a slow target needs)")
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
    from conformance.front.options import build_target
    from conformance.registry import TargetError

    try:
        target = build_target(
            config.getoption("adam_impl"),
            spec=config.getoption("adam_spec"),
            profile=config.getoption("adam_profile"),
            device=config.getoption("adam_device"),
            without=config.getoption("adam_without"),
            world_size=config.getoption("adam_world_size"),
        )
        checked_ids(config.getoption("adam_skip"), "--adam-skip")
        found = _preflight(config, target)
    except TargetError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[TARGET] = found.apply(target)
    config.stash[PREFLIGHT] = found
    if config.getoption("adam_check_timeout") is None:
        config.option.adam_check_timeout = found.check_timeout(target.profile)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(XdistHooks())
    config.args.append(str(SUITE))


def _preflight(config: pytest.Config, target):
    """The preflight record: a worker's from its controller, a given one, or a fresh run."""
    from conformance.front.isolation import preflight
    from conformance.run.preflight import Preflight

    if hasattr(config, "workerinput"):
        return Preflight.from_json(json.loads(config.workerinput["adam_preflight"]))
    given = config.getoption("adam_preflight")
    if given:
        return Preflight.from_json(json.loads(Path(given).read_text()))
    return preflight(config.getoption("adam_impl"), target, config.getoption("adam_without"),
                     config.getoption("adam_spec"))


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
