"""TorchOpt's Adam and AdamW in their torch.optim-like form (``torchopt.Adam``): a list of
tensors, no param-group dicts."""

from impls.thirdparty import TORCH_OPTIMIZER, adapter

PACKAGE = "torchopt>=0.7,<1"
CLAIMS = TORCH_OPTIMIZER - {"param_groups"} | {"weight_decay", "maximize"}
ADAM = adapter("torchopt-adam", PACKAGE, "torchopt:Adam", "adam", "torchopt.Adam", claims=CLAIMS)
ADAMW = adapter("torchopt-adamw", PACKAGE, "torchopt:AdamW", "adamw", "torchopt.AdamW", claims=CLAIMS)
