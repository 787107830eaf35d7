"""Trainer-config Adam factory that whitelists lr/betas/eps/weight_decay and silently drops every other keyword.

Bug: amsgrad=True, maximize=True and decoupled_weight_decay=True are accepted (through
**kwargs, "for drop-in compatibility") and ignored, so the optimizer is plain Adam.
Modelled on: the "accept **kwargs, forward a whitelist" factories of trainer configs; the same
silent-accept failure as kozistr/pytorch_optimizer#517 (SignSGD accepts weight_decay but never
applies it) and chaoshangcs/GTS#16 ("AMSGrad is not used anywhere").
Spec: adam.
"""
import torch

_FORWARDED = ("lr", "betas", "eps", "weight_decay")


def build_adam(params, **kwargs):
    """Adam from a trainer config section; unknown keys are tolerated for drop-in compatibility."""
    cfg = {k: kwargs[k] for k in _FORWARDED if k in kwargs}
    return torch.optim.Adam(params, **cfg)


TARGET = build_adam
