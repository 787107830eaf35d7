"""The arithmetic point: the precision a target computes in, from what its float64 probes measured.

A target that computes in float32 whatever its parameters' dtype, or holds a constant (a
beta, lr) in float32, is far from every choice in float64 and close in float32: the float32
probes tell its choices, and this point keeps what float64 saw. Its float64 parameters
coming back rounded to float32 say "float32 arithmetic"; otherwise a constant rounded to
float32 in the oracle's run that brings the float64 probes back within reach names which.
Neither: the point is not told, and the residual says what is left.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from conformance.cases.case import Case
from conformance.diagnose.findings import MARGIN, UNKNOWN, Finding, eps_text
from conformance.diagnose.probes import Probed, distance
from conformance.run.target import Target
from conformance.spec import Spec
from conformance.truth import oracle

f32 = lambda x: float(np.float32(x))
#: Constants a target may hold in float32, as a change to every param group of a Case.
CONSTANTS = {
    "float32_betas": lambda g: dataclasses.replace(g, betas=(f32(g.betas[0]), f32(g.betas[1]))),
    "float32_beta1": lambda g: dataclasses.replace(g, betas=(f32(g.betas[0]), g.betas[1])),
    "float32_beta2": lambda g: dataclasses.replace(g, betas=(g.betas[0], f32(g.betas[1]))),
    "float32_lr": lambda g: dataclasses.replace(g, lr=f32(g.lr)),
}


def arithmetic(target: Target, working: Spec, probed: dict[str, Probed]) -> tuple[Finding, dict[str, float]]:
    """The arithmetic point, and the distance of each numeric point from the variant found,
    in eps of the dtype that judges it once the arithmetic found is taken into account."""
    told = {p: r for p, r in probed.items() if r.finding.found and r.finding.probed}
    judged = {p: r.far[min(r.far, key=lambda d: d != "float64")] for p, r in probed.items() if r.far}
    if "float64" not in target.claims:
        return Finding("arithmetic", None, "param_dtype", "not probed: float64 not claimed", False), judged
    far64 = {p: r.far["float64"] for p, r in told.items() if "float64" in r.far}
    if not far64:
        return Finding("arithmetic", None, "param_dtype", "no point was told in float64 or float32", False), judged
    worst = max(far64, key=far64.get)
    seen = f"its float64 probes up to {eps_text(far64[worst])} float64 eps from the variant found ({worst} probe)"
    if far64[worst] <= UNKNOWN:
        return Finding("arithmetic", "param_dtype", "param_dtype", seen), judged
    in32 = {p: r.far.get("float32", r.far.get("float64")) for p, r in probed.items() if r.far}
    then = f"its float32 probes within {eps_text(max(in32[p] for p in told))} float32 eps of it"
    if all(_rounded_to_float32(r.case64, r.trace64) for r in told.values() if r.trace64 is not None):
        return Finding("arithmetic", "float32", "param_dtype", f"{seen}, every value a step moved a float32 value; "
                       f"{then}", size=f"{seen.removeprefix('its ')}, {then.removeprefix('its ')}"), in32
    fit, refit = _constant(working, told)
    if fit:
        again = f"{eps_text(max(refit.values()))} float64 eps with it rounded to float32 in the oracle"
        return Finding("arithmetic", fit, "param_dtype", f"{seen}; {again}",
                       size=f"{seen.removeprefix('its ')}, {again}"), judged | refit
    return Finding("arithmetic", None, "param_dtype", f"could not tell: {seen}; {then}: a float32-size difference "
                   f"that no constant held in float32 ({', '.join(CONSTANTS)}) explains"), judged


def _rounded_to_float32(case: Case, trace) -> bool:
    """Whether every parameter value a float64 run of `case` recorded, where a step moved it,
    is a float32 value."""
    moved = [x[np.isfinite(x) & (x != p.init)] for x, p in zip(trace.params, case.params)]
    return all(np.array_equal(x, x.astype(np.float32).astype(np.float64)) for x in moved)


def _constant(working: Spec, told: dict[str, Probed]) -> tuple[str | None, dict[str, float]]:
    """The constant that, held in float32, brings the bias-correction probe's float64 run
    within reach of the variant found by a wide margin over the others; and then each
    point's float64 distance. (None, {}) if none does."""
    plain = told.get("bias_correction")
    if plain is None or plain.trace64 is None:
        return None, {}
    fits = {name: distance(plain.trace64, oracle.run(_held(plain.case64, change), working), plain.case64)
            for name, change in CONSTANTS.items()}
    ranked = sorted(fits, key=fits.get)
    if fits[ranked[0]] > UNKNOWN or fits[ranked[0]] * MARGIN > fits[ranked[1]]:
        return None, {}
    change = CONSTANTS[ranked[0]]
    refit = {p: distance(r.trace64, oracle.run(_held(r.case64, change),
                                               dataclasses.replace(working, **{p: r.finding.found})), r.case64)
             for p, r in told.items() if r.trace64 is not None}
    return ranked[0], refit


def _held(case: Case, change) -> Case:
    """`case` with `change` made to every param group."""
    return dataclasses.replace(case, groups=tuple(change(g) for g in case.groups))
