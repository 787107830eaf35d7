"""The Triton implementation: one kernel launch per dtype and group, whatever the tensor count."""

from __future__ import annotations

import pytest
import torch

triton_fused = pytest.importorskip("impls.triton_fused")
if triton_fused.triton is None:
    pytest.skip("Triton is not installed", allow_module_level=True)


def test_one_launch_per_dtype_for_many_tensors(monkeypatch):
    launches = []
    kernel = triton_fused.triton_kernel.adam_kernel
    original = type(kernel).__getitem__

    def counting(self, grid):
        launches.append(grid)
        return original(self, grid)

    monkeypatch.setattr(type(kernel), "__getitem__", counting)
    shapes = [(3,), (1,), (0,), (5, 7), (2049,), ()] * 4
    params = [torch.randn(s) for s in shapes] + [torch.randn(4, dtype=torch.float64)]
    opt = triton_fused.TritonAdam(params, lr=0.1)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    assert len(launches) == 2, "expected one launch for the float32 tensors and one for float64"
    blocks = sum(-(-p.numel() // triton_fused.BLOCK) for p in params if p.dtype == torch.float32)
    assert (blocks,) in launches, "the float32 launch covers every block of every tensor"


def test_interpreter_is_used_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available: the kernel runs natively")
    assert triton_fused.INTERPRETED
    assert triton_fused.ADAM.devices == ("cpu",)
    assert "interpreter on CPU" in triton_fused.ADAM.describe_how()
