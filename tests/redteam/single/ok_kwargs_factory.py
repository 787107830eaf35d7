"""Correct: open-signature factory forwarding *args/**kwargs to torch.optim.Adam, pinning foreach=False.

Bug: none (foreach=False selects torch's single-tensor path, which is what CPU uses anyway).
Modelled on: trainer "build_optimizer(params, **cfg)" factories.
Spec: adam.
"""
import torch


def make_optimizer(params, *args, **kwargs):
    """Adam with the deterministic per-tensor path; everything else is forwarded."""
    kwargs.setdefault("foreach", False)
    return torch.optim.Adam(params, *args, **kwargs)


TARGET = make_optimizer
