"""Drive an optimizer through a serialised Case: the runner's core.

It needs torch and the standard library only, so a reproducer script carries this
file verbatim and runs without the suite installed. ``case`` is a Case's JSON
metadata; ``arrays`` maps its array names to array-likes (numpy arrays or nested
lists), complex values as a trailing dimension of 2 (real, imaginary).

The optimizer is built as a user builds it: a keyword at torch's default is not passed
(``factory(params)`` at torch's defaults), unless the target's own default differs
(``explicit``), and a param-group dict names only what differs from the constructor's.
What the run finds beside the numbers goes into ``result``: observations (a parameter
replaced, a gradient written, a closure not called once with grad enabled), each state
entry's kind (tensor, dtype, shape, device, layout), and, if the run stopped, its error
and whether that was the target refusing cleanly: an exception from the target's own
constructor or first ``step``, leaving the parameters and gradients as they were. An
exception in the suite's own next move (a gradient assigned to a parameter whose dtype
the target changed, a closure called once too often) is never a refusal.
"""

from __future__ import annotations

import contextlib
import io
import os

import torch

DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
KEYWORDS = ("weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")
STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
#: torch.optim.Adam's and AdamW's defaults, by spec (`vocabulary.TORCH_DEFAULTS`): a keyword
#: at its default is not passed (AdamW takes no decoupled_weight_decay: never passed for it).
DEFAULTS = {
    "adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                 decoupled_weight_decay=False),
    "adamw": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False),
}


def make_tensor(values, dtype: str, layout: str, device) -> torch.Tensor:
    """A tensor of `dtype` holding `values`, with the given memory layout."""
    src = torch.as_tensor(values, dtype=torch.float64)
    if dtype.startswith("complex"):
        src = torch.complex(src[..., 0], src[..., 1])
    shape, kw = tuple(src.shape), dict(dtype=DTYPES[dtype], device=device)
    if layout == "transposed":  # dense, dimensions in reverse memory order
        t = torch.empty(shape[::-1], **kw).permute(*reversed(range(len(shape))))
    elif layout == "sliced":  # every other element of a buffer twice as wide
        t = torch.empty((*shape[:-1], 2 * shape[-1]), **kw)[..., ::2]
    elif layout == "channels_last":
        t = torch.empty(shape, **kw).contiguous(memory_format=torch.channels_last)
    else:
        t = torch.empty(shape, **kw)
    return t.copy_(src)


def snapshot(t: torch.Tensor) -> torch.Tensor:
    """A float64 / complex128 CPU copy of `t`; of the value it stands for, where `t` is a tensor
    subclass that stores another form (torchao's quantized states: through ``dequantize()``)."""
    if type(t) is not torch.Tensor and callable(getattr(t, "dequantize", None)):
        t = t.dequantize()
    wide = torch.complex128 if t.is_complex() else torch.float64
    return t.detach().to("cpu", wide, copy=True)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN equal to NaN."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def passed(kwargs: dict, against: dict, explicit=()) -> dict:
    """The keywords of `kwargs` a user passes: those that differ from `against` (torch's
    defaults, or a constructor's), and those in `explicit`. A Tensor is always passed."""
    differs = lambda k, v: torch.is_tensor(v) or k not in against or v != against[k]
    return {k: v for k, v in kwargs.items() if k in explicit or differs(k, v)}


def construct(factory, params, spec: str, explicit=(), **kwargs):
    """``factory(params, **kwargs)`` as a user calls it: a keyword at torch's default for
    `spec` is left out unless the target's own default differs (`explicit`)."""
    return factory(params, **passed(kwargs, DEFAULTS[spec], explicit))


def kind(value) -> dict:
    """What a state entry is: a tensor's dtype, shape, device and layout, or a Python type."""
    if not torch.is_tensor(value):
        return dict(type=type(value).__name__)
    return dict(type="Tensor", dtype=str(value.dtype).removeprefix("torch."), shape=list(value.shape),
                device=value.device.type, layout=str(value.layout).removeprefix("torch."))


