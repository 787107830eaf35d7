"""What the DTensor targets claim: everything but complex (as fsdp2-torch)."""
CLAIMS = frozenset({"weight_decay", "decoupled_weight_decay", "amsgrad", "maximize", "tensor_lr", "closure",
                    "float16", "bfloat16", "float64", "noncontiguous", "param_groups", "zero_dim", "empty"})
