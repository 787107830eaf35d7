"""The fused Adam kernel in Triton: one launch updates every tensor of one dtype.

Multi-tensor apply with pointer tables: the launch grid is a flat list of work
blocks; block b updates elements ``[start[b], start[b] + BLOCK)`` of tensor
``tensor[b]``, whose addresses are read from tables of raw pointers. Each element is
loaded once, updated in registers (fp32, or fp64 for fp64 tensors) and stored once:
θ, g, m, v (and v̄ with amsgrad) are 28 bytes of traffic per float32 element, the
least an Adam step can move.

Importing this module defines the kernel, so ``TRITON_INTERPRET`` must be decided
before (see ``impls.triton_fused``).
"""

from __future__ import annotations

import triton
import triton.language as tl

#: Decay modes (`Hyper.decay`), as the kernel's constexpr DECAY.
DECAY_MODES = {"none": 0, "coupled": 1, "decoupled": 2}


@triton.jit
def adam_kernel(
    param_ptrs,  # int64[T] addresses of the 1-D tensors
    grad_ptrs,
    exp_avg_ptrs,
    exp_avg_sq_ptrs,
    max_exp_avg_sq_ptrs,  # unused unless AMSGRAD
    numels,  # int64[T]
    block_tensor,  # int32[B]: which tensor block b works on
    block_start,  # int64[B]: its first element
    neg_step_sizes,  # float64[T]: -lr / (1 - β₁ᵗ)
    bias_correction2_sqrts,  # float64[T]: √(1 - β₂ᵗ)
    scalars,  # float64[5]: decay (λ or 1-γλ), 1-β₁, β₂, 1-β₂, ε
    DTYPE: tl.constexpr,
    COMPUTE: tl.constexpr,
    MAXIMIZE: tl.constexpr,
    DECAY: tl.constexpr,
    AMSGRAD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    b = tl.program_id(0)
    i = tl.load(block_tensor + b)
    offsets = tl.load(block_start + b) + tl.arange(0, BLOCK)
    mask = offsets < tl.load(numels + i)

    param_at = tl.load(param_ptrs + i)
    grad_at = tl.load(grad_ptrs + i)
    exp_avg_at = tl.load(exp_avg_ptrs + i)
    exp_avg_sq_at = tl.load(exp_avg_sq_ptrs + i)

    decay = tl.load(scalars + 0).to(COMPUTE)
    one_minus_beta1 = tl.load(scalars + 1).to(COMPUTE)
    beta2 = tl.load(scalars + 2).to(COMPUTE)
    one_minus_beta2 = tl.load(scalars + 3).to(COMPUTE)
    eps = tl.load(scalars + 4).to(COMPUTE)
    neg_step_size = tl.load(neg_step_sizes + i).to(COMPUTE)
    bias_correction2_sqrt = tl.load(bias_correction2_sqrts + i).to(COMPUTE)

    p = _load(param_at, offsets, mask, DTYPE, COMPUTE)
    g = _load(grad_at, offsets, mask, DTYPE, COMPUTE)
    m = _load(exp_avg_at, offsets, mask, DTYPE, COMPUTE)
    v = _load(exp_avg_sq_at, offsets, mask, DTYPE, COMPUTE)

    if MAXIMIZE:
        g = -g
    if DECAY == 2:
        p = p * decay
    elif DECAY == 1:
        g = g + decay * p
    # torch's lerp: exact at both ends of the weight range.
    m = tl.where(one_minus_beta1 < 0.5, m + one_minus_beta1 * (g - m), g - (g - m) * (1 - one_minus_beta1))
    v = v * beta2 + one_minus_beta2 * g * g
    second_moment = v
    if AMSGRAD:
        max_at = tl.load(max_exp_avg_sq_ptrs + i)
        v_max = tl.maximum(_load(max_at, offsets, mask, DTYPE, COMPUTE), v, propagate_nan=tl.PropagateNan.ALL)
        _store(max_at, offsets, v_max, mask, DTYPE)
        second_moment = v_max
    denom = tl.sqrt(second_moment) / bias_correction2_sqrt + eps
    p = p + neg_step_size * (m / denom)

    _store(param_at, offsets, p, mask, DTYPE)
    _store(exp_avg_at, offsets, m, mask, DTYPE)
    _store(exp_avg_sq_at, offsets, v, mask, DTYPE)


# bfloat16 moves through memory as its 16 bits. Triton's interpreter converts bfloat16
# wrongly both ways (it truncates float32 -> bfloat16 whatever fp_downcast_rounding says,
# and mangles subnormals on the way up); on the bits both conversions are exact, and the
# same on every backend.


@triton.jit
def _load(address, offsets, mask, DTYPE: tl.constexpr, COMPUTE: tl.constexpr):
    """Elements of a tensor of DTYPE at `address`, widened to COMPUTE."""
    if DTYPE == tl.bfloat16:
        bits = tl.load(address.to(tl.pointer_type(tl.uint16)) + offsets, mask=mask, other=0)
        return (bits.to(tl.uint32) << 16).to(tl.float32, bitcast=True)
    return tl.load(address.to(tl.pointer_type(DTYPE)) + offsets, mask=mask, other=0).to(COMPUTE)


@triton.jit
def _store(address, offsets, x, mask, DTYPE: tl.constexpr):
    """Store `x` rounded to DTYPE (to nearest, ties to even) at `address`."""
    if DTYPE == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).to(tl.uint16)
        nan = (bits >> 16).to(tl.uint16) | 0x40  # keep NaN a (quiet) NaN
        tl.store(address.to(tl.pointer_type(tl.uint16)) + offsets, tl.where(x != x, nan, rounded), mask=mask)
    else:
        tl.store(address.to(tl.pointer_type(DTYPE)) + offsets, x.to(DTYPE), mask=mask)
