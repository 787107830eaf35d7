"""torch's fused CPU Adam given a gradient strided unlike its parameter: a finding about torch.

A contiguous (3, 5) parameter gets a gradient that is a strided view (every other column of
a (3, 10) tensor), as `p.grad = g[:, ::2]` or a hook can give it. torch's for-loop Adam
reads the gradient by its own strides; the fused CPU kernel, where it differs, reads it with
the parameter's. Exit 1 where the two disagree after one step (the bug is there), 0 where
they agree. Standalone: only torch.

    python docs/releases/fused_strided_grad.py
"""

import sys

import torch

torch.manual_seed(0)
start = torch.randn(3, 5)
wide = torch.randn(3, 10)
grad = wide[:, ::2]  # strides (10, 2), where the parameter's are (5, 1)

results = {}
for name, flags in {"for-loop": dict(foreach=False), "fused": dict(fused=True)}.items():
    p = start.clone().requires_grad_()
    opt = torch.optim.Adam([p], lr=1e-3, **flags)
    p.grad = grad
    opt.step()
    results[name] = p.detach()

gap = (results["fused"] - results["for-loop"]).abs().max().item()
print(f"torch {torch.__version__}: fused against for-loop after one step, largest difference {gap:.3g}"
      f" (lr 1e-3: a step moves each element by about 1e-3)")
if gap > 1e-6:
    print("the fused CPU kernel read the gradient with the parameter's strides: the bug is there")
    sys.exit(1)
print("they agree: the bug is not in this release")