class Run:
    """One pass of an optimizer through a case. `result` is filled as it goes."""

    def __init__(self, factory, case: dict, arrays, claims, device="cpu", explicit=()):
        self.factory, self.case, self.arrays, self.device = factory, case, arrays, device
        self.keywords = set(claims) & set(KEYWORDS)
        self.explicit = set(explicit)
        self.as_dicts = "param_groups" in claims  # else a case has one group
        self.params = [
            self.place(make_tensor(arrays[f"init/{i}"], p["dtype"], p["layout"], device)).requires_grad_(True)
            for i, p in enumerate(case["params"])
        ]
        self.grads = {i: iter(arrays.get(f"grads/{i}", ())) for i in range(len(self.params))}
        self.joined = []  # case group indices, in the order the optimizer holds them
        self.doing, self.clean, self.closure_error, self.stepped = "construction", False, None, 0
        self.result = dict(steps=[], params=[[] for _ in self.params], state=[[] for _ in self.params],
                           kinds=[{} for _ in self.params], losses=[], observations=[], error=None, refused=False)

    # -- what this process holds (a sharded run holds less: conformance.run.distributed) --

    def place(self, t: torch.Tensor) -> torch.Tensor:
        """The tensor this process is given for a whole tensor of the Case."""
        return t

    def shared(self, t: torch.Tensor) -> torch.Tensor:
        """The tensor this process is given for data every process holds whole (the objective's)."""
        return t

    def local(self, t: torch.Tensor) -> torch.Tensor:
        """The part of `t` in this process's memory."""
        return t

    def state_of(self, opt) -> dict:
        """The optimizer's state by parameter, as far as this process holds it."""
        return opt.state if hasattr(opt, "state") else {}

    def saved(self, opt) -> dict:
        return opt.state_dict()

    def restore(self, opt, state: dict) -> None:
        opt.load_state_dict(state)

    # -- calling the target ----------------------------------------------------------

    def attempt(self, what: str, fn, *args, **kwargs):
        """Call the target (`what` it is doing). If it raises, note whether it refused cleanly:
        at construction or its first step (later, it took what it now refuses), not through
        the suite's own closure, and with the parameters and gradients as they were."""
        self.doing, self.clean, self.closure_error = what, False, None
        before = self.held() if self.stepped == 0 else None
        try:
            out = fn(*args, **kwargs)
        except Exception:
            self.clean = before is not None and self.closure_error is None and self.unchanged(before)
            raise
        self.doing = "the suite's next move"
        return out

    def held(self) -> list:
        """The parameters and gradients as they are now: memory, dtype, shape, strides, values."""
        copy = lambda t: (self.layout(t), self.local(t).detach().clone())
        return [(copy(p), None if p.grad is None else copy(p.grad)) for p in self.params]

    def unchanged(self, before: list) -> bool:
        same = lambda a, b: a is b is None or None not in (a, b) and a[0] == b[0] and same_bits(a[1], b[1])
        return all(same(p0, p1) and same(g0, g1) for (p0, g0), (p1, g1) in zip(before, self.held()))

    # -- building ------------------------------------------------------------------

    def hyper(self, g: dict) -> dict:
        """The group's hyperparameters as constructor keywords the target claims."""
        lr = torch.tensor(g["lr"], dtype=torch.float32, device=self.device) if g["tensor_lr"] else g["lr"]
        kw = dict(lr=lr, betas=tuple(g["betas"]), eps=g["eps"])
        kw.update({k: g[k] for k in KEYWORDS if k in self.keywords and k in DEFAULTS[self.case["spec"]]})
        return kw

    def group(self, j: int, first: dict) -> dict:
        """Group j as a param-group dict: what differs from the constructor's values (`first`)."""
        g = self.case["groups"][j]
        return dict(params=[self.params[i] for i in g["params"]], **passed(self.hyper(g), first))

    def build(self, groups: list[int]):
        """A fresh optimizer over `groups`, the first group's values as its defaults, passed as
        a user passes them (see the module docstring)."""
        first = self.hyper(self.case["groups"][groups[0]])
        if self.as_dicts and len(groups) > 1:  # one group is a plain list of tensors, as users mostly give it
            given = [self.group(j, first) for j in groups]
        else:
            given = [self.params[i] for j in groups for i in self.case["groups"][j]["params"]]
        return self.attempt("construction", construct, self.factory, given, self.case["spec"], self.explicit, **first)

    def reload(self, opt, through_file: bool):
        """Save the state_dict and load it into a fresh optimizer over the same groups."""
        state = self.attempt("state_dict()", self.saved, opt)
        if through_file:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            buffer.seek(0)
            state = torch.load(buffer, weights_only=True)
        fresh = self.build(self.joined)
        self.attempt("load_state_dict()", self.restore, fresh, state)
        return fresh

    def resume(self, opt) -> None:
        """Load the Case's starting state (``resume``) as torch's state_dict holds it: each
        parameter stepped ``step`` times, with the given moments."""
        start = self.case["resume"]
        state = self.attempt("state_dict()", self.saved, opt)
        ids = [k for g in state["param_groups"] for k in g["params"]]
        order = [i for j in self.joined for i in self.case["groups"][j]["params"]]
        entries = {}
        for k, i in zip(ids, order):
            spec = self.case["params"][i]
            entries[k] = {"step": torch.tensor(float(start["step"]))}
            for key in start["keys"][i]:
                entries[k][key] = make_tensor(self.arrays[f"resume/{key}/{i}"], spec["dtype"], "contiguous",
                                              self.device)
        self.attempt("load_state_dict()", self.restore, opt, dict(state, state=entries))

    # -- stepping ------------------------------------------------------------------

    def set_hyper(self, opt, j: int, key: str, value) -> None:
        group = opt.param_groups[self.joined.index(j)]
        if key == "lr" and self.case["groups"][j]["tensor_lr"]:  # changed in place, as for a captured CUDA graph
            if not torch.is_tensor(group["lr"]):
                raise TypeError(f"param_groups[{self.joined.index(j)}]['lr'] is a {type(group['lr']).__name__}, "
                                "not the Tensor it was given as: an lr changed in place does not reach it")
            group["lr"].fill_(value)
        elif key == "lr" and torch.is_tensor(group["lr"]):  # the target made it a Tensor: as torch's LR schedulers do
            group["lr"].fill_(value)
        else:
            group[key] = tuple(value) if key == "betas" else value

    def step_grads(self, step: dict) -> list:
        """This step's gradient values of each parameter (None: no gradient)."""
        return [next(self.grads[i]) if present else None for i, present in enumerate(step["grads"])]

    def assign_grads(self, values: list, step: dict) -> None:
        """Give each parameter its gradient, laid out as the Case says (none: None, unless
        zero_grad just ran, which leaves what it left)."""
        self.doing = "assigning the gradients"
        for p, spec, v in zip(self.params, self.case["params"], values):
            if v is not None:
                p.grad = self.place(make_tensor(v, spec["dtype"], spec["grad_layout"], self.device))
            elif "zero_grad" not in step["events"]:
                p.grad = None

    def loss_and_grads(self, autograd: bool) -> torch.Tensor:
        """Closed loop: zero the grads, evaluate the objective, backpropagate. Through a
        closure (`autograd` False) in whatever grad mode the target calls it, as a user's
        closure is; otherwise the suite's own gradient, with grad enabled."""
        self.doing = "evaluating the objective"
        w1, b1, w2, b2 = self.params
        x, y = (self.shared(make_tensor(self.arrays[f"objective/{k}"], self.case["params"][0]["dtype"], "contiguous",
                                        self.device)) for k in ("inputs", "targets"))
        for p in self.params:
            p.grad = None
        with torch.enable_grad() if autograd else contextlib.nullcontext():
            loss = ((torch.relu(x @ w1.T + b1) @ w2.T + b2 - y) ** 2).sum()
            loss.backward()
        return loss.detach()

    def observe(self, t: int, layouts: list, given: list) -> None:
        """Note a parameter whose memory changed and a gradient the step wrote into."""
        note = lambda i, kind, detail: self.result["observations"].append((t, i, kind, detail))
        for i, (p, before, grad) in enumerate(zip(self.params, layouts, given)):
            now = self.layout(p)
            if now != before:
                note(i, "param-replaced", "the parameter's storage, dtype, shape or strides changed: "
                                          f"{before[1:]} -> {now[1:]}")
            if grad is not None and p.grad is None:
                note(i, "grad-removed", "step() set the gradient to None")
            elif grad is not None and not same_bits(self.local(p.grad), self.local(grad)):
                note(i, "grad-modified", "step() modified the gradient")

    def layout(self, p: torch.Tensor) -> tuple:
        """Where and how `p` is held: its memory, dtype, shape and strides."""
        held = self.local(p)
        return held.data_ptr(), held.dtype, tuple(held.shape), held.stride()

    def record(self, t: int, opt) -> None:
        self.result["steps"].append(t)
        for i, p in enumerate(self.params):
            self.result["params"][i].append(snapshot(p))
            state = self.state_of(opt).get(p, {})
            entry = {k: snapshot(v) for k, v in state.items()
                     if k in STATE_KEYS and torch.is_tensor(v) and tuple(v.shape) == tuple(p.shape)}
            if "step" in state:
                entry["step"] = torch.tensor(float(state["step"]), dtype=torch.float64)
            self.result["state"][i].append(entry)
            if state:
                self.result["kinds"][i] = {k: kind(v) for k, v in state.items()}

    def go(self) -> dict:
        case, opt, t = self.case, None, 0
        record = set(case["record"] or range(1, len(case["steps"]) + 1))
        try:
            initial = [j for j, g in enumerate(case["groups"]) if g["added_at"] == 1]
            opt = self.build(initial)
            self.joined = list(initial)
            if case.get("resume"):
                self.resume(opt)
            for t, step in enumerate(case["steps"], start=1):
                for j, g in enumerate(case["groups"]):
                    if g["added_at"] == t and t > 1:
                        self.attempt("add_param_group()", opt.add_param_group, self.group(j, self.first()))
                        self.joined.append(j)
                for j, key, value in step["set"]:
                    self.doing = "setting a hyperparameter in param_groups"
                    self.set_hyper(opt, j, key, value)
                for event in step["events"]:
                    if event == "zero_grad":
                        self.attempt("zero_grad()", opt.zero_grad)
                    else:
                        opt = self.reload(opt, through_file=event == "reload_file")
                self.step(t, step, opt)
                if t in record:
                    self.doing = "reading the state"
                    self.record(t, opt)
        except Exception as e:
            where = f"step {t}" if t else "construction"
            doing = "" if self.doing in ("construction", f"step {t}") else f" ({self.doing})"
            replaced = [o for o in self.result["observations"] if o[2] == "param-replaced" and not self.clean]
            cause = f", after step {replaced[0][0]} changed param {replaced[0][1]}" if replaced else ""
            self.result["error"] = f"{where}{doing}{cause}: {type(e).__name__}: {e}"
            self.result["refused"] = self.clean
        return self.result

    def first(self) -> dict:
        """The constructor's values: the first group's hyperparameters, as given at construction."""
        return self.hyper(self.case["groups"][self.joined[0]])

    def step(self, t: int, step: dict, opt) -> None:
        """One optimizer step, through step(closure) if the case says so. A closure computes
        its loss as a user's does (with autograd, for a closed loop) in whatever grad mode the
        target calls it in, and the same gradients however often it is called."""
        calls, given, losses = [], [], []
        grads = None if self.case["objective"] is not None else self.step_grads(step)

        def closure():
            calls.append(torch.is_grad_enabled())
            doing = self.doing
            try:
                if grads is None:
                    loss = self.loss_and_grads(autograd=not step["closure"])
                else:
                    self.assign_grads(grads, step)
                    loss = torch.tensor(float(t))
            except Exception as e:
                self.closure_error = f"{type(e).__name__}: {e}"
                if step["closure"]:
                    self.doing = f"in its closure, {self.doing}"
                raise
            self.doing = doing
            given[:] = [None if p.grad is None else p.grad.detach().clone() for p in self.params]
            losses.append(loss)
            return loss

        layouts = [self.layout(p) for p in self.params]
        if step["closure"]:
            try:
                returned = self.attempt(f"step {t}", opt.step, closure)
            finally:
                self.closure_notes(t, calls)
            if len(losses) == 1 and returned is not losses[0] and not (
                    torch.is_tensor(returned) and same_bits(returned, losses[0])):
                self.result["observations"].append(
                    (t, None, "closure", f"step(closure) returned {returned!r}, not the closure's loss"))
        else:
            closure()
            self.attempt(f"step {t}", opt.step)
        self.stepped = t
        if self.case["objective"] is not None and losses:
            self.result["losses"].append(float(losses[0]))
        self.observe(t, layouts, given or [None] * len(self.params))

    def closure_notes(self, t: int, calls: list) -> None:
        """Note a closure called other than once, or with grad disabled, as torch never does."""
        note = lambda detail: self.result["observations"].append((t, None, "closure", detail))
        if len(calls) != 1:
            note(f"step(closure) called the closure {len(calls)} times, not once")
        if not all(calls):
            note("step(closure) called the closure with grad disabled (as under torch.no_grad()), where torch "
                 "enables it: a closure that calls loss.backward() fails there")


