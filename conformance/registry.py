"""Implementations under test: the `Implementation` record and target resolution.

A *target* names an optimizer to certify. It is one of

* a registered name: an entry point in the group ``adam_conformance.implementations``
  (the built-ins register there exactly as a third-party package would);
* ``package.module:attr``.

The object found is either an `Implementation` or any callable with
``torch.optim.Adam``'s constructor form ``f(params, lr=..., betas=..., eps=..., ...)``.
For a plain callable, what it claims is read from its signature: a keyword it does
not accept is a feature it does not claim.

Nothing here imports torch: ``adam-conformance list`` and the pytest plugin stay light.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import inspect
import os
import sys
from collections.abc import Callable, Iterable

from conformance.vocabulary import (
    BEHAVIOURS,
    DEFAULT_CLAIMS,
    DEVICES,
    FEATURES,
    KEYWORD_FEATURES,
    SPECS,
    STATE_PRECISIONS,
)

GROUP = "adam_conformance.implementations"
#: Keywords every target must accept: without them it has no Adam constructor form.
REQUIRED_KEYWORDS = ("lr", "betas", "eps")


@dataclasses.dataclass(frozen=True)
class Sharding:
    """How a distributed target runs across processes (`conformance.run.distributed`).

    Its factory is called on every rank of an initialised process group. ``params`` says
    what it is given: ``"full"``, every parameter whole on every rank (ZeRO: the optimizer
    shards its own state), or ``"dtensor"``, every parameter a DTensor ``Shard(0)`` over the
    ranks (``Replicate`` when 0-d; FSDP2 and DTensor). ``state(opt)`` is the state this rank
    holds, a mapping like ``opt.state`` (None: ``opt.state``); ``save(opt)``, called on every
    rank, returns the whole state_dict on every rank (None: ``opt.state_dict()``).
    """

    params: str = "full"
    state: Callable | None = None
    save: Callable | None = None

    def __post_init__(self):
        if self.params not in ("full", "dtensor"):
            raise ValueError(f"Sharding.params must be 'full' or 'dtensor', not {self.params!r}")


class TargetError(Exception):
    """A target cannot be used. The message is one line saying what and how to fix it."""


@dataclasses.dataclass(frozen=True)
class Implementation:
    """An optimizer under test and what it claims.

    ``factory(params, lr=, betas=, eps=, [weight_decay=, amsgrad=, maximize=,
    decoupled_weight_decay=])`` returns a ``torch.optim.Optimizer``-like object. It is
    called only with the keywords of the features it claims. ``spec`` is the semantics
    it implements when called that way: ``"adam"`` (L2 decay added to the gradient) or
    ``"adamw"`` (decoupled decay scaled by lr).
    """

    name: str
    factory: Callable
    description: str = ""
    spec: str = "adam"
    claims: frozenset[str] = frozenset(DEFAULT_CLAIMS)
    devices: tuple[str, ...] = DEVICES
    #: Claims made by default, not declared: behaviours a plain callable's signature cannot
    #: show, and the keyword features an open signature (``**kwargs``) may take. The
    #: preflight drops those the target cleanly refuses (with a note) instead of failing.
    assumed: frozenset[str] = frozenset()
    #: Keywords passed even at torch's default value (the target's own default differs, or
    #: it has none): the preflight finds them (`conformance.run.drive`).
    explicit: frozenset[str] = frozenset()
    #: Says how it runs on this machine, for ``list``; defaults to `default_how`.
    how: Callable[[], str] | None = None
    #: Set for a distributed target: its factory builds a sharded optimizer in a process group.
    sharding: Sharding | None = None
    #: Where ``spec`` comes from: ``declared`` (an Implementation), ``class`` (a plain class's
    #: hierarchy), or ``default`` (a plain function: the preflight reads it from what it returns).
    spec_from: str = "declared"
    #: For an adapter of another package (``impls/thirdparty/``): that distribution and the
    #: versions the adapter was written for, as a requirement (``bitsandbytes>=0.45,<0.51``).
    package: str = ""
    #: A low-precision format the moments are stored in, from tensors of a size on
    #: (`vocabulary.STATE_PRECISIONS`): parity allows what the format implies there, and
    #: judges everything else exactly. None: full-precision state, as torch's.
    state_precision: str | None = None

    def __post_init__(self):
        if self.spec not in SPECS:
            raise ValueError(f"spec must be one of {SPECS}, not {self.spec!r}")
        if self.state_precision is not None and self.state_precision not in STATE_PRECISIONS:
            raise ValueError(f"state_precision must be one of {STATE_PRECISIONS} or None, "
                             f"not {self.state_precision!r}")
        unknown = set(self.claims) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown features {sorted(unknown)}; known: {FEATURES}")
        object.__setattr__(self, "claims", frozenset(self.claims))
        object.__setattr__(self, "assumed", frozenset(self.assumed) & self.claims)
        object.__setattr__(self, "explicit", frozenset(self.explicit))

    def without(self, features: Iterable[str]) -> Implementation:
        """The same implementation with `features` disclaimed."""
        return dataclasses.replace(self, claims=self.claims - set(features))

    def describe_how(self) -> str:
        how = (self.how or default_how)(self.devices)
        if self.package:
            from packaging.requirements import Requirement

            how = f"{Requirement(self.package).name} {self.package_version()}; {how}"
        return f"{how}; sharded across processes (--world-size)" if self.sharding else how

    def package_version(self) -> str | None:
        """The installed version of the package it adapts (None: not installed, or none adapted)."""
        if not self.package:
            return None
        from packaging.requirements import Requirement  # pytest's own dependency

        try:
            return importlib.metadata.version(Requirement(self.package).name)
        except importlib.metadata.PackageNotFoundError:
            return None

    def package_warning(self) -> str | None:
        """Why this adapter's package may not be what it was written for, in one line (None: it is)."""
        if not self.package:
            return None
        from packaging.requirements import Requirement

        wanted, version = Requirement(self.package), self.package_version()
        if version is None:
            return f"{wanted.name} is not installed here"
        if not wanted.specifier.contains(version, prereleases=True):
            return f"{wanted.name} {version} is outside the versions this adapter was written for ({wanted.specifier})"
        return None

    @classmethod
    def pair(cls, name: str, adam: Callable, adamw: Callable, description: str,
             adamw_description: str | None = None, **fields) -> tuple[Implementation, Implementation]:
        """An Adam form `name` and its AdamW form `name-adamw`, which claims no
        ``decoupled_weight_decay`` keyword (torch.optim.AdamW takes none)."""
        first = cls(name, adam, description, "adam", **fields)
        fields["claims"] = first.claims - {"decoupled_weight_decay"}
        described = adamw_description or f"{description}, with decoupled weight decay (AdamW)"
        return first, cls(f"{name}-adamw", adamw, described, "adamw", **fields)

    @classmethod
    def from_callable(cls, name: str, obj: Callable, **fields) -> Implementation:
        """Wrap a callable with Adam's constructor form, reading its claims from its signature
        (an open one's keyword features are assumed, for the preflight to probe)."""
        claims = claims_from_signature(name, obj)
        probed = set(KEYWORD_FEATURES) - named_keywords(obj)
        return cls(name=name, factory=obj, claims=claims, assumed=claims & (set(BEHAVIOURS) | probed), **fields)


