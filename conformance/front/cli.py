"""The ``adam-conformance`` command line.

Exit codes: 0 success (conformant), 1 not conformant or verification failed,
2 an unusable invocation or target, with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import sys

from conformance import registry
from conformance.vocabulary import DECLARED, DEFAULT_CLAIMS, DEVICES, FEATURES, PROFILES, SPECS


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
    from conformance.front.certify import Options, certify_all

    return certify_all(Options(target=args.targets[0], spec=args.spec, profile=args.profile, device=args.device,
                               without=tuple(args.without), skip=tuple(args.skip), seed=args.seed,
                               workers=args.workers, json=args.json, junit=args.junit, repro_dir=args.repro_dir,
                               check_timeout=args.check_timeout, world_size=args.world_size, jobs=args.jobs),
                       args.targets, args.record)


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Say which known Adam variant a target implements, point by point. Exit 0."""
    import json
    from pathlib import Path

    from conformance import diagnose
    from conformance.front.options import build_target, writable
    from conformance.report.environment import describe_environment

    target = build_target(args.target, spec=args.spec, device=args.device, without=args.without)
    writable(args.json, "--json")
    print("adam-conformance diagnose\n" + "".join(f"  {line}\n" for line in describe_environment(target, seed=0)[:4]))
    try:
        findings = diagnose.diagnose(target)
    except Exception as e:  # a target the probes cannot drive: one line, not a traceback
        raise UsageError(f"{args.target} could not be diagnosed: {type(e).__name__}: {e}") from None
    print(diagnose.render(target, findings))
    if args.json:
        Path(args.json).write_text(json.dumps(diagnose.document(target, findings), indent=1) + "\n")
        print(f"JSON: {args.json}")
    return 0


def cmd_survey(args: argparse.Namespace) -> int:
    """Certify many optimizers into one table. Exit 0 once it is written."""
    from pathlib import Path

    from conformance.run import forked

    forked.start()
    from conformance.front import survey

    return survey.run(args.targets, Path(args.out), args.profile, args.device, args.jobs, args.workers)


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


def _positive(value: str) -> int:
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"expected a positive whole number, not {value!r}")


def _seconds(value: str) -> float:
    try:
        if float(value) > 0:
            return float(value)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {value!r}")


