"""DeepSpeed/apex-FusedAdam-compatible "Adam" whose adam_w_mode defaults to True, so weight decay is decoupled.

Bug: called as Adam(params, weight_decay=wd) it applies AdamW's decoupled decay
(p *= 1 - lr*wd) instead of Adam's L2 term added to the gradient.
Modelled on: DeepSpeed FusedAdam / DeepSpeedCPUAdam `adam_w_mode=True` default
(deepspeedai/DeepSpeed#668 "Adam vs AdamW", #844 "set adamw_mode default true", #5214);
apex.optimizers.FusedAdam(adam_w_mode=True).
Spec: adam.
"""
import torch


def FusedAdam(params, lr=1e-3, bias_correction=True, betas=(0.9, 0.999), eps=1e-8,
              adam_w_mode=True, weight_decay=0.0, amsgrad=False, **kwargs):
    """Drop-in for deepspeed.ops.adam.FusedAdam on machines without the CUDA extension."""
    kwargs.pop("decoupled_weight_decay", None)
    cls = torch.optim.AdamW if adam_w_mode else torch.optim.Adam
    return cls(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
               amsgrad=amsgrad, **kwargs)


TARGET = FusedAdam
