"""Targets that misbehave, for the certify tests. Copied beside the test's working directory."""

import ctypes
import os
import signal
import time
from pathlib import Path

import torch


def _once(name: str) -> bool:
    """True the first time in this directory (a marker file remembers), so one check suffers."""
    marker = Path(os.environ.get("HOSTILE_MARKERS", ".")) / f".{name}"
    if marker.exists():
        return False
    marker.touch()
    return True


class RaisesInStep(torch.optim.Adam):
    """step() raises."""

    def step(self, closure=None):
        raise RuntimeError("boom from inside step()")


class ReturnsNothing:
    """A factory that returns None instead of an optimizer."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        pass

    def __new__(cls, *args, **kwargs):
        return None


class NoStep:
    """Has Adam's constructor but no step()."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        self.param_groups = [dict(params=list(params), lr=lr, betas=betas, eps=eps)]


class NaNEverywhere(torch.optim.Adam):
    """Writes NaN into every parameter."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.fill_(float("nan"))
        return loss


class Hangs(torch.optim.Adam):
    """Never returns from step() (interruptibly) when AMSGrad is on."""

    def step(self, closure=None):
        if any(group["amsgrad"] for group in self.param_groups):
            time.sleep(10**6)
        return super().step(closure)


class HangsInNativeCode(torch.optim.Adam):
    """Hangs once with AMSGrad, where no signal reaches Python (SIGALRM blocked, stuck in libc)."""

    def step(self, closure=None):
        if any(group["amsgrad"] for group in self.param_groups) and _once("native-hang"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            ctypes.CDLL(None).sleep(10**6)
        return super().step(closure)


class ChangesGlobalState(torch.optim.Adam):
    """Adam that switches torch's default dtype and draws from the global RNG."""

    def step(self, closure=None):
        torch.set_default_dtype(torch.float64)
        torch.rand(1)
        return super().step(closure)


class CrashesTheWorker(torch.optim.Adam):
    """Kills its process once, with AMSGrad."""

    def step(self, closure=None):
        if any(group["amsgrad"] for group in self.param_groups) and _once("crash"):
            os._exit(3)
        return super().step(closure)
