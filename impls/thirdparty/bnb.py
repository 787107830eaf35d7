"""bitsandbytes: its Adam and AdamW with 32-bit state, and AdamW8bit (8-bit blockwise state
for tensors of at least ``min_8bit_size`` = 4096 elements, 32-bit below). CPU support: 0.49+."""

from impls.thirdparty import adapter

PACKAGE = "bitsandbytes>=0.49,<1"
ADAM = adapter("bnb-adam", PACKAGE, "bitsandbytes.optim:Adam", "adam", "bitsandbytes.optim.Adam (32-bit state)",
               ("weight_decay", "amsgrad"), fixed={"optim_bits": 32})
ADAMW = adapter("bnb-adamw", PACKAGE, "bitsandbytes.optim:AdamW", "adamw", "bitsandbytes.optim.AdamW (32-bit state)",
                ("weight_decay", "amsgrad"), fixed={"optim_bits": 32})
ADAMW8BIT = adapter("bnb-adamw8bit", PACKAGE, "bitsandbytes.optim:AdamW8bit", "adamw",
                    "bitsandbytes.optim.AdamW8bit (8-bit blockwise state from 4096 elements)",
                    ("weight_decay", "amsgrad"), state_precision="8bit-dynamic")
