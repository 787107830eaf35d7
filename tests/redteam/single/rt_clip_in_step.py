"""AdamW subclass that clips each parameter's gradient to norm 1.0 inside step(), BertAdam-style.

Bug: step() applies per-parameter gradient clipping (max_grad_norm=1.0 by default) in place on
p.grad before the AdamW update, so any gradient with norm > 1 yields a different update and
p.grad is modified.
Modelled on: pytorch-pretrained-bert / HF `BertAdam(max_grad_norm=1.0)` which called
`clip_grad_norm_(p, group['max_grad_norm'])` per parameter inside the optimizer; apex FusedLAMB
and DeepSpeed FusedLamb also carry a max_grad_norm inside the optimizer.
Spec: adamw.
"""
import torch


class ClippedAdamW(torch.optim.AdamW):
    def __init__(self, *args, max_grad_norm=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_grad_norm = max_grad_norm

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.max_grad_norm and self.max_grad_norm > 0:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        torch.nn.utils.clip_grad_norm_(p, self.max_grad_norm)
        super().step()
        return loss


TARGET = ClippedAdamW
