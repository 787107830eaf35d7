"""Correct: AdamW subclass (*args, **kwargs) that counts steps and records the gradient norm without touching anything.

Bug: none (reads p.grad after the step, forwards the closure once, returns the loss).
Modelled on: logging/telemetry subclasses of torch.optim.AdamW in training frameworks.
Spec: adamw.
"""
import torch


class LoggedAdamW(torch.optim.AdamW):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_steps = 0
        self.last_grad_norm = None

    def step(self, closure=None):
        loss = super().step(closure)
        self.num_steps += 1
        with torch.no_grad():
            norms = [torch.linalg.vector_norm(p.grad.detach()).double()
                     for g in self.param_groups for p in g["params"] if p.grad is not None]
            self.last_grad_norm = float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
        return loss


TARGET = LoggedAdamW
