"""The measurements of ``adam-conformance bench``: parameter sets, the bytes an Adam step
moves, step times sampled round-robin, the in-place streaming rate, the extra peak memory.
`measure` takes all of them for one (device, set, dtype); `Contender.entry` is a target's
step over a fresh copy of the set.

* **Time.** A sample is the wall time of a block of consecutive calls divided by their
  number, taken as ``torch.utils.benchmark``'s ``blocked_autorange`` takes a block: the
  accelerator synchronized at both ends (``torch.utils.benchmark.utils.timer.timer``), on
  ``torch.get_num_threads()`` threads (what users run with; ``Timer`` must be told so with
  ``num_threads``, its default is 1), the garbage collector off as ``timeit`` turns it off.
  ``Timer.timeit`` itself is not used: it runs two untimed calls per call, which would
  triple the cost of one-step samples of a slow target. Samples are taken round-robin over
  the entries of one (device, set, dtype): sample r of every entry before sample r+1 of
  any, so load that comes and goes weighs on all of them alike, and ratios between them
  are side by side.
* **Bytes.** An Adam step reads the parameter, the gradient and both moments and writes the
  parameter and both moments: 7 passes over the elements, 28 B per float32 element, 14 per
  bfloat16 (the state is kept in the parameter's dtype, as torch keeps it). AMSGrad reads
  and writes the running maximum too: 9 passes, 36 B per float32 element.
* **In-place bandwidth.** STREAM-style in-place kernels over buffers as large as the set,
  timed in the same round-robin: ``a.mul_(s)`` (2 passes) and ``a.addcmul_(b, c)`` (4).
* **Extra peak memory.** One step after the samples (none where one step takes longer than
  the sampling budget): on CUDA the rise of
  ``torch.cuda.max_memory_allocated`` above what was allocated before it; on the CPU the
  peak, above the start, of the running sum of allocations and frees that torch's profiler
  records from torch's CPU allocator. Memory a target takes outside torch's allocator
  (numpy arrays, Triton's interpreter) is not seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import os
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.benchmark.utils.timer import timer

from conformance.run.target import Target

#: Passes over the elements per Adam step (read p, g, m, v; write p, m, v), and with AMSGrad.
PASSES, AMSGRAD_PASSES = 7, 9
#: The shortest sample by default: a fast step is sampled in blocks of calls at least this long.
MIN_SAMPLE_S = 0.02


@dataclasses.dataclass(frozen=True)
class ParamSet:
    """Named parameter shapes. `overhead_bound`: tensors so small and many that a step's time is
    mostly per-tensor overhead, not memory traffic (bench shows its time per tensor)."""

    name: str
    description: str
    shapes: tuple[tuple[int, ...], ...]
    overhead_bound: bool = False

    @property
    def numel(self) -> int:
        """The elements of all its tensors."""
        return sum(math.prod(s) for s in self.shapes)


def _transformer(layers=8, width=384, vocab=16384, context=1024) -> tuple[tuple[int, ...], ...]:
    """A GPT-style stack: embeddings, per layer two norms, attention and MLP; a final norm."""
    w = width
    layer = [(w,), (w,), (3 * w, w), (3 * w,), (w, w), (w,), (w,), (w,), (4 * w, w), (4 * w,), (w, 4 * w), (w,)]
    return ((vocab, w), (context, w), *layer * layers, (w,), (w,))


_TINY = ((1,), (16,), (64,), (8, 8), (128,), (32, 4), (256,), (3, 3))

SETS = {s.name: s for s in (
    ParamSet("mlp", "the seed notebook's MLP: Linear(1000, 100), ReLU, Linear(100, 10)",
             ((100, 1000), (100,), (10, 100), (10,))),
    ParamSet("transformer", "GPT-style, 8 layers of width 384, vocabulary 16384", _transformer()),
    ParamSet("tiny", "4096 tiny tensors of 1 to 256 elements", _TINY * 512, overhead_bound=True),
)}


def step_bytes(dtype: torch.dtype, amsgrad: bool = False) -> int:
    """Bytes an Adam step moves per element of `dtype`: 28 for float32, 36 with AMSGrad."""
    return (AMSGRAD_PASSES if amsgrad else PASSES) * dtype.itemsize


def make_params(param_set: ParamSet, dtype: torch.dtype, device: str, seed: int = 0) -> list[torch.Tensor]:
    """The set's parameters, normal values, each with a uniform gradient (as pytorch/benchmark's
    optimizer benchmark draws them); the same values for the same seed."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in param_set.shapes:
        p = torch.randn(shape, generator=gen).to(device, dtype).requires_grad_()
        p.grad = torch.rand(shape, generator=gen).to(device, dtype)
        params.append(p)
    return params


@dataclasses.dataclass
class Entry:
    """Something timed: a target's ``step`` or an in-place kernel. `error` is why it cannot be."""

    name: str
    call: Callable[[], object] | None
    error: str | None = None
    number: int = 1  # calls per sample
    per_call: float = 0.0  # seconds, as the warm-up saw it
    wanted: int = 0  # samples to take
    samples: list[float] = dataclasses.field(default_factory=list)  # seconds per call
    extra_peak: int | None = None  # bytes

    def stats(self) -> dict[str, float] | None:
        """min, median and interquartile range (None below 3 samples) of the samples, in seconds."""
        if not self.samples:
            return None
        q1, median, q3 = np.percentile(self.samples, [25, 50, 75])
        return dict(min=min(self.samples), median=float(median), iqr=float(q3 - q1) if len(self.samples) > 2 else None)


