"""The suite's words, each defined once, without torch: the specs, devices, features, edges
of the valid range, severities, state keys and profiles.

The registry, the strategies, the checks, the reports, the CLI and the pytest plugin take
them from here. The standalone reproducer runtime (`run.drive`, `report.repro_runtime`)
keeps deliberate copies, which tests/test_walls.py holds equal to these.
"""

from __future__ import annotations

import dataclasses

#: The semantics certified against, and the torch class of each.
SPECS = ("adam", "adamw")
TORCH_CLASSES = {"adam": "Adam", "adamw": "AdamW"}
DEVICES = ("cpu", "cuda")

#: Features an implementation may claim. The first four are constructor keywords; then
#: behaviours a signature cannot show, claimed unless disclaimed; then promises a GPU
#: implementation declares, checked on CUDA only (checks/cuda.py), never claimed by default.
KEYWORD_FEATURES = ("weight_decay", "decoupled_weight_decay", "amsgrad", "maximize")
BEHAVIOURS = (
    "complex",  # complex64/complex128 parameters, treated as view_as_real
    "tensor_lr",  # lr given as a 1-element tensor
    "closure",  # step(closure) evaluates the closure and returns its loss
    "float16",
    "bfloat16",
    "float64",
    "noncontiguous",  # transposed, sliced and channels_last params and grads
    "param_groups",  # params given as several param-group dicts, and add_param_group
    "zero_dim",  # 0-d parameters
    "empty",  # parameters with no elements
)
DECLARED = (
    "capturable",  # step() can be captured in a CUDA graph and replayed (torch's capturable=True)
    "allocation_free",  # step() allocates no device memory after the first step
)
FEATURES = KEYWORD_FEATURES + BEHAVIOURS + DECLARED
#: What an implementation claims unless it says otherwise.
DEFAULT_CLAIMS = KEYWORD_FEATURES + BEHAVIOURS
#: Edges of the valid range that torch accepts and a target might reject: each name is
#: (hyperparameter, value). A target that rejects one fails contract.accepts-valid, and
#: every other check draws around it.
EDGES = {
    "lr=0": ("lr", 0.0),
    "eps=0": ("eps", 0.0),
    "beta1=0": ("beta1", 0.0),
    "beta2=0": ("beta2", 0.0),
    "weight_decay=1": ("weight_decay", 1.0),
}
#: How bad a failed check is, most severe first: wrong parameters outrank a wrong state
#: tensor (the parameters within budget), which outranks an API difference.
SEVERITIES = {
    "parameters": "wrong parameters",
    "state": "wrong optimizer state (the parameters are within budget)",
    "api": "an API difference",
}
#: torch.optim.Adam's and AdamW's constructor defaults (AdamW takes no decoupled_weight_decay).
#: A keyword at its default is not passed to a target, as a user does not pass it.
TORCH_DEFAULTS = {
    "adam": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False,
                 decoupled_weight_decay=False),
    "adamw": dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False),
}
#: torch's three Adam paths, by the constructor flags that choose them: the single-tensor
#: for-loop (the suite's yardstick), the multi-tensor foreach kernels and the fused kernels.
TORCH_PATHS = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
#: The low-precision state formats an implementation may declare (``state_precision``):
#: its moments are then judged within what the format allows (`conformance.truth.precision`).
STATE_PRECISIONS = ("8bit-dynamic", "fp8-e4m3")
#: Optimizer state tensors of each parameter (beside ``step``), as torch names them.
STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def torch_class_name(spec: str) -> str:
    """``torch.optim.Adam`` or ``torch.optim.AdamW``."""
    return f"torch.optim.{TORCH_CLASSES[spec]}"


@dataclasses.dataclass(frozen=True)
class Profile:
    """How hard to look: examples per check and how large a drawn Case may be."""

    name: str
    examples: int
    max_steps: int
    max_numel: int
    large: bool
    golden_steps: int  # the longest golden scenario parity.golden runs
    closed_loop: bool  # whether parity.golden runs the closed-loop MLP
    timeout: float  # seconds a check may take on a target as fast as torch (the preflight scales it)


PROFILES = {
    "quick": Profile("quick", examples=6, max_steps=5, max_numel=64, large=False, golden_steps=30, closed_loop=False,
                     timeout=120.0),
    "standard": Profile("standard", examples=30, max_steps=8, max_numel=1024, large=True, golden_steps=300,
                        closed_loop=False, timeout=900.0),
    "thorough": Profile("thorough", examples=300, max_steps=12, max_numel=1024, large=True, golden_steps=10**6,
                        closed_loop=True, timeout=7200.0),
}

#: How a check's failure begins where the same example failed, then passed on replay (compare
#: reads it: such a status change is not drift).
NONDETERMINISTIC = "nondeterministic:"
