"""NVIDIA apex's FusedAdam: a CUDA kernel (apex is not on PyPI: built from source). Its
default ``adam_w_mode=True`` makes it AdamW; it raises on AMSGrad."""

from impls.thirdparty import adapter

PACKAGE = "apex"
FUSEDADAM = adapter("apex-fusedadam", PACKAGE, "apex.optimizers:FusedAdam", "adamw",
                    "apex.optimizers.FusedAdam (CUDA only)", ("weight_decay",), devices=("cuda",))
