"""Parameter dtypes by name, without torch: rounding, machine epsilon, real counterparts.

Cases and traces hold values as float64 / complex128 numpy arrays; a value "in"
bfloat16 is a float64 that bfloat16 represents exactly.
"""

from __future__ import annotations

import numpy as np

REAL = ("float16", "bfloat16", "float32", "float64")
COMPLEX = ("complex64", "complex128")
ALL = REAL + COMPLEX

#: Machine epsilon (spacing of values at 1) of each real dtype.
EPS = {"float16": 2.0**-10, "bfloat16": 2.0**-7, "float32": 2.0**-23, "float64": 2.0**-52}
#: Smallest positive normal value of each real dtype.
TINY = {"float16": 2.0**-14, "bfloat16": 2.0**-126, "float32": 2.0**-126, "float64": 2.0**-1022}


def real(dtype: str) -> str:
    """The real dtype of each component: complex64 -> float32."""
    return {"complex64": "float32", "complex128": "float64"}.get(dtype, dtype)


def is_complex(dtype: str) -> bool:
    return dtype in COMPLEX


def eps(dtype: str) -> float:
    return EPS[real(dtype)]


def storage(dtype: str) -> type:
    """The numpy dtype that holds values of `dtype` exactly."""
    return np.complex128 if is_complex(dtype) else np.float64


def complex_from(re, im) -> np.ndarray:
    """A complex128 array from its parts. (``re + 1j * im`` turns an infinite part into NaN.)"""
    out = np.empty(np.broadcast(re, im).shape, dtype=np.complex128)
    out.real, out.imag = re, im
    return out


def components(a: np.ndarray) -> np.ndarray:
    """A complex array as a trailing (re, im) axis of independent reals (torch's
    view_as_real); a real array as it is."""
    a = np.asarray(a)
    return np.stack([a.real, a.imag], axis=-1) if np.iscomplexobj(a) else a


def round_to(values, dtype: str) -> np.ndarray:
    """`values` rounded to nearest (ties to even) in `dtype`, held as float64 / complex128."""
    values = np.asarray(values)
    if is_complex(dtype):
        return complex_from(round_to(values.real, real(dtype)), round_to(values.imag, real(dtype)))
    values = values.astype(np.float64)
    if dtype == "float64":
        return values.copy()
    if dtype == "float32":
        return values.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        return values.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return _round_to_bfloat16(values.astype(np.float32)).astype(np.float64)
    raise ValueError(f"unknown dtype {dtype!r}; known: {ALL}")


def _round_to_bfloat16(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 by round-to-nearest-even on the bits (float32 holding the result).

    Rounding float64 -> float32 -> bfloat16 can round twice; values drawn for cases are
    float32 before they are bfloat16, so it does not arise for them.
    """
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return np.where(np.isnan(x), x, rounded.view(np.float32))


def ulp(values, dtype: str) -> np.ndarray:
    """The spacing of `dtype` values at each of `values` (real dtypes)."""
    values = np.asarray(values, dtype=np.float64)
    if dtype == "bfloat16":  # float32's spacing, 16 fewer significand bits
        return np.spacing(np.abs(values).astype(np.float32)).astype(np.float64) * 2.0**16
    width = {"float16": np.float16, "float32": np.float32}.get(dtype, np.float64)
    return np.spacing(np.abs(values).astype(width)).astype(np.float64)


def representable(values, dtype: str) -> bool:
    """Whether every value is exactly a value of `dtype` (NaN counts as representable)."""
    values = np.asarray(values)
    rounded = round_to(values, dtype)
    same = (rounded == values) | (np.isnan(rounded) & np.isnan(values))
    return bool(np.all(same))
