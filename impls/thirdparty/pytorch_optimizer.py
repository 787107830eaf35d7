"""pytorch-optimizer: its Adam and AdamW are torch's, so its own forms are surveyed: QHAdam
with ν = (1, 1), which its docs give as Adam (``weight_decouple``: decoupled decay), and
FlashAdamW (8-bit grouped state)."""

from impls.thirdparty import adapter

PACKAGE = "pytorch-optimizer>=3,<5"
QHADAM = adapter("pytorch-optimizer-qhadam", PACKAGE, "pytorch_optimizer:QHAdam", "adam",
                 "pytorch_optimizer.QHAdam, nus=(1, 1): Adam", ("weight_decay", "decoupled_weight_decay", "maximize"),
                 rename={"decoupled_weight_decay": "weight_decouple"}, fixed={"nus": (1.0, 1.0)})
FLASHADAMW = adapter("pytorch-optimizer-flashadamw", PACKAGE, "pytorch_optimizer:FlashAdamW", "adamw",
                     "pytorch_optimizer.FlashAdamW (8-bit grouped state)", ("weight_decay", "maximize"))
