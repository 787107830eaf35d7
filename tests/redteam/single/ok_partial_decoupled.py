"""Correct: AdamW obtained as functools.partial(torch.optim.Adam, decoupled_weight_decay=True, weight_decay=1e-2).

Bug: none (torch.optim.Adam with decoupled_weight_decay=True is documented to equal AdamW; the
weight_decay=1e-2 binding restores AdamW's default, which Adam's default of 0 would otherwise
change for callers that omit weight_decay).
Modelled on: torch.optim.Adam docs (decoupled_weight_decay, "equivalent to AdamW"), the
suite's README example of a partial target.
Spec: adamw.
"""
import functools

import torch

TARGET = functools.partial(torch.optim.Adam, decoupled_weight_decay=True, weight_decay=1e-2)
