"""What a diagnosis says: one sentence (`verdict`), the lines certify shows (`mismatch_lines`),
the JSON document (`document`) and the table the command prints (`render`).

The verdict never calls a target torch's "at every point probed" where parity failed (in
certify's report, or in diagnose's own quick check): then it names a point, or says the
target differs in a way none of the points describes and quotes certify's headline and
"needs:" line.
"""

from __future__ import annotations

from conformance.diagnose.findings import CONVENTIONS, Finding
from conformance.run.target import Target
from conformance.spec import POINTS
from conformance.vocabulary import torch_class_name

#: What a target is called, by the weight decay it was found to use.
FAMILIES = {
    "coupled": "Adam with coupled L2 weight decay",
    "decoupled": "AdamW (decoupled weight decay, scaled by lr)",
    "decoupled_unscaled": "AdamW with decay not scaled by lr",
    "decoupled_after": "AdamW with decay after the update",
    "none": "Adam without weight decay",
}
#: The findings that are no choice of an algorithm but say what the choices leave unexplained.
LEFT = ("residual", "parity")


def verdict(target: Target, findings: list[Finding], refused: tuple[str, ...] = ()) -> str:
    """One sentence: what the target implements, and where it departs from torch."""
    name, reference = target.impl.name, torch_class_name(target.spec)
    by = {f.point: f for f in findings}
    numeric = [f for f in findings if f.point in POINTS]
    probed = [f for f in numeric if f.probed]
    tail = _tail(findings, refused)
    if not probed:
        why = "" if any(f.error for f in numeric) else f" ({numeric[0].detail})"
        return f"{name} could not be diagnosed: no point could be probed{why}{tail}"
    residual = by.get("residual")
    if residual is not None and residual.differs and 2 * sum(f.found is not None for f in probed) < len(probed):
        return (f"{name} matches no known Adam variant: it is far from every choice at "
                f"{sum(f.found is None for f in probed)} of the {len(probed)} points probed{tail}")
    family = _family(by)
    named = [f for f in findings if f.differs and f.point not in LEFT]
    left = _left(by, named)
    if named:
        said = "; ".join(f"{_name(f.point)}: {f.describe()}" + (f" ({f.size})" if f.size else "") for f in named)
        rest = f"; and in a way none of these points describes: {left}" if left else ""
        return f"{name} implements {family}, which differs from {reference} in {said}{rest}{tail}"
    if left:
        return f"{name} implements {family}, but differs from {reference} in a way none of these points describes: " \
               f"{left}{tail}"
    return f"{name} implements {family}: {reference} at every point probed{tail}"


def _family(by: dict[str, Finding]) -> str:
    """What the target is called: by its weight decay, and float32 arithmetic where found."""
    decay = by.get("weight_decay")
    family = FAMILIES.get(decay.found if decay else None, "Adam (weight decay not told)")
    arithmetic = by.get("arithmetic")
    return family + (" with float32 arithmetic inside" if arithmetic and arithmetic.found == "float32" else "")


def _explains(f: Finding) -> bool:
    """Whether a difference found is one that puts a trajectory off torch's."""
    return f.point in POINTS or f.point == "arithmetic" or (f.point == "state_precision" and f.found == "lower")


def _left(by: dict[str, Finding], named: list[Finding]) -> str:
    """What no point found explains: parity's failure (certify's headline and "needs:" line),
    where no difference named accounts for it, else a residual beyond the variant found."""
    parity, residual = by.get("parity"), by.get("residual")
    if parity is not None and parity.found == "fails" and not any(_explains(f) for f in named):
        return f"{parity.detail} (outside these points: certify's explanation gives its minimal case and a reproducer)"
    if residual is not None and residual.differs:
        return residual.detail
    return ""


def _tail(findings: list[Finding], refused: tuple[str, ...]) -> str:
    """What was not told, not probed for an error, or not checked; and the claims refused."""
    unknown = [f.point for f in findings if f.found is None and f.probed and f.point not in LEFT]
    errors = [f for f in findings if f.error]
    parity = [f for f in findings if f.point == "parity" and f.found is None]
    parts = [f"could not tell: {', '.join(unknown)}"] if unknown else []
    parts += [f"could not probe {', '.join(f.point for f in errors)}: {errors[0].error}"] if errors else []
    parts += [f"parity {parity[0].detail}"] if parity else []
    parts += [f"without {', '.join(refused)}: refused by the target (certify's preflight)"] if refused else []
    return "".join(f"; {part}" for part in parts)


def _name(point: str) -> str:
    return "something else" if point == "residual" else point.replace("_", " ")


def mismatch_lines(target: Target, findings: list[Finding]) -> list[str]:
    """For certify: each point where the target departs from the spec asked for."""
    return [f"it differs in {f.describe()}" if f.point == "residual" else
            f"{_name(f.point)} is {f.describe()}, but --spec {target.spec} needs "
            f"{CONVENTIONS.get(f.point, {}).get(f.expected, f.expected)}"
            for f in findings if f.differs and f.point != "parity"]


def document(target: Target, findings: list[Finding], refused: tuple[str, ...] = ()) -> dict:
    """The diagnosis as JSON (the report schema's ``diagnosis``)."""
    return dict(target=target.impl.name, spec=target.spec, verdict=verdict(target, findings, refused),
                mismatches=mismatch_lines(target, findings),
                findings=[dict(point=f.point, found=f.found, expected=f.expected, differs=f.differs,
                               meaning=f.describe() if f.found else None, detail=f.detail, probed=f.probed)
                          for f in findings])


def render(target: Target, findings: list[Finding], refused: tuple[str, ...] = ()) -> str:
    """The table the command prints, then the verdict."""
    lines = [f"{'point':16s} {'found':24s} meaning"]
    for f in findings:
        mark = "  <- differs from torch" if f.differs else ""
        meaning = f.describe() if f.found else f.detail
        if f.found and f.point in ("arithmetic", *LEFT) and (f.differs or f.point == "parity"):
            meaning += f": {f.detail}"
        lines.append(f"{f.point:16s} {f.found or '?':24s} {meaning}{mark}")
    return "\n".join(lines + ["", verdict(target, findings, refused)])
