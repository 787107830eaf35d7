"""Port of pytorch-pretrained-bert's BertAdam: decoupled weight decay but no bias correction at all.

Bug: the update is m / (sqrt(v) + eps) without dividing m by (1 - beta1^t) or v by
(1 - beta2^t), so early steps are ~10x too small (beta1=0.9) and every step differs; state keys
are next_m/next_v.
Modelled on: huggingface pytorch-pretrained-BERT `BertAdam` ("no bias correction", as in the
original TF BERT optimizer, google-research/bert optimization.py); discussed in
pytorch/pytorch#21250 and ml-explore/mlx#1640.
Spec: adamw.
"""
import torch
from torch.optim import Optimizer


class BertAdam(Optimizer):
    """Implements BERT version of Adam algorithm with weight decay fix (max_grad_norm disabled)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01):
        if lr < 0.0:
            raise ValueError("Invalid learning rate: {} - should be >= 0.0".format(lr))
        b1, b2 = betas
        if not 0.0 <= b1 < 1.0 or not 0.0 <= b2 < 1.0:
            raise ValueError("Invalid beta parameters: {}".format(betas))
        if not eps >= 0.0:
            raise ValueError("Invalid epsilon value: {} - should be >= 0.0".format(eps))
        defaults = dict(lr=lr, b1=b1, b2=b2, e=eps, weight_decay=weight_decay)
        super(BertAdam, self).__init__(params, defaults)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            for p in group['params']:
                if p.grad is None:
                    continue
                grad = p.grad.data
                state = self.state[p]
                if len(state) == 0:
                    state['step'] = 0
                    state['next_m'] = torch.zeros_like(p.data)
                    state['next_v'] = torch.zeros_like(p.data)

                next_m, next_v = state['next_m'], state['next_v']
                beta1, beta2 = group['b1'], group['b2']

                # Decay the first and second moment running average coefficient
                next_m.mul_(beta1).add_(grad, alpha=1 - beta1)
                next_v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = next_m / (next_v.sqrt() + group['e'])

                # Weight decay added to the update, not to the loss (decoupled)
                if group['weight_decay'] > 0.0:
                    update += group['weight_decay'] * p.data

                update_with_lr = group['lr'] * update
                p.data.add_(-update_with_lr)

                state['step'] += 1
                # No bias correction
                # bias_correction1 = 1 - beta1 ** state['step']
                # bias_correction2 = 1 - beta2 ** state['step']

        return loss


TARGET = BertAdam
