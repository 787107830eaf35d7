"""Drive an optimizer through a serialised Case: the runner's core.

It needs torch and the standard library only, so a reproducer script carries this
file verbatim and runs without the suite installed. ``case`` is a Case's JSON
metadata; ``arrays`` maps its array names to array-likes (numpy arrays or nested
lists), complex values as a trailing dimension of 2 (real, imaginary).
"""

from __future__ import annotations

import io

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
    """A float64 / complex128 CPU copy of `t`."""
    wide = torch.complex128 if t.is_complex() else torch.float64
    return t.detach().to("cpu", wide, copy=True)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values, NaN equal to NaN."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


class Run:
    """One pass of an optimizer through a case. `result` is filled as it goes."""

    def __init__(self, factory, case: dict, arrays, claims, device="cpu"):
        self.factory, self.case, self.arrays, self.device = factory, case, arrays, device
        self.keywords = set(claims) & set(KEYWORDS)
        self.as_dicts = "param_groups" in claims  # else a case has one group: params as a plain list
        self.params = [
            self.place(make_tensor(arrays[f"init/{i}"], p["dtype"], p["layout"], device)).requires_grad_(True)
            for i, p in enumerate(case["params"])
        ]
        self.grads = {i: iter(arrays.get(f"grads/{i}", ())) for i in range(len(self.params))}
        self.joined = []  # case group indices, in the order the optimizer holds them
        self.result = dict(steps=[], params=[[] for _ in self.params], state=[[] for _ in self.params],
                           losses=[], observations=[], error=None)

    # -- what this process holds (a sharded run holds less: conformance.run.distributed) --

    def place(self, t: torch.Tensor) -> torch.Tensor:
        """The tensor this process is given for a whole tensor of the Case."""
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

    # -- building ------------------------------------------------------------------

    def hyper(self, g: dict) -> dict:
        """The group's hyperparameters as constructor keywords the target claims."""
        lr = torch.tensor(g["lr"], dtype=torch.float32, device=self.device) if g["tensor_lr"] else g["lr"]
        kw = dict(lr=lr, betas=tuple(g["betas"]), eps=g["eps"])
        kw.update({k: g[k] for k in KEYWORDS if k in self.keywords})
        return kw

    def group(self, j: int) -> dict:
        g = self.case["groups"][j]
        return dict(params=[self.params[i] for i in g["params"]], **self.hyper(g))

    def build(self, groups: list[int]):
        """A fresh optimizer over `groups`, the first group's values as its defaults."""
        first = self.hyper(self.case["groups"][groups[0]])
        if self.as_dicts:
            return self.factory([self.group(j) for j in groups], **first)
        return self.factory([self.params[i] for j in groups for i in self.case["groups"][j]["params"]], **first)

    def reload(self, opt, through_file: bool):
        """Save the state_dict and load it into a fresh optimizer over the same groups."""
        state = self.saved(opt)
        if through_file:
            buffer = io.BytesIO()
            torch.save(state, buffer)
            buffer.seek(0)
            state = torch.load(buffer, weights_only=True)
        fresh = self.build(self.joined)
        self.restore(fresh, state)
        return fresh

    # -- stepping ------------------------------------------------------------------

    def set_hyper(self, opt, j: int, key: str, value) -> None:
        group = opt.param_groups[self.joined.index(j)]
        if key == "lr" and torch.is_tensor(group["lr"]):
            group["lr"].fill_(value)
        else:
            group[key] = tuple(value) if key == "betas" else value

    def assign_grads(self, step: dict) -> None:
        for i, (p, spec) in enumerate(zip(self.params, self.case["params"])):
            if step["grads"][i]:
                p.grad = self.place(make_tensor(next(self.grads[i]), spec["dtype"], spec["grad_layout"], self.device))
            elif "zero_grad" not in step["events"]:
                p.grad = None

    def loss_and_grads(self) -> torch.Tensor:
        """Closed loop: zero the grads, evaluate the objective, backpropagate."""
        w1, b1, w2, b2 = self.params
        x = make_tensor(self.arrays["objective/inputs"], self.case["params"][0]["dtype"], "contiguous", self.device)
        y = make_tensor(self.arrays["objective/targets"], self.case["params"][0]["dtype"], "contiguous", self.device)
        for p in self.params:
            p.grad = None
        with torch.enable_grad():
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

    def go(self) -> dict:
        case, opt, t = self.case, None, 0
        record = set(case["record"] or range(1, len(case["steps"]) + 1))
        try:
            initial = [j for j, g in enumerate(case["groups"]) if g["added_at"] == 1]
            opt = self.build(initial)
            self.joined = list(initial)
            for t, step in enumerate(case["steps"], start=1):
                for j, g in enumerate(case["groups"]):
                    if g["added_at"] == t and t > 1:
                        opt.add_param_group(self.group(j))
                        self.joined.append(j)
                for j, key, value in step["set"]:
                    self.set_hyper(opt, j, key, value)
                for event in step["events"]:
                    if event == "zero_grad":
                        opt.zero_grad()
                    else:
                        opt = self.reload(opt, through_file=event == "reload_file")
                self.step(t, step, opt)
                if t in record:
                    self.record(t, opt)
        except Exception as e:
            where = f"step {t}" if t else "construction"
            self.result["error"] = f"{where}: {type(e).__name__}: {e}"
        return self.result

    def step(self, t: int, step: dict, opt) -> None:
        """One optimizer step, through step(closure) if the case says so."""
        calls, given = [], []

        def closure():
            if self.case["objective"] is not None:
                loss = self.loss_and_grads()
            else:
                self.assign_grads(step)
                loss = torch.tensor(float(t))
            given[:] = [None if p.grad is None else p.grad.detach().clone() for p in self.params]
            calls.append(loss)
            return loss

        layouts = [self.layout(p) for p in self.params]
        if step["closure"]:
            returned = opt.step(closure)
            note = lambda detail: self.result["observations"].append((t, None, "closure", detail))
            if len(calls) != 1:
                note(f"step(closure) called the closure {len(calls)} times, not once")
            elif returned is not calls[0] and not (torch.is_tensor(returned) and same_bits(returned, calls[0])):
                note(f"step(closure) returned {returned!r}, not the closure's loss")
        else:
            closure()
            opt.step()
        if self.case["objective"] is not None and calls:
            self.result["losses"].append(float(calls[0]))
        self.observe(t, layouts, given or [None] * len(self.params))


def drive(factory, case: dict, arrays, claims, device="cpu") -> dict:
    """Run `factory` through `case` and return what happened (see `Run.result`). `claims` are
    the target's: its keyword features are passed on, and ``param_groups`` passes params
    as param-group dicts (else as a plain list)."""
    return Run(factory, case, arrays, claims, device).go()
