"""The ``adam-conformance`` command line.

Exit codes: 0 success (conformant), 1 not conformant or verification failed,
2 an unusable invocation or target, with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import functools
import sys

from conformance import registry
from conformance.front.flags import Options, add_flags, positive, seconds
from conformance.vocabulary import DECLARED, DEFAULT_CLAIMS, DEVICES


class UsageError(Exception):
    """A user mistake: reported as one line, exit code 2."""


def cmd_list(args: argparse.Namespace) -> int:
    """Print implementations (every registered one, or the targets named), their claims
    and how they run here. A named target that cannot be used is an error (exit 2)."""
    rows = [("implementation", "spec", "runs here", "claims", "description")]
    for name in args.targets or registry.registered():
        try:
            impl = registry.resolve(name)
        except registry.TargetError as e:
            if args.targets:
                raise
            rows.append((name, "?", "cannot load", "-", str(e)))
            continue
        rows.append((name, impl.spec, impl.describe_how(), _claims(impl.claims), impl.description))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])
    return 0


def _claims(claims: frozenset[str]) -> str:
    """'all but complex; declares allocation_free': the default claims it lacks, the declared it makes."""
    missing = [f for f in DEFAULT_CLAIMS if f not in claims]
    declared = [f for f in DECLARED if f in claims]
    return (("all but " + ", ".join(missing)) if missing else "all features") + \
        ("; declares " + ", ".join(declared) if declared else "")


def cmd_golden(args: argparse.Namespace) -> int:
    """Verify the golden traces (exit 1 on any problem) or rebuild them from the oracle."""
    from pathlib import Path

    from conformance.truth import golden

    directory = Path(args.dir) if args.dir else golden.DEFAULT_DIR
    if args.action == "regenerate":
        written = golden.regenerate(directory)
        size = sum(p.stat().st_size for p in written)
        print(f"golden: wrote {len(written) // 2} scenarios ({size / 1e6:.2f} MB) to {directory}")
        return 0
    if not directory.is_dir():
        raise UsageError(f"{directory}: no such directory")
    problems = golden.verify(directory)
    for problem in problems:
        print(f"golden: {problem}", file=sys.stderr)
    if problems:
        print(f"golden: {len(problems)} problem(s) in {directory}; "
              "`adam-conformance golden regenerate` rebuilds the files from the oracle", file=sys.stderr)
        return 1
    files = [p for p in directory.iterdir() if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    print(f"golden: {len(golden.scenarios(directory))} scenarios, {len(files)} files verified "
          f"({size / 1e6:.2f} MB) in {directory}")
    return 0


def cmd_certify(args: argparse.Namespace) -> int:
    """Certify each target: exit 0 when all are conformant, 1 when one is not."""
    from conformance.run import forked

    forked.start()  # the preflight's server imports torch beside this process
    from conformance.front.certify import certify_all

    return certify_all(_options(args, "certify", args.targets[0]), args.targets, args.record)


def _options(args: argparse.Namespace, command: str, target: str = "") -> Options:
    return Options.parsed(target, command, functools.partial(getattr, args))


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Say which known Adam variant a target implements, point by point: certify's preflight
    first, then the probes, then parity (from --report, else a quick check of its own). Exit 0."""
    import json
    from pathlib import Path

    from conformance import diagnose
    from conformance.front.options import target_of, writable
    from conformance.report import compare
    from conformance.report.environment import describe_environment
    from conformance.run import preflight

    opts = _options(args, "diagnose", args.target)
    target = target_of(opts)
    writable(opts.json, "--json")
    try:
        certified = diagnose.from_report(compare.load(args.report), target, args.report) if args.report else None
    except compare.ReportError as e:
        raise UsageError(f"--report {e}") from None
    except diagnose.ReportError as e:
        raise UsageError(str(e)) from None
    found = preflight.run(target)  # a target it cannot use at all: PreflightError, one line
    header = [line for line in describe_environment(found.apply(target), 0, found) if not line.startswith("profile ")]
    print("adam-conformance diagnose\n" + "".join(f"  {line}\n" for line in header))
    try:
        diagnosis = diagnose.examine(target, certified, found)
    except Exception as e:  # a target the probes cannot drive: one line, not a traceback
        raise UsageError(f"{args.target} could not be diagnosed: {type(e).__name__}: {e}") from None
    print(diagnosis.render())
    if args.json:
        Path(args.json).write_text(json.dumps(diagnosis.document(), indent=1) + "\n")
        print(f"JSON: {args.json}")
    return 0


def cmd_survey(args: argparse.Namespace) -> int:
    """Certify many optimizers into one table. Exit 0 once it is written."""
    from pathlib import Path

    from conformance.run import forked

    forked.start()
    from conformance.front import survey

    return survey.run(args.targets, Path(args.out), _options(args, "survey"))


