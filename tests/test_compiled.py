"""The compiled implementation: one graph per (device, dtype) group, no recompiles across steps, a fallback."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo.utils

from impls import compiled
from impls.eager import EagerAdam


def _graphs() -> int:
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def _train(factory, shapes, steps, **config):
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=generator) for s in shapes]
    opt = factory(params, lr=1e-2, **config)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        opt.step()
    return params


def _train_unevenly(shapes, steps, lrs, **config):
    """Train with a changing lr, some parameters without a grad on the first steps (so step counts differ)."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=generator) for s in shapes]
    opt = compiled.CompiledAdam(params, lr=lrs[0], **config)
    for t in range(steps):
        opt.param_groups[0]["lr"] = lrs[t % len(lrs)]
        for i, p in enumerate(params):
            p.grad = None if t < i % 3 else torch.randn(p.shape, generator=generator)
        opt.step()
    assert len({float(opt.state[p]["step"]) for p in params}) > 1
    return params


def test_no_recompilation_across_steps_lrs_step_counts_shapes_parameter_counts_and_flags():
    _train(compiled.CompiledAdam, [(4, 5), (3,)], steps=1, weight_decay=0.1)
    before = _graphs()
    _train_unevenly([(4, 5), (3,)], steps=6, lrs=[1e-3, 3e-3, 0.1], weight_decay=0.1)
    shapes = [(2, 3, 4), (1000,), (), (1,), (17, 3), (0,), (2,)] * 3  # several chunks, a partial one
    _train_unevenly(shapes, steps=4, lrs=[0.1, torch.tensor(0.01)], weight_decay=0.1)
    _train_unevenly(shapes, steps=3, lrs=[0.1], weight_decay=0.1, maximize=True, decoupled_weight_decay=True)
    assert _graphs() == before, "a new step, lr, step count, shape, parameter count or flag recompiled the graph"


def test_one_graph_serves_a_whole_device_and_dtype_group():
    torch._dynamo.reset()  # compile afresh (inductor's cache keeps it quick)
    before = _graphs()
    shapes = [(3, 4), (), (1,), (5,), (2, 2, 2)] * (compiled.WIDTH // 2)  # more than two chunks
    _train(compiled.CompiledAdam, shapes, steps=2, amsgrad=True)
    assert _graphs() == before + 1
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=generator, dtype=d) for s in shapes for d in (torch.float32, torch.float64)]
    opt = compiled.CompiledAdam(params, amsgrad=True)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator, dtype=p.dtype)
    opt.step()
    assert _graphs() == before + 2, "one more graph for the float64 group, none for float32's"


def test_graphs_are_bounded_by_the_static_variants():
    # One graph per (device type, dtype, amsgrad): the bound is fixed.
    assert compiled.MAX_GRAPHS == 2 * 4 * 2


@pytest.fixture
def fresh_compiled(monkeypatch):
    """No compiled step yet, and dynamo's caches cleared: the step's code object may have been
    compiled up to its recompile limit by earlier tests in this worker, past which dynamo runs
    it uncompiled without calling the backend at all."""
    monkeypatch.setattr(compiled, "_compiled_step", None)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


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
        torch.compile(compiled._adam_chunk_step, backend=broken_backend, dynamic=True, fullgraph=True),
    )
    warned = "torch.compile failed .*no C\\+\\+ compiler found.*running the step uncompiled"
    with pytest.warns(RuntimeWarning, match=warned):
        got = _train(compiled.CompiledAdam, [(4, 5)], steps=3, maximize=True)
    want = _train(EagerAdam, [(4, 5)], steps=3, maximize=True)
    assert all(torch.allclose(a, b) for a, b in zip(got, want))
