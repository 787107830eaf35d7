"""The certifying commands' options, each declared once (`FLAGS`): its flag, how its text
becomes a value, its default, its help, and which commands take it.

From the table come the argparse options of ``certify``, ``diagnose`` and ``survey`` and of
the preflight's process, the pytest plugin's ``--adam-*`` options, the command line
``certify`` hands to pytest, and `Options`, typed, from whatever parsed them. It imports
nothing heavy: the pytest plugin reads it in every pytest run.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable

from conformance.vocabulary import DEVICES, FEATURES, PROFILES, SPECS

#: The most processes --world-size may ask for.
MAX_WORLD_SIZE = 8


def positive(text: str) -> int:
    """A whole number above 0."""
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a positive whole number, not {text!r}")


def seconds(text: str) -> float:
    """A number of seconds above 0."""
    try:
        if float(text) > 0:
            return float(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")


def workers(text: str) -> int | str:
    """pytest-xdist's worker count: a whole number, or ``auto`` (one a core)."""
    if text == "auto" or text.isdigit():
        return text if text == "auto" else int(text)
    raise argparse.ArgumentTypeError(f"expected a number of workers or 'auto', not {text!r}")


def world_size(text: str) -> int:
    """A number of processes, 1 to MAX_WORLD_SIZE (8)."""
    text = str(text).strip()
    if text.isdigit() and 1 <= int(text) <= MAX_WORLD_SIZE:
        return int(text)
    raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to {MAX_WORLD_SIZE}, not {text!r}")


@dataclasses.dataclass(frozen=True)
class Flag:
    """One option. ``name`` is its `Options` field and argparse dest; its flag is
    ``--name-with-dashes`` (``short`` in its place where given) and, for pytest,
    ``--adam-name-with-dashes``. ``commands`` maps each command taking it to what differs
    there (another default or help)."""

    name: str
    help: str
    commands: dict[str, dict]
    default: object = None
    type: Callable[[str], object] | None = None
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    repeat: bool = False  # given once per value; a tuple in Options
    short: str | None = None

    @property
    def flag(self) -> str:
        return self.short or "--" + self.name.replace("_", "-")

    def for_command(self, command: str) -> Flag:
        """This option as `command` takes it."""
        return dataclasses.replace(self, **self.commands[command])

    def keywords(self) -> dict:
        """Its argparse keywords (pytest's addoption takes the same)."""
        shown = "" if self.default in (None, (), "") else f" (default {self.default})"
        kw = dict(dest=self.name, help=self.help + shown, metavar=self.metavar)
        if self.repeat:
            return kw | dict(action="append", default=[], choices=self.choices)
        return kw | dict(default=self.default, type=self.type, choices=self.choices)


_TIMEOUTS = ", ".join(f"{p.timeout:g} s {name}" for name, p in PROFILES.items())