def cmd_compare(args: argparse.Namespace) -> int:
    """Say what changed between two reports: exit 0 if nothing semantic, 1 if so (2: unusable input)."""
    import json

    from conformance.report import compare

    try:
        a, b = compare.load(args.a), compare.load(args.b)
        changes = compare.compare(a, b, args.factor)
    except compare.ReportError as e:
        raise UsageError(str(e)) from None
    if args.json:
        print(json.dumps(compare.document(changes), indent=1))
    else:
        print(compare.render(args.a, a, args.b, b, changes, args.factor))
    return 1 if any(c.semantic for c in changes) else 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time the targets' steps beside torch's paths and the in-place bandwidth. Exit 0."""
    from conformance.front.bench import Options, bench

    return bench(Options(targets=tuple(args.targets), sets=tuple(args.set), dtypes=tuple(args.dtype),
                         devices=tuple(dict.fromkeys(args.device or ["cpu"])), amsgrad=args.amsgrad,
                         warmup=args.warmup, steps=args.steps, repeats=args.repeats, max_seconds=args.max_seconds,
                         threads=args.threads, json=args.json, png=args.png))


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subparser a command; certify's, diagnose's and survey's options
    come from `flags.FLAGS`."""
    parser = argparse.ArgumentParser(
        prog="adam-conformance",
        description="Certify that an optimizer behaves exactly like torch.optim.Adam / AdamW.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (func, help, arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        arguments(p)
        add_flags(p, name)
        p.set_defaults(func=func)
    return parser


TARGET_HELP = "registered name or package.module:attr"


def _list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", metavar="TARGET", help=TARGET_HELP + " (default: all registered)")


def _certify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help=TARGET_HELP + "; several are certified one after another, with --json and --junit naming "
                                      "directories (one report per target)")
    p.add_argument("--record", nargs="+", default=[], metavar="TARGET",
                   help="certify these targets too, reports and all, but their verdicts do not set the exit code "
                        "(torch's own paths, where a failure is a finding about torch); unusable still does")


def _diagnose_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    p.add_argument("--report", metavar="R.json",
                   help="certify's JSON report of TARGET (certify --json): where it failed parity, diagnose never "
                        "calls TARGET torch's at every point, and quotes its headline and needs: line (default: a "
                        "quick parity check of diagnose's own)")


def _survey_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help=TARGET_HELP + " (default: every adapter in impls/thirdparty)")
    p.add_argument("--out", default="survey", metavar="DIR",
                   help="where survey.json, survey.md, survey.html and each target's report, log and reproducers "
                        "go (default ./survey)")


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", metavar="A.json", help="the earlier report or survey.json")
    p.add_argument("b", metavar="B.json", help="the later report or survey.json")
    p.add_argument("--factor", type=float, default=2.0,
                   help="report an error figure or a distance that moved by more than this factor (default 2)")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help=TARGET_HELP + " (default: eager, foreach, compiled, triton); torch, torch-foreach and "
                                      "torch-fused are always measured alongside")
    p.add_argument("--set", action="append", default=[], metavar="SET",
                   help="parameter set (repeatable): mlp, transformer, tiny (default: all)")
    p.add_argument("--dtype", action="append", default=[], metavar="DTYPE",
                   help="float32 or bfloat16 (repeatable; default: both)")
    p.add_argument("--device", action="append", choices=DEVICES, help="repeatable (default cpu)")
    p.add_argument("--amsgrad", action="store_true", help="step with amsgrad=True (36 B a float32 element)")
    p.add_argument("--warmup", type=positive, default=3, metavar="STEPS", help="untimed steps first (default 3)")
    p.add_argument("--steps", type=positive, metavar="STEPS",
                   help="steps per sample (default: enough for 20 ms, at most 1000)")
    p.add_argument("--repeats", type=positive, default=15, metavar="N", help="samples per target (default 15)")
    p.add_argument("--max-seconds", type=seconds, default=60.0, metavar="SECONDS",
                   help="a target's sampling time per set and dtype: a slower one gets fewer samples (at least one); "
                        "one whose first step takes longer is not sampled (default 60)")
    p.add_argument("--threads", type=positive, metavar="N",
                   help="torch's intra-op threads (default: torch's own, what users run with)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    p.add_argument("--png", metavar="PATH", help="draw a chart (needs matplotlib: the [plot] extra)")


def _golden_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["verify", "regenerate"])
    p.add_argument("--dir", help="golden directory (default: the copy installed with the suite)")


#: Each command: what runs it, its one-line help, and its own arguments (beside `flags.FLAGS`').
COMMANDS = {
    "list": (cmd_list, "list registered implementations, their claims and where they run", _list_arguments),
    "certify": (cmd_certify, "run the check catalogue on each TARGET and say whether it is conformant",
                _certify_arguments),
    "diagnose": (cmd_diagnose, "say which known Adam variant TARGET implements, point by point", _diagnose_arguments),
    "survey": (cmd_survey, "certify many optimizers (by default every adapter of another package installed here) "
                           "into one compliance table", _survey_arguments),
    "compare": (cmd_compare, "say what changed between two reports, or two surveys (across torch releases, say)",
                _compare_arguments),
    "bench": (cmd_bench, "time targets' steps beside torch's paths and the in-place memory bandwidth",
              _bench_arguments),
    "golden": (cmd_golden, "verify or regenerate the golden traces", _golden_arguments),
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse itself exits 2 with a usage line
    try:
        return args.func(args)
    except (UsageError, registry.TargetError) as e:
        print(f"adam-conformance: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # pytest itself could not run the checks
        print(f"adam-conformance: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("adam-conformance: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
