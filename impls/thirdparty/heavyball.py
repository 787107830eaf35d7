"""heavyball's AdamW, run eagerly (``heavyball.utils.compile_mode = None``: its default
compiles every step function, with the same numbers, at seconds a shape)."""

from impls.thirdparty import adapter

PACKAGE = "heavyball>=3,<4"
ADAMW = adapter("heavyball-adamw", PACKAGE, "heavyball:AdamW", "adamw", "heavyball.AdamW (eager)", ("weight_decay",),
                prelude="import heavyball\nheavyball.utils.compile_mode = None")
