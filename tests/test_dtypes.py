"""dtypes without torch, held against torch: rounding (bfloat16's bit arithmetic above all),
machine epsilon, spacing, and complex values as (re, im) pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conformance import dtypes

TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def _awkward() -> np.ndarray:
    """float32 values that test rounding: ties to even, subnormals, the largest finite, inf, NaN."""
    rs = np.random.RandomState(0)
    bits = rs.randint(0, 2**32, size=20000, dtype=np.uint64).astype(np.uint32)
    values = bits.view(np.float32)
    ties = (np.arange(1, 2000, dtype=np.uint32) << 16 | 0x8000).view(np.float32)  # exactly halfway in bfloat16
    special = np.array([0.0, -0.0, 1e-40, -1e-45, 3.3895314e38, 3.4e38, np.inf, -np.inf, np.nan], dtype=np.float32)
    return np.concatenate([values, ties, -ties, special])


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_rounding_matches_torch(dtype):
    with np.errstate(invalid="ignore"):  # NaNs among the random bits
        values = _awkward().astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        ours = dtypes.round_to(values, dtype)
    theirs = torch.from_numpy(values.astype(np.float32)).to(TORCH[dtype]).to(torch.float64).numpy()
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    assert same.all(), f"{(~same).sum()} differ, e.g. {values[~same][:3]}: {ours[~same][:3]} vs {theirs[~same][:3]}"


@pytest.mark.parametrize("dtype", sorted(TORCH))
def test_eps_tiny_and_spacing_match_torch(dtype):
    info = torch.finfo(TORCH[dtype])
    assert dtypes.eps(dtype) == info.eps and dtypes.TINY[dtype] == info.tiny
    x = np.array([1.0, 3.0, 1000.0])
    up = torch.nextafter(torch.tensor(x, dtype=TORCH[dtype]), torch.tensor(np.inf, dtype=TORCH[dtype]))
    assert np.array_equal(dtypes.ulp(x, dtype), (up.double() - torch.tensor(x, dtype=TORCH[dtype]).double()).numpy())


def test_complex_values_are_pairs_of_reals_as_torch_views_them():
    z = np.array([1 + 2j, -3.5 + 0j, np.inf - 1j])
    assert np.array_equal(dtypes.components(z), torch.view_as_real(torch.from_numpy(z)).numpy())
    assert np.array_equal(dtypes.components(z.real), z.real)
    # complex_from keeps an infinite part infinite (re + 1j * im would give NaN)
    built = dtypes.complex_from(np.array([np.inf]), np.array([0.0]))
    assert built[0].real == np.inf and built[0].imag == 0.0
    assert dtypes.real("complex64") == "float32" and dtypes.eps("complex128") == 2.0**-52
