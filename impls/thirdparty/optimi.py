"""torch-optimi (``optimi``): Adam and AdamW, whose ``decouple_wd`` is torch's
``decoupled_weight_decay``; Kahan summation on by default for 16-bit parameters."""

from impls.thirdparty import adapter

PACKAGE = "torch-optimi>=0.2,<1"
ADAM = adapter("optimi-adam", PACKAGE, "optimi:Adam", "adam", "optimi.Adam",
               ("weight_decay", "decoupled_weight_decay"), rename={"decoupled_weight_decay": "decouple_wd"})
ADAMW = adapter("optimi-adamw", PACKAGE, "optimi:AdamW", "adamw", "optimi.AdamW", ("weight_decay",))
