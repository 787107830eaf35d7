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

#: Decay modes, as the kernel's constexpr DECAY.
NO_DECAY, COUPLED, DECOUPLED = 0, 1, 2


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

    param_ptr = tl.load(param_ptrs + i).to(tl.pointer_type(DTYPE))
    grad_ptr = tl.load(grad_ptrs + i).to(tl.pointer_type(DTYPE))
    exp_avg_ptr = tl.load(exp_avg_ptrs + i).to(tl.pointer_type(DTYPE))
    exp_avg_sq_ptr = tl.load(exp_avg_sq_ptrs + i).to(tl.pointer_type(DTYPE))

    decay = tl.load(scalars + 0).to(COMPUTE)
    one_minus_beta1 = tl.load(scalars + 1).to(COMPUTE)
    beta2 = tl.load(scalars + 2).to(COMPUTE)
    one_minus_beta2 = tl.load(scalars + 3).to(COMPUTE)
    eps = tl.load(scalars + 4).to(COMPUTE)
    neg_step_size = tl.load(neg_step_sizes + i).to(COMPUTE)
    bias_correction2_sqrt = tl.load(bias_correction2_sqrts + i).to(COMPUTE)

    p = tl.load(param_ptr + offsets, mask=mask, other=0).to(COMPUTE)
    g = tl.load(grad_ptr + offsets, mask=mask, other=0).to(COMPUTE)
    m = tl.load(exp_avg_ptr + offsets, mask=mask, other=0).to(COMPUTE)
    v = tl.load(exp_avg_sq_ptr + offsets, mask=mask, other=0).to(COMPUTE)

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
        max_ptr = tl.load(max_exp_avg_sq_ptrs + i).to(tl.pointer_type(DTYPE))
        v_max = tl.load(max_ptr + offsets, mask=mask, other=0).to(COMPUTE)
        v_max = tl.maximum(v_max, v, propagate_nan=tl.PropagateNan.ALL)
        tl.store(max_ptr + offsets, _rounded(v_max, DTYPE), mask=mask)
        second_moment = v_max
    denom = tl.sqrt(second_moment) / bias_correction2_sqrt + eps
    p = p + neg_step_size * (m / denom)

    tl.store(param_ptr + offsets, _rounded(p, DTYPE), mask=mask)
    tl.store(exp_avg_ptr + offsets, _rounded(m, DTYPE), mask=mask)
    tl.store(exp_avg_sq_ptr + offsets, _rounded(v, DTYPE), mask=mask)


@triton.jit
def _rounded(x, DTYPE: tl.constexpr):
    """`x` rounded to DTYPE, to nearest even.

    Triton's interpreter truncates fp32 to bfloat16 (whatever ``fp_downcast_rounding``
    says), so bfloat16 is rounded by hand on the bits: the result is exactly
    representable and the final conversion is exact on every backend.
    """
    if DTYPE == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        x = tl.where(x != x, x, bits.to(tl.float32, bitcast=True))
    return x.to(DTYPE)
