"""Adam subclass that evaluates the closure itself (to log the gradient norm) and then passes it on to super().step().

Bug: step(closure) runs the closure twice: once here and once inside torch.optim.Adam.step, so
side effects happen twice (gradients accumulate twice when the closure does not zero them,
dropout/RNG draws twice, data iterators advance twice).
Modelled on: the pattern of davda54/sam#90 and Lightning-AI/pytorch-lightning#18254 (custom
step() wrappers around closures); many "log grad norm in the optimizer" subclasses.
Spec: adam.
"""
import torch


class GradNormAdam(torch.optim.Adam):
    def __init__(self, params, **kwargs):
        super().__init__(params, **kwargs)
        self.last_grad_norm = None

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if grads:
            self.last_grad_norm = torch.linalg.vector_norm(
                torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        super().step(closure)
        return loss


TARGET = GradNormAdam