def default_how(devices: tuple[str, ...]) -> str:
    parts = []
    if "cpu" in devices:
        parts.append("cpu")
    if "cuda" in devices:
        parts.append("cuda" if cuda_available() else "cuda not available")
    return "; ".join(parts)


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def claims_from_signature(name: str, obj: Callable) -> frozenset[str]:
    """Claims of a plain callable: keyword features it accepts, plus behavioural ones.

    ``closure`` is dropped when ``obj`` is a class whose ``step`` takes no argument.
    """
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError) as e:
        raise TargetError(f"{name}: cannot read the signature of {obj!r} ({e})") from None
    params = list(sig.parameters.values())
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    keywords = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional and not any(p.kind is p.VAR_POSITIONAL for p in params):
        raise TargetError(
            f"{name}: {_what(obj)} takes no positional argument, so it cannot be called as "
            f"{_short(obj)}(params, lr=..., betas=..., eps=...); point the target at an "
            "optimizer class or factory"
        )
    missing = [k for k in REQUIRED_KEYWORDS if k not in keywords and not var_kw]
    if missing:
        raise TargetError(
            f"{name}: {_what(obj)} does not accept {', '.join(missing)}: it must take "
            "torch.optim.Adam's constructor form (params, lr=, betas=, eps=, ...)"
        )
    claims = {f for f in KEYWORD_FEATURES if var_kw or f in keywords} | set(BEHAVIOURS)
    cls = obj.func if isinstance(obj, functools.partial) else obj
    step = getattr(cls, "step", None) if inspect.isclass(cls) else None
    if step is not None:
        try:
            step_params = inspect.signature(step).parameters
        except (TypeError, ValueError):
            step_params = {"closure": None}
        if len(step_params) <= 1:  # only self
            claims.discard("closure")
    return frozenset(claims)


