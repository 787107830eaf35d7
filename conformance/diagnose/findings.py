"""What diagnose can find at each point, and one `Finding`: the choice found, torch's, and the evidence."""

from __future__ import annotations

import dataclasses

import numpy as np

#: What each choice is, and whose convention it is.
CONVENTIONS = {
    "weight_decay": {
        "coupled": "coupled L2: λθ added to the gradient (torch.optim.Adam)",
        "decoupled": "decoupled, scaled by lr: θ *= 1 - γλ (torch.optim.AdamW, optax.adamw)",
        "decoupled_unscaled": "decoupled, not scaled by lr: θ *= 1 - λ (the AdamW paper's own form)",
        "decoupled_after": "decoupled, applied to the weights after the update",
        "none": "none: weight_decay is accepted and has no effect",
    },
    "eps": {
        "after_bias_correction": "added after bias correction: √v̂ + ε (PyTorch)",
        "before_bias_correction": "added before bias correction: (√v + ε)/√(1-β₂ᵗ) (TensorFlow/Keras, PyTorch < 1.2)",
        "inside_sqrt": "inside the square root: √(v̂ + ε) (optax's eps_root, RMSProp style)",
        "floor": "a floor: max(√v̂, ε)",
    },
    "bias_correction": {
        "both": "both moments (the Adam paper, PyTorch)",
        "first": "the first moment only",
        "second": "the second moment only",
        "none": "none",
    },
    "amsgrad": {
        "raw_max": "max of the raw second moment (PyTorch; Reddi et al.)",
        "corrected_max": "max of the bias-corrected second moment (the formula torch's docs showed before #142041)",
        "ignored": "accepted and ignored: no running max is kept",
    },
    "step_count": {
        "per_param": "per parameter (PyTorch)",
        "per_group": "per param group, advanced when any of its parameters has a gradient",
        "global": "one global count of step() calls (optax, TensorFlow/Keras)",
        "per_group_call": "per param group, advanced once a step() call from when the group joined, gradients or "
                          "not (group['step'] += 1)",
        "first_param": "kept on one parameter of the group (a bucket's first tensor), advanced only when that one "
                       "has a gradient, and used for every parameter of the group",
        "debiased": "per param group, once a step() call, and folded into debiased betas 1-(1-β)/(1-βᵗ) on moments "
                    "kept debiased (heavyball's beta_debias)",
    },
    "maximize": {
        "negate_grad": "negates the gradient (PyTorch)",
        "negate_lr": "negates the learning rate, which reverses weight decay too (Paddle before #79341)",
        "negate_after_decay": "negates the decayed gradient -(g + λθ), so L2 decay grows the weights",
        "ignored": "accepted and ignored: the target still minimises",
    },
    "missing_grad": {
        "skipped": "skipped: no decay, no moment update, no step count (PyTorch)",
        "zero": "stepped as if the gradient were zero: moments decay, the step count advances (optax, "
                "where every parameter has a gradient)",
    },
    "decoupled_flag": {
        "honoured": "decoupled_weight_decay=True gives AdamW's decay (PyTorch)",
        "ignored": "decoupled_weight_decay=True is accepted but the decay stays coupled",
    },
    "arithmetic": {
        "param_dtype": "in the parameters' dtype, its constants in double (PyTorch)",
        "float32": "float32 whatever the parameters' dtype: float64 parameters come back rounded to float32",
        "float32_betas": "β₁ and β₂ held in float32 (float32 tensors, say), the rest in the parameters' dtype",
        "float32_beta1": "β₁ held in float32, the rest in the parameters' dtype",
        "float32_beta2": "β₂ held in float32, the rest in the parameters' dtype",
        "float32_lr": "lr held in float32, the rest in the parameters' dtype",
    },
    "state_precision": {
        "param_dtype": "the parameters' dtype (PyTorch)",
        "float32": "float32 for low-precision parameters (more accurate than torch)",
        "wider": "wider than the parameters' dtype",
        "lower": "lower than the parameters' dtype (less accurate than torch)",
    },
    "gradients": {"untouched": "untouched (PyTorch)", "modified": "modified in place by step()",
                  "set_to_none": "set to None by step()"},
    "residual": {
        "none": "nothing: the variant found explains every probe",
        "unexplained": "a difference none of these points describes (a constant's precision, a swapped beta, ...)",
    },
    "parity": {
        "holds": "certify's parity checks pass: within its error budget of torch",
        "fails": "a parity check of certify's fails",
    },
}
#: The features a point's probe needs claimed.
NEEDS = {"weight_decay": {"weight_decay"}, "decoupled_flag": {"weight_decay", "decoupled_weight_decay"},
         "amsgrad": {"amsgrad"}, "maximize": {"maximize"}}
#: Accept a candidate when its distance from the target is this far below the runner-up's.
MARGIN = 100.0
#: Farther than this from every known choice (eps at scale, float64 probes), a point cannot
#: be told. A correct implementation is a few eps from torch's choice after six steps.
UNKNOWN = 1e3


@dataclasses.dataclass
class Finding:
    """One point: the choice the target makes (None: could not tell), torch's for the spec, and
    what was measured or why the point was not probed; `error` is what its probe raised, and
    `size` how large a difference found is, in eps."""

    point: str
    found: str | None
    expected: str
    detail: str
    probed: bool = True
    error: str = ""
    size: str = ""  # how large the difference found is, where the verdict says it

    @property
    def differs(self) -> bool:
        return self.found is not None and self.found != self.expected

    def describe(self) -> str:
        return CONVENTIONS.get(self.point, {}).get(self.found, self.found or "could not tell")


def raised(point: str, expected: str, error: str, where: str = "") -> Finding:
    """A point whose probe raised: not far from anything, just not probed."""
    return Finding(point, None, expected, f"could not probe{where}: {error}", probed=False, error=error)


def eps_text(x: float) -> str:
    """A distance in eps, as the findings print it."""
    return "inf" if not np.isfinite(x) else f"{x:.3g}"
