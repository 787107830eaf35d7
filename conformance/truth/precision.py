r"""Declared state precision: how far an optimizer that keeps its moments in a low-precision
format may be from the exact trajectory, derived from the format alone.

Such a format (the 8-bit states of bitsandbytes and torchao, torchao's fp8 one)
stores a moment tensor of at least `from_elements` elements in blocks: each element y as
s·c, where s is the largest |y| of its block and c the code nearest to y/s in a fixed
map C ⊂ [-1, 1] (signed, for m) or [0, 1] (unsigned, for v). A smaller tensor keeps
full-precision state and is judged like any other.

**One rounding.** The block's scale s lies between |y| and A, the largest |y| of its block
of `block` elements (256) in the tensor's row-major order, or of the whole tensor for a
parameter whose memory is laid out otherwise (its state may follow either order); or the
format's least scale, 1e-12 in torchao, if that is larger. Rounding r = |y|/s to the nearest
code is off by dist(r, C) and r ≥ |y|/A, so

    q(y) ≤ |y| · D(|y|/A),    D(r₀) = max over cells [a, b] of C with b > r₀ of (b - a)/(b + a)

((b-a)/(b+a) is the largest relative error within the cell [a, b], at its midpoint; a cell
[0, b] gives 1: y rounded to zero. A top cell [c_max, 1] whose 1 is no code gives
1 - c_max.) D grows as r₀ falls, so for a y known only within |y| ≤ u ≤ |y| + e,
q ≤ (|y|+e) · D((|y|-e)/A).

torchao's 4-bit state is not among the formats: its maps are so coarse (the second moment's
smallest code is 1/16 of the block's largest) that the bound above lets the parameters of a
4096-element tensor go anywhere, and a check that cannot fail is no check. It is judged
exactly.

**Carried through Adam** (`oracle.allowance` runs these beside the exact recursion,
element by element; e is a bound on the stored value's distance from the exact one):

    e_g ← λ e_θ under coupled decay, else 0          (the gradient Adam uses)
    e_θ ← |1 - γλ| e_θ under decoupled decay
    e_m ← β₁ e_m + (1-β₁) e_g,  then  + q_m(m, e_m)                  (m is stored)
    e_v ← β₂ e_v + (1-β₂)(2|g| e_g + e_g²),  then  + q_v(v, e_v)
    e_θ ← e_θ + γ/b₁ · max over the box's corners |m̃/(√ṽ/√b₂ + ε) - m/(√v/√b₂ + ε)|,
          m̃ ∈ [m ± e_m], ṽ ∈ [max(v - e_v, 0), v + e_v]

(the quotient is monotone in each argument on the box, so its extremes lie at corners).
An element that is not finite, or whose bound is not, makes its block's scale so, and the
block is unknown: then nothing is promised of the tensor.
AMSGrad's running max is 1-Lipschitz: e_v̄ ← max(e_v̄, e_v) + q_v(v̄). A resumed Case's
moments are rounded once when loaded. Where a bound is not finite (ε = 0 and a second
moment that may have been rounded to zero) the format promises nothing and the element
is not compared. The budget (`budget.judge`) then allows the target's error less this
bound, and torch's ordinary factor and floor on the rest.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from conformance.vocabulary import STATE_PRECISIONS


@dataclasses.dataclass(frozen=True)
class StatePrecision:
    """A declared state format: the code maps of its two moments and the size from which it applies."""

    name: str  # the declaration, e.g. "8bit-dynamic"
    label: str  # as a verdict says it: "8-bit"
    first: tuple[float, ...]  # codes of m, a subset of [-1, 1]
    second: tuple[float, ...]  # codes of v, a subset of [0, 1]
    from_elements: int
    block: int  # elements that share a scale
    source: str  # where the format is defined
    scale_floor: float = 1e-12  # the least block scale: a block of smaller values is scaled as if this were its absmax

    def __str__(self) -> str:
        return f"{self.label} state ({self.name}, from {self.from_elements} elements)"

    def first_rounding(self, y, e, a):
        return rounding(self.first, y, e, np.maximum(a, self.scale_floor))

    def second_rounding(self, y, e, a):
        return rounding(self.second, y, e, np.maximum(a, self.scale_floor))

    def largest(self, x: np.ndarray, row_major: bool) -> np.ndarray:
        """Each element's A: the largest |x| of its block of `block` in row-major order, or
        (not `row_major`) of the whole tensor. A value that is not finite makes it infinite."""
        flat = np.abs(x).reshape(-1)
        if not row_major or flat.size == 0:
            return np.full(x.shape, np.max(flat, initial=0))
        padded = np.concatenate([flat, np.zeros(-flat.size % self.block, flat.dtype)]).reshape(-1, self.block)
        return np.repeat(padded.max(axis=1), self.block)[:flat.size].reshape(x.shape)


def dynamic_map(signed: bool) -> tuple[float, ...]:
    """The 8-bit dynamic quantization map of Dettmers (arXiv 1511.04561) as bitsandbytes and
    torchao build it: for each exponent i = 0..6, 2^i (2^(i+1) unsigned) midpoints of equal
    cells of [0.1, 1] scaled by 10^(i-6), mirrored when signed; with 0 and 1."""
    data = []
    for i in range(7):
        edges = np.linspace(0.1, 1, 2 ** (i + (0 if signed else 1)) + 1, dtype=np.float32)
        means = np.float32(10.0 ** (i - 6)) * (edges[:-1] + edges[1:]) / np.float32(2)
        data += [float(x) for x in means] + ([float(-x) for x in means] if signed else [])
    return tuple(sorted({*data, 0.0, 1.0}))


def e4m3_map() -> tuple[float, ...]:
    """Every finite float8 e4m3fn value over its largest, 448: the codes of a block scaled to
    its absmax/448 (torchao's fp8 state)."""
    normal = [(1 + m / 8) * 2.0 ** (e - 7) for e in range(1, 16) for m in range(8) if (e, m) != (15, 7)]
    values = [m / 8 * 2.0**-6 for m in range(8)] + normal
    return tuple(sorted({s * v / 448 for v in values for s in (1, -1)}))


PRECISIONS = {p.name: p for p in (
    StatePrecision("8bit-dynamic", "8-bit", dynamic_map(signed=True), dynamic_map(signed=False), 4096, 256,
                   "bitsandbytes' blockwise 8-bit and torchao's OptimState8bit: dynamic maps, blocks of 256"),
    StatePrecision("fp8-e4m3", "fp8", e4m3_map(), tuple(c for c in e4m3_map() if c >= 0), 4096, 256,
                   "torchao's OptimStateFp8: float8_e4m3fn scaled to each block's absmax/448, blocks of 256"),
)}


assert tuple(PRECISIONS) == STATE_PRECISIONS, "the formats an implementation may declare are these"


@functools.cache
def _cells(codes: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(upper ends of the cells of |C| on each side, their suffix-max relative error D)."""
    uppers, errors = [], []
    for side in (np.array([c for c in codes if c >= 0]), np.array([-c for c in codes if c <= 0])):
        if not side.any():  # an unsigned map's negative side: 0 alone
            continue
        side = np.unique(side)
        ends = [*side] + ([1.0] if side[-1] < 1.0 else [])
        for a, b in zip(ends[:-1], ends[1:]):
            uppers.append(b)
            errors.append(1.0 if a == 0 else (b - a) / b if b not in side else (b - a) / (b + a))
    order = np.argsort(uppers)
    uppers, errors = np.array(uppers)[order], np.array(errors)[order]
    return uppers, np.maximum.accumulate(errors[::-1])[::-1]


def rounding(codes: tuple[float, ...], y: np.ndarray, e: np.ndarray, a) -> np.ndarray:
    """A bound on how far storing a value known to lie within `e` of `y` moves it, in a tensor
    whose block's largest |value| is at most `a` (per element): (|y|+e)·D((|y|-e)/a). A block
    with a value that is not finite, or may not be, is scaled by it: nothing is promised there."""
    uppers, suffix = _cells(codes)
    size = np.abs(y) + e
    low = np.maximum(np.abs(y) - e, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(a > 0, low / a, 0)
    k = np.minimum(np.searchsorted(uppers, np.nan_to_num(r), side="right"), len(uppers) - 1)
    return np.where(np.isfinite(a), size * suffix[k], np.inf)
