"""torchao's AdamW: the full-precision base of its low-bit optimizers, and its 8-bit, 4-bit
and FP8 state forms (each step a torch.compile'd function per parameter)."""

from impls.thirdparty import adapter

PACKAGE = "torchao>=0.12,<1"
ADAMW = adapter("torchao-adamw", PACKAGE, "torchao.optim:_AdamW", "adamw", "torchao.optim._AdamW (full precision)",
                ("weight_decay", "amsgrad"))
ADAMW8BIT = adapter("torchao-adamw8bit", PACKAGE, "torchao.optim:AdamW8bit", "adamw",
                    "torchao.optim.AdamW8bit (8-bit blockwise state from 4096 elements)", ("weight_decay", "amsgrad"),
                    state_precision="8bit-dynamic")
ADAMW4BIT = adapter("torchao-adamw4bit", PACKAGE, "torchao.optim:AdamW4bit", "adamw",
                    "torchao.optim.AdamW4bit (4-bit blockwise state from 4096 elements; no declared "
                    "precision: see conformance.truth.precision)", ("weight_decay", "amsgrad"))
ADAMWFP8 = adapter("torchao-adamwfp8", PACKAGE, "torchao.optim:AdamWFp8", "adamw",
                   "torchao.optim.AdamWFp8 (FP8 blockwise state from 4096 elements)", ("weight_decay", "amsgrad"),
                   state_precision="fp8-e4m3")
