"""CUDA-graph-style Adam: two eager warm-up steps, then step() replays a captured update whose Python-float constants were baked at capture time.

Bug: the bias corrections and step size are computed once, at capture (from the step count read
before the increment), and replayed as constants, so from the third step on every update uses
the bias correction of step 2; the step tensors keep counting, so state looks right.
Modelled on: torch.cuda.graphs docs (warm up before capture; Python scalars are baked into the
graph) and the reason torch's capturable=True keeps bias corrections as tensors
(pytorch/pytorch PR #102619, "capturable" docs).
Spec: adam.
"""
import torch


def _update(p, g, m, v, vmax, *, beta1, beta2, eps, wd, decoupled, lr, bc1, bc2_sqrt):
    if wd != 0:
        if decoupled:
            p.mul_(1 - lr * wd)
        else:
            g = g.add(p, alpha=wd)
    if torch.is_complex(p):
        p, g, m, v = (torch.view_as_real(x) for x in (p, g, m, v))
        vmax = torch.view_as_real(vmax) if vmax is not None else None
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    if vmax is not None:
        torch.maximum(vmax, v, out=vmax)
        v = vmax
    p.addcdiv_(m, (v.sqrt() / bc2_sqrt).add_(eps), value=-(lr / bc1))


class GraphedAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 *, maximize=False, decoupled_weight_decay=False, warmup_steps=2):
        if lr < 0 or eps < 0 or weight_decay < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError("invalid Adam hyperparameters")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))
        self.warmup_steps = warmup_steps
        self._calls = 0
        self._graph = None

    def _work(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            hp = dict(beta1=beta1, beta2=beta2, eps=group["eps"], wd=group["weight_decay"],
                      decoupled=group["decoupled_weight_decay"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                s = self.state[p]
                if not s:
                    s["step"] = torch.tensor(0.0)
                    s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    if group["amsgrad"]:
                        s["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                yield p, s, group, hp

    def _eager(self):
        for p, s, group, hp in self._work():
            s["step"] += 1
            t = s["step"].item()
            g = -p.grad if group["maximize"] else p.grad
            _update(p, g, s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq"), lr=group["lr"],
                    bc1=1 - hp["beta1"] ** t, bc2_sqrt=(1 - hp["beta2"] ** t) ** 0.5, **hp)

    def _capture(self):
        recorded = []
        for p, s, group, hp in self._work():
            t = s["step"].item()  # constants are baked into the graph here
            recorded.append((p, s, group["maximize"], dict(hp, lr=float(group["lr"]), bc1=1 - hp["beta1"] ** t,
                                                          bc2_sqrt=(1 - hp["beta2"] ** t) ** 0.5)))

        def replay():
            for p, s, maximize, consts in recorded:
                if p.grad is None:
                    continue
                s["step"] += 1
                g = -p.grad if maximize else p.grad
                _update(p, g, s["exp_avg"], s["exp_avg_sq"], s.get("max_exp_avg_sq"), **consts)
        return replay

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._calls += 1
        if self._calls <= self.warmup_steps:
            self._eager()
        else:
            if self._graph is None:
                self._graph = self._capture()
            self._graph()
        return loss


TARGET = GraphedAdam