def named_keywords(obj: Callable) -> set[str]:
    """The keywords `obj`'s signature names (not those a ``**kwargs`` may take)."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def registered() -> dict[str, object]:
    """Entry points of the implementation group, by name (not loaded)."""
    return {ep.name: ep for ep in sorted(importlib.metadata.entry_points(group=GROUP), key=lambda e: e.name)}


def resolve(target: str) -> Implementation:
    """The Implementation a target string names. Raises TargetError with a one-line reason."""
    target = target.strip()
    eps = registered()
    if target in eps:
        ep = eps[target]
        try:
            obj = ep.load()
        except Exception as e:  # a broken third-party package must not crash us
            raise TargetError(
                f"{target}: its entry point {ep.value} failed to load: {type(e).__name__}: {e}"
            ) from None
        impl = _as_implementation(target, obj)
        if impl.package and impl.package_version() is None:
            raise TargetError(f"{target}: adapts {impl.package}, which is not installed here "
                              f"(pip install '{impl.package}')")
        return impl
    if ":" not in target:
        close = difflib.get_close_matches(target, list(eps), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise TargetError(
            f"unknown implementation {target!r}: not a registered name (see "
            f"`adam-conformance list`) nor package.module:attr{hint}"
        )
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise TargetError(f"{target!r}: expected package.module:attr, e.g. mypkg.optim:MyAdam")
    if os.getcwd() not in sys.path:  # as `python -m` does: modules beside you import
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise TargetError(
            f"{target}: module {module_name!r} does not import ({type(e).__name__}: {e}); "
            "is its package installed in this environment and on sys.path?"
        ) from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            names = [n for n in dir(module) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise TargetError(f"{target}: module {module_name!r} has no attribute {part!r}{hint}") from None
    return _as_implementation(target, obj)


def _as_implementation(name: str, obj: object) -> Implementation:
    if isinstance(obj, Implementation):
        return obj
    if not callable(obj):
        raise TargetError(
            f"{name}: {_what(obj)} is not callable; point the target at an Implementation "
            "or at an optimizer class or factory with torch.optim.Adam's constructor form"
        )
    spec = _default_spec(obj)
    read = spec == "adamw" or inspect.isclass(obj.func if isinstance(obj, functools.partial) else obj)
    return Implementation.from_callable(name, obj, description=_first_doc_line(obj), spec=spec,
                                        spec_from="class" if read else "default")


def _default_spec(obj: object) -> str:
    """``adamw`` for a subclass of torch.optim.AdamW or a partial binding
    ``decoupled_weight_decay=True``, else ``adam`` (``--spec`` overrides). Read from the
    class hierarchy by name, so that resolving a target imports no torch."""
    while isinstance(obj, functools.partial):
        if obj.keywords.get("decoupled_weight_decay") is True:
            return "adamw"
        obj = obj.func
    adamw = inspect.isclass(obj) and any(
        c.__name__ == "AdamW" and c.__module__.startswith("torch.optim") for c in obj.__mro__)
    return "adamw" if adamw else "adam"


def _first_doc_line(obj: object) -> str:
    """The first line of `obj`'s own docstring (a class's base's docstring says nothing of it);
    for a partial, its function's, and the arguments it binds."""
    if isinstance(obj, functools.partial):
        bound = ", ".join([*map(repr, obj.args), *(f"{k}={v!r}" for k, v in obj.keywords.items())])
        return f"{_first_doc_line(obj.func)} (called with {bound})".lstrip()
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
    doc = inspect.cleandoc(doc or "")
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _short(obj: object) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__name__


def _what(obj: object) -> str:
    if inspect.isclass(obj):
        return f"class {obj.__qualname__}"
    if callable(obj):
        return f"{_short(obj)}()"
    return f"a {type(obj).__name__} object"
