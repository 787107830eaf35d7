"""optax's adam and adamw, ported to torch through a small bridge: a torch optimizer whose
step hands optax the gradient, the parameter and optax's own state, and adds the updates
optax returns. The state is kept between steps as torch tensors under torch's names
(optax's mu, nu and count), so checkpoints and the state checks see optax's own moments.
``adamw`` is ``optax.adamw`` (decay scaled by the learning rate, as torch's AdamW);
``adam`` with weight decay is ``optax.chain(optax.add_decayed_weights(wd), optax.adam(...))``,
the L2 form optax documents. JAX runs with 64-bit floats enabled, so float64 stays float64."""

from impls.thirdparty import TORCH_OPTIMIZER, adapter

PACKAGE = "optax>=0.2,<1"
BRIDGE = '''
import jax

jax.config.update("jax_enable_x64", True)  # float64 parameters stay float64
import jax.numpy as jnp
import numpy as np
import optax
import torch


def to_jax(t):
    """A torch tensor as a JAX array of its dtype (bfloat16 through float32, exactly)."""
    if t.dtype == torch.bfloat16:
        return jnp.asarray(t.float().cpu().numpy(), dtype=jnp.bfloat16)
    return jnp.asarray(t.detach().cpu().numpy())


def to_torch(a, like):
    a = a.astype(jnp.float32) if a.dtype == jnp.bfloat16 else a
    return torch.from_numpy(np.array(a)).to(like.device, like.dtype)


class OptaxAdam(torch.optim.Optimizer):
    """optax's adam (decoupled=False: weight decay added to the gradient first) or adamw, on torch tensors."""

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def transform(self, group):
        (b1, b2), wd = group["betas"], group["weight_decay"]
        if self.decoupled:
            return optax.adamw(group["lr"], b1, b2, group["eps"], weight_decay=wd)
        return optax.chain(optax.add_decayed_weights(wd), optax.adam(group["lr"], b1, b2, group["eps"]))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            tx = self.transform(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                kept = self.state[p]
                if not kept:
                    kept.update(step=torch.tensor(0.0), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
                theta = to_jax(p)
                state = optax.tree_utils.tree_set(tx.init(theta), mu=to_jax(kept["exp_avg"]),
                                                  nu=to_jax(kept["exp_avg_sq"]),
                                                  count=jnp.asarray(int(kept["step"]), jnp.int32))
                updates, state = tx.update(to_jax(p.grad), state, theta)
                p.add_(to_torch(updates, p))
                kept["exp_avg"].copy_(to_torch(optax.tree_utils.tree_get(state, "mu"), p))
                kept["exp_avg_sq"].copy_(to_torch(optax.tree_utils.tree_get(state, "nu"), p))
                kept["step"].fill_(int(optax.tree_utils.tree_get(state, "count")))
        return loss


class OptaxAdamW(OptaxAdam):
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4):
        super().__init__(params, lr, betas, eps, weight_decay)
'''
DOCUMENTED = TORCH_OPTIMIZER | {"weight_decay"}
ADAM = adapter("optax-adam", PACKAGE, ":OptaxAdam", "adam", "optax.adam through a torch bridge (JAX arrays)",
               claims=DOCUMENTED, prelude=BRIDGE)
ADAMW = adapter("optax-adamw", PACKAGE, ":OptaxAdamW", "adamw", "optax.adamw through a torch bridge (JAX arrays)",
                claims=DOCUMENTED, prelude=BRIDGE)
