"""The semantics certified against, as data.

``adam`` is ``torch.optim.Adam``: L2 weight decay added to the gradient ("coupled").
``adamw`` is ``torch.optim.AdamW``: the weights decay directly, by a factor 1 - γλ
that is scaled by the learning rate γ (arXiv 1711.05101 as torch implements it).
Everything else is shared; a param group of ``adam`` with ``decoupled_weight_decay=True``
follows ``adamw``, exactly as torch's Adam does.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Spec:
    """One Adam variant. The fields name the choice made at each point of the algorithm."""

    name: str
    weight_decay: str  # "coupled": g += λθ;  "decoupled": θ *= 1 - γλ before the moments

    def decay_mode(self, decoupled_weight_decay: bool) -> str:
        """The decay a param group gets: its own flag can turn Adam's decay decoupled."""
        return "decoupled" if decoupled_weight_decay else self.weight_decay


ADAM = Spec("adam", weight_decay="coupled")
ADAMW = Spec("adamw", weight_decay="decoupled")
SPECS = {spec.name: spec for spec in (ADAM, ADAMW)}
