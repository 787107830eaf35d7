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
    """Hangs once where no signal reaches Python (SIGALRM blocked, stuck in libc)."""

    def step(self, closure=None):
        if _once("native-hang"):
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
    """Kills its process once."""

    def step(self, closure=None):
        if _once("crash"):
            os._exit(3)
        return super().step(closure)