def _workers(value: str) -> str:
    if value == "auto" or (value.isdigit() and int(value) >= 0):
        return value
    raise argparse.ArgumentTypeError(f"expected a number of workers or 'auto', not {value!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adam-conformance",
        description="Certify that an optimizer behaves exactly like torch.optim.Adam / AdamW.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("list", help="list registered implementations, their claims and where they run")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="registered name or package.module:attr (default: all registered)")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("certify", help="run the check catalogue on each TARGET and say whether it is conformant")
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="registered name or package.module:attr; several are certified one after another, with "
                        "--json and --junit naming directories (one report per target)")
    p.add_argument("--spec", choices=SPECS, help="semantics to certify against (default: the target's own)")
    p.add_argument("--profile", choices=list(PROFILES), default="standard",
                   help="quick: a CI gate; standard (default); thorough: nightly, 10x the examples")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--without", action="append", default=[], metavar="FEATURE",
                   help="disclaim a feature (repeatable): " + ", ".join(FEATURES))
    p.add_argument("--skip", action="append", default=[], metavar="CHECK_ID",
                   help="certify everything except this check (repeatable); the report says so")
    p.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0: deterministic)")
    p.add_argument("-n", dest="workers", type=_workers, default="1", metavar="WORKERS",
                   help="pytest-xdist worker processes, or auto (default 1)")
    p.add_argument("--json", metavar="PATH", help="write the JSON report (schema in the README); with several "
                   "targets, a directory for TARGET.json each")
    p.add_argument("--junit", metavar="PATH", help="write JUnit XML (pytest's own); with several targets, a directory")
    p.add_argument("--repro-dir", metavar="DIR", help="write reproducers here (default: a new temporary directory); "
                   "with several targets, one folder each inside it")
    p.add_argument("--check-timeout", type=float, metavar="SECONDS",
                   help="time limit per check (default: the profile's, scaled to the target's speed)")
    p.add_argument("--world-size", default="1", metavar="N",
                   help="processes a distributed target runs on, 1 to 8 (gloo on the CPU, nccl with CUDA; default 1)")
    p.add_argument("--jobs", type=_positive, default=1, metavar="N",
                   help="with several targets, certify N at once, each in a process of its own (default 1: one "
                        "after another)")
    p.add_argument("--record", nargs="+", default=[], metavar="TARGET",
                   help="certify these targets too, reports and all, but their verdicts do not set the exit code "
                        "(torch's own paths, where a failure is a finding about torch); unusable still does")
    p.set_defaults(func=cmd_certify)

    p = sub.add_parser("diagnose", help="say which known Adam variant TARGET implements, point by point")
    p.add_argument("target", metavar="TARGET", help="registered name or package.module:attr")
    p.add_argument("--spec", choices=SPECS, help="the spec to compare with (default: the target's own)")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--without", action="append", default=[], metavar="FEATURE", help="disclaim a feature (repeatable)")
    p.add_argument("--json", metavar="PATH", help="also write the findings as JSON")
    p.set_defaults(func=cmd_diagnose)

    p = sub.add_parser("survey", help="certify many optimizers (by default every adapter of another package "
                                      "installed here) into one compliance table")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="registered name or package.module:attr (default: every adapter in impls/thirdparty)")
    p.add_argument("--out", default="survey", metavar="DIR",
                   help="where survey.json, survey.md, survey.html and each target's report, log and reproducers "
                        "go (default ./survey)")
    p.add_argument("--profile", choices=list(PROFILES), default="quick", help="as certify's (default quick)")
    p.add_argument("--device", choices=DEVICES, default="cpu")
    p.add_argument("--jobs", type=_positive, default=2, metavar="N", help="targets certified at once (default 2)")
    p.add_argument("-n", dest="workers", type=_workers, default="0", metavar="WORKERS",
                   help="pytest-xdist workers per target (default 0: its checks in its own process)")
    p.set_defaults(func=cmd_survey)

    p = sub.add_parser("compare", help="say what changed between two reports, or two surveys (across torch "
                                       "releases, say)")
    p.add_argument("a", metavar="A.json", help="the earlier report or survey.json")
    p.add_argument("b", metavar="B.json", help="the later report or survey.json")
    p.add_argument("--factor", type=float, default=2.0,
                   help="report an error figure or a distance that moved by more than this factor (default 2)")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="time targets' steps beside torch's paths and the in-place memory bandwidth")
    p.add_argument("targets", nargs="*", metavar="TARGET",
                   help="registered name or package.module:attr (default: eager, foreach, compiled, triton); "
                        "torch, torch-foreach and torch-fused are always measured alongside")
    p.add_argument("--set", action="append", default=[], metavar="SET",
                   help="parameter set (repeatable): mlp, transformer, tiny (default: all)")
    p.add_argument("--dtype", action="append", default=[], metavar="DTYPE",
                   help="float32 or bfloat16 (repeatable; default: both)")
    p.add_argument("--device", action="append", choices=DEVICES, help="repeatable (default cpu)")
    p.add_argument("--amsgrad", action="store_true", help="step with amsgrad=True (36 B a float32 element)")
    p.add_argument("--warmup", type=_positive, default=3, metavar="STEPS", help="untimed steps first (default 3)")
    p.add_argument("--steps", type=_positive, metavar="STEPS",
                   help="steps per sample (default: enough for 20 ms, at most 1000)")
    p.add_argument("--repeats", type=_positive, default=15, metavar="N", help="samples per target (default 15)")
    p.add_argument("--max-seconds", type=_seconds, default=60.0, metavar="SECONDS",
                   help="a target's sampling time per set and dtype: a slower one gets fewer samples (at least one); "
                        "one whose first step takes longer is not sampled (default 60)")
    p.add_argument("--threads", type=_positive, metavar="N",
                   help="torch's intra-op threads (default: torch's own, what users run with)")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    p.add_argument("--png", metavar="PATH", help="draw a chart (needs matplotlib: the [plot] extra)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("golden", help="verify or regenerate the golden traces")
    p.add_argument("action", choices=["verify", "regenerate"])
    p.add_argument("--dir", help="golden directory (default: the copy installed with the suite)")
    p.set_defaults(func=cmd_golden)
    return parser


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
