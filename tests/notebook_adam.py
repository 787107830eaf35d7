"""The seed notebook's optimizer, verbatim (cells In [2] and In [3] of
shared/seed/understanding-adam.md): the suite must diagnose it as Adam with coupled L2
weight decay, whatever the notebook calls it.
"""


import math
import torch
from torch.optim import Optimizer
from torch import Tensor
from typing import List

def adam(params: List[Tensor],           # list of parameters that contribute gradients
         grads: List[Tensor],            # g_t
         exp_avgs: List[Tensor],         # m_t
         exp_avg_sqs: List[Tensor],      # v_t
         max_exp_avg_sqs: List[Tensor],  # max(v_t)
         state_steps: List[int],
         amsgrad: bool,                  # I have removed this option, please ignore this parameter
         beta1: float,                   # from pseudocode
         beta2: float,                   # also from pseudocode
         lr: float,                      # alpha from pseudocode
         weight_decay: float,            # lambda from pseudocode
         eps: float):                    # from pseudocode
    r"""Functional API that performs Adam algorithm computation.
    See :class:`~torch.optim.Adam` for details.
    """

    for i, param in enumerate(params):

        grad = grads[i]
        exp_avg = exp_avgs[i]
        exp_avg_sq = exp_avg_sqs[i]
        step = state_steps[i]
        if amsgrad:
            max_exp_avg_sq = max_exp_avg_sqs[i]

        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step

        if weight_decay != 0:
            # This is the first of the improvements in AdamW algorithm, the L2 regularization
            grad = grad.add(param, alpha=weight_decay)

        # Decay the first and second moment running average coefficient
        exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)                     # update rule for m_t
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)        # update rule for v_t
        denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(eps) # all the weights and biases go here

        step_size = lr / bias_correction1                                   # add the learning rate alpha

        param.addcdiv_(exp_avg, denom, value=-step_size)  # update params according to p -= step_size*exp_avg/denom


class Adam(Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super(Adam, self).__init__(params, defaults)  # initialize using the inherited Optimizer class

    def __setstate__(self, state):
        super(Adam, self).__setstate__(state)
        for group in self.param_groups:
            group.setdefault('amsgrad', False)

    @torch.no_grad()  # Makes every computation have requires_grad=False, since we already have all the grads we need
    def step(self):
        """Performs a single optimization step."""
        loss = None

        for group in self.param_groups:
            params_with_grad = []  # list of parameters that contribute gradients
            grads = []             # g_t
            exp_avgs = []          # m_t
            exp_avg_sqs = []       # v_t
            state_sums = []        #
            max_exp_avg_sqs = []   #
            state_steps = []       #

            for p in group['params']:
                if p.grad is not None:
                    params_with_grad.append(p)
                    if p.grad.is_sparse:
                        raise RuntimeError('Adam does not support sparse gradients, please consider SparseAdam instead')
                    grads.append(p.grad)  # initialize to zero

                    state = self.state[p] # parameters in PyTorch have an attribute `state` which is a dict
                    
                    # Lazy state initialization, used in first round of updates. Can ignore this if reading code to learn.
                    if len(state) == 0:
                        state['step'] = 0
                        # Exponential moving average of gradient values
                        state['exp_avg'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        # Exponential moving average of squared gradient values
                        state['exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                        if group['amsgrad']:
                            # Maintains max of all exp. moving avg. of sq. grad. values
                            state['max_exp_avg_sq'] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    exp_avgs.append(state['exp_avg'])
                    exp_avg_sqs.append(state['exp_avg_sq'])
                    if group['amsgrad']:
                        max_exp_avg_sqs.append(state['max_exp_avg_sq'])

                    # update the steps for each param group update
                    state['step'] += 1
                    # record the step after step update
                    state_steps.append(state['step'])

            beta1, beta2 = group['betas'] # get the beta values for the algorithm from the class attribute 'betas'
            
            # call the adam update algorithm
            adam(params_with_grad,
                   grads,
                   exp_avgs,
                   exp_avg_sqs,
                   max_exp_avg_sqs,
                   state_steps,
                   group['amsgrad'],
                   beta1,
                   beta2,
                   group['lr'],
                   group['weight_decay'],
                   group['eps']
                   )
        return loss
