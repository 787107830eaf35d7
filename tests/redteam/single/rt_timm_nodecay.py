"""AdamW factory that, like timm/HF trainers, silently exempts biases and norm weights (ndim <= 1) from weight decay.

Bug: when given a flat parameter list with weight_decay > 0, it regroups the parameters into a
no-decay group (every tensor with ndim <= 1, including 0-d ones) and a decay group, so 1-d and
0-d parameters are never decayed, the group layout (and state_dict indices) differ from torch's.
Modelled on: timm `param_groups_weight_decay` / `create_optimizer_v2` (no weight decay for
bias and norm params, `p.ndim <= 1`), and HF Trainer `get_decay_parameter_names`.
Spec: adamw.
"""
import torch


def create_adamw(params, weight_decay=0.01, **kwargs):
    """AdamW with the usual no-decay rule for biases and norm layers."""
    params = list(params)
    if weight_decay and params and not isinstance(params[0], dict):
        no_decay = [p for p in params if p.ndim <= 1]
        decay = [p for p in params if p.ndim > 1]
        params = [g for g in ({"params": no_decay, "weight_decay": 0.0},
                              {"params": decay, "weight_decay": weight_decay}) if g["params"]]
    return torch.optim.AdamW(params, weight_decay=weight_decay, **kwargs)


TARGET = create_adamw
