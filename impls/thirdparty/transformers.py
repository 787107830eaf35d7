"""transformers' AdamW, removed in 4.50: Adam with decoupled weight decay, eps 1e-6 and no
decay by default, ``correct_bias`` on."""

from impls.thirdparty import adapter

PACKAGE = "transformers>=4.30,<4.50"
ADAMW = adapter("transformers-adamw", PACKAGE, "transformers.optimization:AdamW", "adamw",
                "transformers.optimization.AdamW (4.49 and before)", ("weight_decay",),
                fixed={"no_deprecation_warning": True})