@dataclasses.dataclass
class Contender:
    """A target on one device, and what bench's parity check said of it: `check` is ok, not
    conformant, raised, not checked or cannot load (`target` None), `detail` why; `interpreted`
    says why it runs under an interpreter here (None: it runs natively)."""

    name: str
    target: Target | None
    check: str
    detail: str
    interpreted: str | None = None

    def entry(self, param_set: ParamSet, dtype: torch.dtype, device: str, amsgrad: bool) -> Entry:
        """An Entry stepping this target's optimizer over a fresh copy of the set (lr 1e-3, weight_decay 0)."""
        if self.target is None:
            return Entry(self.name, None, error=self.detail)
        impl = self.target.impl
        if amsgrad and "amsgrad" not in impl.claims:
            return Entry(self.name, None, error="does not claim amsgrad")
        kw = {k: v for k, v in (("weight_decay", 0.0), ("amsgrad", amsgrad)) if k in impl.claims}
        try:
            opt = self.target.optimizer(make_params(param_set, dtype, device), **kw)
            return Entry(self.name, opt.step)
        except Exception as e:  # listed with why, as a target whose step raises
            return Entry(self.name, None, error=f"constructor raised {one_line(e)}")


def stream_entries(numel: int, dtype: torch.dtype, device: str) -> dict[str, tuple[Entry, int]]:
    """The in-place kernels over buffers of `numel` elements, each with its bytes per element."""
    a, b, c = (torch.rand(numel, dtype=dtype, device=device) for _ in range(3))
    scale = 1.0 - 1e-7  # keeps the values from growing or vanishing over many calls
    return {"mul_": (Entry("mul_", lambda: a.mul_(scale)), 2 * dtype.itemsize),
            "addcmul_": (Entry("addcmul_", lambda: a.addcmul_(b, c, value=1e-7)), 4 * dtype.itemsize)}


@contextlib.contextmanager
def _quiet_gc() -> Iterator[None]:
    """The garbage collector off for the block, as ``timeit`` turns it off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _block(entry: Entry, number: int) -> float:
    """Seconds per call over a block of `number` calls."""
    with _quiet_gc():
        start = timer()
        for _ in range(number):
            entry.call()
        return (timer() - start) / number


def warm_up(entry: Entry, calls: int, *, number: int | None, min_sample_s: float, budget_s: float,
            repeats: int) -> None:
    """Run up to `calls` untimed calls (compilation, state allocation), then size the samples:
    `number` calls each (by default enough for `min_sample_s`), `repeats` of them, fewer (at
    least one) where they would take more than `budget_s`. An entry whose first call alone
    takes longer than `budget_s` is not sampled; one whose call raises neither. `error` says why."""
    elapsed: list[float] = []
    try:
        while len(elapsed) < calls and sum(elapsed[1:]) < budget_s:
            elapsed.append(_block(entry, 1))
            if elapsed[0] > budget_s:
                entry.error = f"not sampled: its first step took {elapsed[0]:.3g} s, over the {budget_s:g} s budget"
                return
    except Exception as e:  # a target that cannot step is listed with why, not timed
        entry.error = f"step raised {one_line(e)}"
        return
    entry.per_call = max(min(elapsed[-2:]), 1e-7)
    entry.number = number or max(1, min(1000, math.ceil(min_sample_s / entry.per_call)))
    entry.wanted = max(1, min(repeats, int(budget_s / (entry.per_call * entry.number))))


def sample_round_robin(entries: list[Entry]) -> None:
    """Take the entries' samples round-robin; one that raises keeps its samples and the error."""
    rounds = max((e.wanted for e in entries if e.error is None), default=0)
    for r in range(rounds):
        for entry in entries:
            if entry.error is None and r < entry.wanted:
                try:
                    entry.samples.append(_block(entry, entry.number))
                except Exception as e:
                    entry.error = f"step raised {one_line(e)} while timed"


def measure(entries: list[Entry], numel: int, dtype: torch.dtype, device: str, *, warmup: int, steps: int | None,
            repeats: int, max_seconds: float, say: Callable[[str], None]) -> dict[str, tuple[Entry, int]]:
    """One (device, set, dtype): warm up `entries` and the in-place kernels over `numel` elements,
    sample them round-robin, then take the extra peak memory of each entry sampled within
    `max_seconds`. Returns the in-place kernels' entries, each with its bytes per element."""
    streams = stream_entries(numel, dtype, device)
    timed = entries + [e for e, _ in streams.values()]
    for k, entry in enumerate(timed):
        if entry.error is None:
            say(f"warming up {entry.name} ({k + 1}/{len(timed)})")
            warm_up(entry, warmup, number=steps, min_sample_s=MIN_SAMPLE_S, budget_s=max_seconds, repeats=repeats)
    rounds = max((e.wanted for e in timed if e.error is None), default=0)
    say(f"sampling {rounds} rounds round-robin over {sum(e.error is None for e in timed)} entries")
    sample_round_robin(timed)
    for entry in entries:
        if entry.error is None and entry.per_call <= max_seconds:
            try:
                entry.extra_peak = extra_peak_bytes(entry.call, device)
            except Exception as e:
                entry.error = f"step raised {one_line(e)} while its memory was measured"
    return streams


def one_line(e: BaseException) -> str:
    """'TypeError: the first line of its message'."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def extra_peak_bytes(call: Callable[[], object], device: str) -> int:
    """Bytes allocated at the peak of one call above what was allocated before it (see above)."""
    if device == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        call()
        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - before)
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # keeps the profiler's start and stop lines off stderr
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak
