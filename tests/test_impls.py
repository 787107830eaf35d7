"""Every built-in implementation against torch's single-tensor Adam / AdamW, step by step.

A fixed grid: every flag on and off (amsgrad, maximize, weight decay none / coupled /
decoupled), crossed with several lrs, betas, eps and decays, in float32, float64,
bfloat16 and complex64, for 20 steps over parameters of awkward shapes (0-d, empty,
odd sizes, 4-d, transposed), with some parameters left without a grad on some steps.

Each step starts both optimizers from identical parameters and state (torch's values
are copied into the implementation after every comparison, as torch's own
``TensorTracker`` does), so a failure points at the first step that goes wrong and
rounding differences cannot accumulate.

Tolerance, per element x of a parameter or state tensor: the two results may differ
only by rounding. Both compute x_new = x_old + Δ from the same inputs with at most
``ROUNDINGS`` rounded operations on any path (grad negation and decay, lerp, mul and
addcmul, sqrt, division, eps, division, step), each off by at most u (the dtype's unit
roundoff) relative to the magnitudes it combines, which are bounded by |x_old| + |Δ|.
So |impl - torch| <= 2 · ROUNDINGS · u · (|x_old| + |Δ|), one bound for each side.
An implementation that rounds less (fp32 registers for bf16 data, fused kernels) is
inside it; a wrong formula is not: its error is O(|Δ|), not O(u·|Δ|).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from conformance import resolve
from tests import mutants
from tests.known import BASE

ROUNDINGS = 8
STEPS = 20
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.complex64]
IMPLEMENTATIONS = [name for name in BASE if name != "torch"]  # each against torch's single-tensor path

LRS = [1e-3, 0.1, 1.0]
BETAS = [(0.9, 0.999), (0.0, 0.99), (0.5, 0.9999)]
EPSILONS = [1e-8, 1e-3, 0.5]
DECAYS = [0.1, 0.5, 0.01]
FLAGS = [
    dict(amsgrad=amsgrad, maximize=maximize, decay=decay)
    for amsgrad, maximize, decay in itertools.product([False, True], [False, True], ["none", "coupled", "decoupled"])
]


def _grid() -> list[dict]:
    """Every flag combination; across them, each decay mode meets every lr, decay and betas."""
    configs = []
    for i, flags in enumerate(FLAGS):
        row, col = divmod(i, 3)  # col: the decay mode; row: amsgrad x maximize
        config = dict(
            lr=LRS[row % 3],
            betas=BETAS[(row + col) % 3],
            eps=EPSILONS[(row + 2 * col) % 3],
            amsgrad=flags["amsgrad"],
            maximize=flags["maximize"],
            weight_decay=0.0 if flags["decay"] == "none" else DECAYS[(row + 1) % 3],
        )
        config["spec"] = "adamw" if flags["decay"] == "decoupled" else "adam"
        configs.append(config)
    return configs


GRID = _grid()

def _params(dtype: torch.dtype, generator: torch.Generator) -> list[torch.Tensor]:
    shapes = [(5, 3), (7,), (), (0,), (2, 3, 4, 5), (33,)]
    params = [torch.randn(s, generator=generator, dtype=torch.float64).to(dtype) for s in shapes]
    params[0] = params[0].t().contiguous().t()  # transposed memory layout
    params[4] = params[4].contiguous(memory_format=torch.channels_last)
    return params


def _grad_like(p: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    g = torch.empty_like(p)  # same memory layout as p
    g.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype))
    return g


def _real(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def _unit_roundoff(dtype: torch.dtype) -> float:
    real = {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)
    return torch.finfo(real).eps / 2


def _assert_close_after_one_step(name, got, ref, old, dtype, where):
    got, ref, old = (_real(t).double() for t in (got, ref, old))
    scale = old.abs() + (ref - old).abs()
    allowed = 2 * ROUNDINGS * _unit_roundoff(dtype) * scale
    bad = ~((got - ref).abs() <= allowed) & ~(got.isnan() & ref.isnan())
    if bad.any():
        i = bad.nonzero()[0].tolist()
        raise AssertionError(
            f"{where}: {name} differs from torch beyond rounding at {i}: "
            f"got {got[tuple(i)].item()!r}, torch {ref[tuple(i)].item()!r}, "
            f"allowed ±{allowed[tuple(i)].item():.3g} ({int(bad.sum())} elements)"
        )


def _config_id(c: dict) -> str:
    return f"{c['spec']}-ams{int(c['amsgrad'])}-max{int(c['maximize'])}-wd{c['weight_decay']}"


def _runs() -> list:
    """Every implementation, dtype and config. The fast inner loop (``-m "not slow"``) runs one
    config for each implementation and dtype, the configs taken in turn so that each runs twice;
    the rest of the grid is marked slow."""
    fast = {(name, dtype): GRID[(len(DTYPES) * i + j) % len(GRID)]
            for i, name in enumerate(IMPLEMENTATIONS) for j, dtype in enumerate(DTYPES)}
    return [pytest.param(name, dtype, config, marks=() if config is fast[name, dtype] else pytest.mark.slow,
                         id=f"{name}-{str(dtype).removeprefix('torch.')}-{_config_id(config)}")
            for name in IMPLEMENTATIONS for dtype in DTYPES for config in GRID]


@pytest.mark.parametrize(("name", "dtype", "config"), _runs())
def test_matches_torch_single_tensor_step_by_step(name, dtype, config):
    config = dict(config)
    spec = config.pop("spec")
    impl = resolve(name if spec == "adam" else f"{name}-adamw")
    if dtype.is_complex and "complex" not in impl.claims:
        pytest.skip(f"{impl.name} does not claim complex parameters")
    compare_step_by_step(impl.factory, spec, dtype, config)


@pytest.mark.parametrize("mutant", [mutants.Beta2InBfloat16, mutants.MaximizeIgnored, mutants.EpsBeforeBiasCorrection])
def test_the_comparison_catches_a_planted_bug(mutant):
    config = dict(lr=0.1, betas=(0.9, 0.999), eps=1e-3, weight_decay=0.0, amsgrad=False, maximize=True)
    with pytest.raises(AssertionError, match="differs from torch beyond rounding"):
        compare_step_by_step(mutant, "adam", torch.float32, config)


def compare_step_by_step(factory, spec: str, dtype: torch.dtype, config: dict) -> None:
    """Run `factory` beside torch's single-tensor path, resynchronising after every step."""
    reference = torch.optim.AdamW if spec == "adamw" else torch.optim.Adam
    generator = torch.Generator().manual_seed(0)
    ref_params = _params(dtype, generator)
    params = [p.clone() for p in ref_params]  # clone keeps the memory layout
    ref_opt = reference(ref_params, foreach=False, **config)
    opt = factory(params, **config)

    for step in range(1, STEPS + 1):
        skipped = {1, 5} if step % 3 == 0 else set()  # parameters without a grad this step
        for i, (p, q) in enumerate(zip(params, ref_params)):
            grad = None if i in skipped else _grad_like(p, generator)
            p.grad, q.grad = grad, None if grad is None else grad.clone()
        old = [p.detach().clone() for p in ref_params]
        old_state = [{k: v.clone() for k, v in ref_opt.state[q].items()} for q in ref_params]
        ref_opt.step()
        opt.step()
        for i, (p, q) in enumerate(zip(params, ref_params)):
            where = f"{type(opt).__name__} {dtype} step {step} param {i} {tuple(q.shape)}"
            assert p.grad is None or torch.equal(p.grad, q.grad), f"{where}: the gradient was modified"
            assert opt.state[p].keys() == ref_opt.state[q].keys(), f"{where}: state keys differ"
            if i in skipped:
                continue
            _assert_close_after_one_step("param", p.detach(), q.detach(), old[i], dtype, where)
            for key, ref_value in ref_opt.state[q].items():
                value = opt.state[p][key]
                if key == "step":
                    assert float(value) == float(ref_value), f"{where}: step {float(value)} != {float(ref_value)}"
                    continue
                previous = old_state[i].get(key, torch.zeros_like(ref_value))
                _assert_close_after_one_step(key, value, ref_value, previous, dtype, where)
            with torch.no_grad():  # resynchronise: the next step starts from torch's values
                p.copy_(q)
                for key, ref_value in ref_opt.state[q].items():
                    opt.state[p][key].copy_(ref_value)
