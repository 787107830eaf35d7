"""The compiled implementation: no recompiles across steps, bounded across shapes, a fallback."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.utils

from impls import compiled
from impls.eager import EagerAdam


def _graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def _train(factory, shapes, steps, lrs=None, **config):
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=generator) for s in shapes]
    opt = factory(params, lr=1e-2, **config)
    for t in range(steps):
        if lrs:
            opt.param_groups[0]["lr"] = lrs[t % len(lrs)]
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        opt.step()
    return params


def test_no_recompilation_from_one_step_to_the_next():
    _train(compiled.CompiledAdam, [(4, 5), (3,)], steps=1, weight_decay=0.1)
    before = _graphs()
    _train(compiled.CompiledAdam, [(4, 5), (3,)], steps=10, lrs=[1e-3, 3e-3, 0.1], weight_decay=0.1)
    assert _graphs() == before, "a new step, lr or step count recompiled the graph"


def test_new_shapes_reuse_the_graph():
    _train(compiled.CompiledAdam, [(6, 7)], steps=1, amsgrad=True)
    before = _graphs()
    _train(compiled.CompiledAdam, [(2, 3, 4), (1000,), (17, 3), (2,)], steps=2, amsgrad=True)
    assert _graphs() == before, "new shapes recompiled the graph"


def test_graphs_are_bounded_by_the_static_variants():
    # One graph per (dtype, maximize, decay mode, amsgrad, size 1 or not): the bound is fixed.
    assert compiled.MAX_GRAPHS == 4 * 2 * 3 * 2 * 2


@pytest.fixture
def fresh_compiled(monkeypatch):
    monkeypatch.setattr(compiled, "_compiled_step", None)


def test_falls_back_with_a_warning_where_compile_is_unsupported(fresh_compiled, monkeypatch):
    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    with pytest.warns(RuntimeWarning, match="not supported on this Python or platform; running the step uncompiled"):
        got = _train(compiled.CompiledAdam, [(4, 5)], steps=3)
    want = _train(EagerAdam, [(4, 5)], steps=3)
    assert all(torch.allclose(a, b) for a, b in zip(got, want))


def test_falls_back_with_a_warning_when_the_backend_fails(fresh_compiled, monkeypatch):
    def broken_backend(graph_module, example_inputs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(
        compiled, "_compiled_step",
        torch.compile(compiled._adam_tensor_step, backend=broken_backend, dynamic=True, fullgraph=True),
    )
    warned = "torch.compile failed .*no C\\+\\+ compiler found.*running the step uncompiled"
    with pytest.warns(RuntimeWarning, match=warned):
        got = _train(compiled.CompiledAdam, [(4, 5)], steps=3, maximize=True)
    want = _train(EagerAdam, [(4, 5)], steps=3, maximize=True)
    assert all(torch.allclose(a, b) for a, b in zip(got, want))
