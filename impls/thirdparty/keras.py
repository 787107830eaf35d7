"""Keras 3's AdamW on its torch backend, ported to torch optimizers' form through a small
bridge: a Keras Variable per parameter, assigned from it before each step and copied back
after, and one Keras optimizer per param group whose slots (momentum, velocity, iterations)
are assigned from the torch-side state (exp_avg, exp_avg_sq, step) and read back, so that
checkpoints and the state checks see Keras's own moments. Keras counts its iterations per
optimizer, not per parameter; the bridge applies one parameter at a time with that
parameter's own count, so what is compared is Keras's arithmetic. Keras documents ``epsilon``
as the paper's ε-hat (added before bias correction): a deliberate difference from torch."""

from impls.thirdparty import TORCH_OPTIMIZER, adapter

PACKAGE = "keras>=3,<4"
BRIDGE = '''
import os

os.environ["KERAS_BACKEND"] = "torch"  # before Keras is first imported
import keras
import torch


class KerasAdamW(torch.optim.Optimizer):
    """keras.optimizers.AdamW stepping torch parameters."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.004):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.keras = {}  # id(param) -> (its Keras optimizer, its Keras Variable)

    def _slots(self, p):
        if id(p) not in self.keras:
            variable = keras.Variable(p.detach().clone(), dtype=str(p.dtype).removeprefix("torch."))
            optimizer = keras.optimizers.AdamW()
            optimizer.build([variable])
            self.keras[id(p)] = optimizer, variable
        return self.keras[id(p)]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                kept = self.state[p]
                if not kept:
                    kept.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                opt, variable = self._slots(p)
                opt.learning_rate = group["lr"]
                opt.beta_1, opt.beta_2 = group["betas"]
                opt.epsilon, opt.weight_decay = group["eps"], group["weight_decay"]
                variable.assign(p)
                opt._momentums[0].assign(kept["exp_avg"])  # Keras's slots, as the torch-side state holds them
                opt._velocities[0].assign(kept["exp_avg_sq"])
                opt.iterations.assign(int(kept["step"]))
                opt.apply([p.grad.clone()], [variable])
                p.copy_(variable.value)
                kept["exp_avg"].copy_(opt._momentums[0].value)
                kept["exp_avg_sq"].copy_(opt._velocities[0].value)
                kept["step"].fill_(int(opt.iterations.value))
        return loss
'''
ADAMW = adapter("keras-adamw", PACKAGE, ":KerasAdamW", "adamw",
                "keras.optimizers.AdamW, Keras 3 on its torch backend, through a torch bridge",
                claims=TORCH_OPTIMIZER | {"weight_decay"}, prelude=BRIDGE)