def drive(factory, case: dict, arrays, claims, device="cpu", explicit=()) -> dict:
    """Run `factory` through `case` and return what happened (see `Run.result`), torch's global
    state guarded (a change is an observation). `claims` are the target's: its keyword features
    are passed on, and ``param_groups`` passes several groups as param-group dicts (one group is
    always a plain list of tensors). `explicit` keywords are passed even at torch's default (the
    target's own default differs)."""
    notes = []
    with guarded_global_state(notes, step=len(case["steps"])):
        result = Run(factory, case, arrays, claims, device, explicit).go()
    result["observations"] += notes
    return result


#: What a step must leave as it found it: its name in a note, how to read it and how to restore it.
GLOBAL_STATE = (("the default dtype", torch.get_default_dtype, torch.set_default_dtype),
                ("grad mode", torch.is_grad_enabled, torch.set_grad_enabled),
                ("torch's number of threads", torch.get_num_threads, torch.set_num_threads),
                ("the working directory", os.getcwd, os.chdir))


@contextlib.contextmanager
def guarded_global_state(notes: list, step: int):
    """Restore `GLOBAL_STATE` and torch's RNG after the block; note any change in `notes` as an
    observation, (step, None, "global-state", what changed)."""
    before, rng = [read() for _, read, _ in GLOBAL_STATE], torch.random.get_rng_state()
    try:
        yield
    finally:
        changed = []
        for (name, read, restore), was in zip(GLOBAL_STATE, before):
            if read() != was:
                changed.append(f"{name} ({was} -> {read()})")
                restore(was)
        if not torch.equal(torch.random.get_rng_state(), rng):
            changed.append("the global RNG state (it drew random numbers)")
            torch.random.set_rng_state(rng)
        if changed:
            notes.append((step, None, "global-state", "changed " + ", ".join(changed) + "; restored"))
