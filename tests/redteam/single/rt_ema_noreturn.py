"""AdamW subclass that keeps an EMA of the weights after each step but forgets to return the closure's loss.

Bug: step(closure) evaluates the closure and updates the parameters correctly, but returns None
instead of the loss (LBFGS-style loops and Lightning read the returned loss).
Modelled on: EMA-in-the-optimizer wrappers (timm ModelEmaV2 ported into an optimizer, torchao/
HeavyBall "ema" options); the torch.optim.Optimizer.step contract "returns the loss".
Spec: adamw.
"""
import torch


class EMAAdamW(torch.optim.AdamW):
    def __init__(self, *args, ema_decay=0.999, **kwargs):
        super().__init__(*args, **kwargs)
        self.ema_decay = ema_decay
        self.ema = {}

    @torch.no_grad()
    def _update_ema(self):
        for group in self.param_groups:
            for p in group["params"]:
                e = self.ema.get(p)
                if e is None:
                    self.ema[p] = p.detach().clone()
                else:
                    e.lerp_(p.detach(), 1 - self.ema_decay)

    def step(self, closure=None):
        super().step(closure)
        self._update_ema()


TARGET = EMAAdamW