FLAGS = (
    Flag("spec", "the semantics to certify against (default: the target's own)", choices=SPECS,
         commands=dict(certify={}, pytest={}, preflight={},
                       diagnose=dict(help="the spec to compare with (default: the target's own)"))),
    Flag("profile", "how hard to look: quick, a CI gate; standard; thorough, nightly with 10x the examples",
         default="standard", choices=tuple(PROFILES),
         commands=dict(certify={}, pytest={}, survey=dict(default="quick"))),
    Flag("device", "the device to run on", default="cpu", choices=DEVICES,
         commands=dict(certify={}, pytest={}, preflight={}, diagnose={}, survey={})),
    Flag("without", "disclaim a feature (repeatable): " + ", ".join(FEATURES), metavar="FEATURE", repeat=True,
         commands=dict(certify={}, pytest={}, preflight={}, diagnose={})),
    Flag("skip", "certify everything but this check (repeatable); the report says so", metavar="CHECK_ID",
         repeat=True, commands=dict(certify={}, pytest={})),
    Flag("seed", "the hypothesis seed: a run repeats under the same seed", default=0, type=int,
         commands=dict(certify={}, pytest={})),
    Flag("workers", "worker processes: 1, one forked from a process that has imported torch; 0, none (the "
         "checks in this process, unisolated: a target that ends it ends certify; not taken where the "
         "preflight's process died or hung); 2 or more, or auto, pytest-xdist's", default=1, type=workers,
         metavar="WORKERS", short="-n",
         commands=dict(certify={}, survey=dict(default=0, help="worker processes per target (0: its checks in its "
                                                                "own process; see certify's -n)"))),
    Flag("json", "write the JSON report (docs: the report schema); with several targets, a directory for "
         "TARGET.json each", metavar="PATH",
         commands=dict(certify={}, preflight={}, diagnose=dict(help="also write the findings as JSON"))),
    Flag("junit", "write JUnit XML (pytest's own); with several targets, a directory", metavar="PATH",
         commands=dict(certify={})),
    Flag("repro_dir", "write reproducers here (default: a new temporary directory); with several targets, one "
         "folder each inside it", metavar="DIR", commands=dict(certify={})),
    Flag("check_timeout", f"the time limit per check; past it the check errors and the run goes on (default: the "
         f"profile's, {_TIMEOUTS}, longer for a slow target)", type=seconds, metavar="SECONDS",
         commands=dict(certify={}, pytest={})),
    Flag("world_size", f"processes a distributed target runs on, 1 to {MAX_WORLD_SIZE} (gloo on the CPU, nccl with "
         "CUDA)", default=1,
         type=world_size, metavar="N", commands=dict(certify={}, pytest={})),
    Flag("jobs", "with several targets, certify N at once, each in a process of its own (1: one after another)",
         default=1, type=positive, metavar="N", commands=dict(certify={}, survey=dict(default=2))),
)


def _default(name: str):
    """The table's default of option `name` (as certify takes it)."""
    return next(f.default for f in FLAGS if f.name == name)


@dataclasses.dataclass(frozen=True)
class Options:
    """What to certify and how: one target and the table's options, typed, at the table's defaults."""

    target: str
    spec: str | None = _default("spec")
    profile: str = _default("profile")
    device: str = _default("device")
    without: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    seed: int = _default("seed")
    workers: int | str = _default("workers")
    json: str | None = _default("json")
    junit: str | None = _default("junit")
    repro_dir: str | None = _default("repro_dir")
    check_timeout: float | None = _default("check_timeout")
    world_size: int = _default("world_size")
    jobs: int = _default("jobs")

    @classmethod
    def parsed(cls, target: str, command: str, value: Callable[[str], object]) -> Options:
        """Options from what `command`'s parser gave (``value(name)``); the rest at their defaults."""
        given = {f.name: value(f.name) for f in FLAGS if command in f.commands}
        return cls(target, **{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})

    def argv(self, command: str) -> list[str]:
        """These options as `command`'s command line, the target first (for pytest, the
        plugin's: ``--adam-impl TARGET --adam-...``)."""
        argv = ["--adam-impl", self.target] if command == "pytest" else [self.target]
        for f in FLAGS:
            value = getattr(self, f.name)
            if command in f.commands and value is not None:
                flag = pytest_flag(f) if command == "pytest" else f.flag
                argv += [a for v in (value if f.repeat else [value]) for a in (flag, str(v))]
        return argv


def pytest_flag(flag: Flag) -> str:
    return "--adam-" + flag.name.replace("_", "-")


def add_flags(parser, command: str) -> None:
    """`command`'s options from the table, onto an argparse parser."""
    for f in FLAGS:
        if command in f.commands:
            f = f.for_command(command)
            parser.add_argument(f.flag, **f.keywords())


def add_pytest_flags(group) -> None:
    """The pytest plugin's options from the table: ``--adam-NAME`` for each option pytest takes."""
    for f in FLAGS:
        if "pytest" in f.commands:
            f = f.for_command("pytest")
            keywords = {k: v for k, v in f.keywords().items() if v is not None}
            group.addoption(pytest_flag(f), **keywords | dict(dest="adam_" + f.name))
