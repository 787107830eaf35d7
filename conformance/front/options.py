"""Command-line options turned into what they name: a `Target`, checked report paths. Any
option that cannot be used is a `TargetError` of one line."""

from __future__ import annotations

import os
from pathlib import Path

from conformance.front.flags import Options
from conformance.registry import TargetError, resolve
from conformance.run.target import Target
from conformance.vocabulary import FEATURES, PROFILES


def target_of(opts: Options) -> Target:
    """The Target `opts` name; TargetError (one line) for anything unusable."""
    return build_target(opts.target, spec=opts.spec, profile=opts.profile, device=opts.device, without=opts.without,
                        world_size=opts.world_size)


def build_target(name: str, *, spec: str | None = None, profile: str = "standard", device: str = "cpu",
                 without=(), world_size: int = 1) -> Target:
    """A Target from command-line options; TargetError (one line) for anything unusable."""
    unknown = sorted(set(without) - set(FEATURES))
    if unknown:
        raise TargetError(f"unknown feature {', '.join(map(repr, unknown))} for --without; "
                          f"known: {', '.join(FEATURES)}")
    if profile not in PROFILES:
        raise TargetError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if device == "cuda":
        from conformance.run import torch_features

        problem = torch_features.cuda_unusable()
        if problem:
            raise TargetError(f"--device cuda: {problem}; a GPU gate must not pass by skipping")
    impl = resolve(name).without(without)
    if device not in impl.devices:
        raise TargetError(f"{impl.name} does not run on {device} (it runs on {', '.join(impl.devices)})")
    if impl.sharding is None and world_size > 1:
        raise TargetError(f"--world-size {world_size}: {impl.name} is not a distributed target (an Implementation with "
                          "sharding=Sharding(...)); it runs in one process")
    if impl.sharding is not None:
        from conformance.run import distributed

        problem = distributed.unusable(impl.sharding, device)
        if problem:
            raise TargetError(f"{impl.name} is a distributed target: {problem}")
    return Target(impl, spec or impl.spec, device, PROFILES[profile], world_size=world_size)


def writable(path: str | None, option: str) -> None:
    """A report path an option names can be written, or TargetError (one line)."""
    if path is None:
        return
    parent = Path(path).resolve().parent
    if Path(path).is_dir():
        raise TargetError(f"{option} {path}: is a directory; give a file path")
    if not parent.is_dir():
        raise TargetError(f"{option} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise TargetError(f"{option} {path}: not writable")


def writable_dir(path: Path, option: str) -> None:
    """A directory an option names exists (it is made) and can be written, or TargetError."""
    if path.exists() and not path.is_dir():
        raise TargetError(f"{option} {path}: is a file; with several targets, give a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TargetError(f"{option} {path}: cannot create it ({e.strerror})") from None
    if not os.access(path, os.W_OK):
        raise TargetError(f"{option} {path}: not writable")
