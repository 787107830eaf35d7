"""The semantics certified against, as data: torch's Adam and AdamW, and the known variants.

A `Spec` names the choice made at each point of the algorithm where implementations
differ. ``ADAM`` and ``ADAMW`` are torch's; every other combination is a known variant
the oracle can compute and `diagnose` can recognise.

``adam`` is ``torch.optim.Adam``: L2 weight decay added to the gradient ("coupled").
``adamw`` is ``torch.optim.AdamW``: the weights decay directly, by a factor 1 - γλ
that is scaled by the learning rate γ (arXiv 1711.05101 as torch implements it).
A param group of ``adam`` with ``decoupled_weight_decay=True`` follows ``adamw``,
exactly as torch's Adam does.
"""

from __future__ import annotations

import dataclasses

#: The choices at each point; the first of each is torch's.
POINTS = {
    # g += λθ | θ *= 1-γλ before the moments | θ *= 1-λ | θ *= 1-γλ after the update | no decay
    "weight_decay": ("coupled", "decoupled", "decoupled_unscaled", "decoupled_after", "none"),
    # √v̂ + ε, v̂ = v/(1-β₂ᵗ) | (√v + ε)/√(1-β₂ᵗ) | √(v̂ + ε) | max(√v̂, ε)
    "eps": ("after_bias_correction", "before_bias_correction", "inside_sqrt", "floor"),
    # both moments corrected | m only | v only | neither
    "bias_correction": ("both", "first", "second", "none"),
    # max of the raw v | max of the corrected v̂ | no max
    "amsgrad": ("raw_max", "corrected_max", "ignored"),
    # t counts a parameter's own steps | its group's steps | every step() call | every call since its group
    # joined | its group's first parameter's steps | the group's calls, folded into debiased betas
    # 1 - (1-β)/(1-βᵗ) on moments kept debiased
    "step_count": ("per_param", "per_group", "global", "per_group_call", "first_param", "debiased"),
    # a parameter without a grad is skipped | stepped as if its gradient were zero
    "missing_grad": ("skipped", "zero"),
    # g ← -g before decay | γ ← -γ for the whole step (decay reverses too) | g ← -(g + λθ) | no effect
    "maximize": ("negate_grad", "negate_lr", "negate_after_decay", "ignored"),
    # Adam's decoupled_weight_decay=True gives AdamW's decay | is accepted and does nothing
    "decoupled_flag": ("honoured", "ignored"),
}


@dataclasses.dataclass(frozen=True)
class Spec:
    """One Adam variant: the choice at each point of `POINTS` (defaults: torch's)."""

    name: str
    weight_decay: str = "coupled"
    eps: str = "after_bias_correction"
    bias_correction: str = "both"
    amsgrad: str = "raw_max"
    step_count: str = "per_param"
    missing_grad: str = "skipped"
    maximize: str = "negate_grad"
    decoupled_flag: str = "honoured"

    def __post_init__(self):
        for point, choices in POINTS.items():
            if getattr(self, point) not in choices:
                raise ValueError(f"{point} must be one of {choices}, not {getattr(self, point)!r}")

    def decay_mode(self, decoupled_weight_decay: bool) -> str:
        """The decay a param group gets: its own flag turns Adam's coupled decay decoupled."""
        honoured = decoupled_weight_decay and self.decoupled_flag == "honoured"
        return "decoupled" if honoured and self.weight_decay == "coupled" else self.weight_decay


ADAM = Spec("adam", weight_decay="coupled")
ADAMW = Spec("adamw", weight_decay="decoupled")
#: torch's two variants, by spec name (`vocabulary.SPECS`).
BY_NAME = {spec.name: spec for spec in (ADAM, ADAMW)}
