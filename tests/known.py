"""What every test reads: the built-in implementations, and where torch's own paths are known
to break what a test asserts, each with its evidence.

`KNOWN_FAILURES` maps (test function, implementation, item) to the reason, measured on the
CPU (with ADAM_CONFORMANCE_DEVICE=cuda none applies), where the item
is the check id or golden scenario the test is parametrized by (and the implementation
None where the test takes none). conftest.py marks each such test a strict expected
failure, so that a torch release that fixes one makes the run say so, and fails the run on
an entry that matches no collected test, as array-api-tests does with its xfails file.
tests/test_torch_deviations.py shows each on its minimal Case.
"""

from __future__ import annotations

import os

#: The built-in implementations, as registered; each has an AdamW form, NAME-adamw.
BASE = ("eager", "foreach", "compiled", "triton", "torch", "torch-foreach", "torch-fused")
BUILTINS = BASE + tuple(f"{name}-adamw" for name in BASE)
#: Those that run on CUDA only.
CUDA_BUILTINS = ("torch-capturable", "torch-capturable-adamw")
#: Those sharded across processes (tests/test_distributed.py certifies them).
SHARDED_BASE = ("zero-eager", "zero-foreach", "zero-compiled", "zero-triton", "zero-torch", "fsdp2-torch")
SHARDED_BUILTINS = SHARDED_BASE + tuple(f"{name}-adamw" for name in SHARDED_BASE)
#: The adapters of other packages' Adams (impls/thirdparty/, surveyed by tests/test_survey.py).
THIRDPARTY = ("apex-fusedadam", "bnb-adam", "bnb-adamw", "bnb-adamw8bit", "deepspeed-cpuadam", "deepspeed-fusedadam",
              "heavyball-adamw", "keras-adamw", "optax-adam", "optax-adamw", "optimi-adam", "optimi-adamw",
              "pytorch-optimizer-flashadamw", "pytorch-optimizer-qhadam", "timm-adamw", "torchao-adamw",
              "torchao-adamw4bit", "torchao-adamw8bit", "torchao-adamwfp8", "torchopt-adam", "torchopt-adamw",
              "transformers-adamw")
#: The device the device-aware tests run on: set ADAM_CONFORMANCE_DEVICE=cuda on a GPU
#: (.ci/gpu-gate does).
DEVICE = os.environ.get("ADAM_CONFORMANCE_DEVICE", "cpu")

KNOWN_FAILURES = {
    ("test_passes_every_check_it_claims", "torch-fused", "contract.non-finite"):
        "torch's fused AMSGrad drops a NaN from max_exp_avg_sq (keeps 0) where torch.maximum propagates it",
    ("test_reproduces_the_golden_trace_within_budget", "torch-fused", "noncontiguous-layouts"):
        "torch's fused CPU Adam reads a gradient with its parameter's strides: a transposed parameter with a "
        "contiguous gradient (or the reverse) is updated with the wrong gradient elements",
    ("test_oracle_agrees_with_torch_in_float64", None, "tensor-lr"):
        "with lr as a float32 tensor, torch computes 1-lr*wd and lr/(1-beta1^t) in float32 tensor arithmetic, so "
        "float64 parameters take float32-accurate steps (5e-8 relative)",
    ("test_oracle_agrees_with_torch_in_float64", None, "non-finite-gradients"):
        "after an inf gradient torch's lerp turns the first moment's inf into NaN at the next finite gradient "
        "(inf + w*(g - inf)); beta1*m + (1-beta1)*g stays inf",
    ("test_oracle_agrees_with_torch_in_float64", None, "mlp-notebook"):
        "closed loop near convergence: residuals are ~1e-6 of predictions of size 1, so float64 gradients carry "
        "~1e-10 relative error, which the moments (averages of them) inherit (2.4e-9 relative on exp_avg at step "
        "500); the parameters agree to 1e-14",
}


def matches(key: tuple, test: str, params: set[str]) -> bool:
    """Whether `key` names a test function `test` run with parameter values `params`."""
    name, impl, item = key
    return name == test and item in params and (impl is None or impl in params)
