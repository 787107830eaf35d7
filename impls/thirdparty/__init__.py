"""Adapters for the Adam and AdamW of the optimizer packages people use, one module per
package, each entry named for its package (``bnb-adamw``, ``torchao-adamw8bit``, ...).

An adapter imports its package only when its factory is first called, so listing or
resolving an entry costs nothing and an absent package is said in one line. It claims
what the package documents and nothing more, passes the package's own names for torch's
keywords (`rename`), and states the versions it was written for (`Implementation.package`).
What the suite finds comes from running the package, never from these declarations.

Each adapter is its own reproducer's recipe: Python source defining ``make_target()``
(the package's class, the renames and the fixed keywords, nothing of this suite), which
the factory runs once and a reproducer copies, so a finding can be sent upstream as is.
"""

from __future__ import annotations

import textwrap

from conformance.registry import Implementation

#: What an optimizer of torch.optim's form documents by being one: param groups, step(closure),
#: and any floating dtype, layout and shape a parameter may have. Complex parameters and a
#: Tensor lr are claimed only where a package documents them.
TORCH_OPTIMIZER = frozenset({"closure", "param_groups", "float64", "float16", "bfloat16", "noncontiguous",
                             "zero_dim", "empty"})


def recipe(where: str, rename: dict, fixed: dict, prelude: str = "") -> str:
    """Source defining ``make_target()``: it runs `prelude`, imports the class at `where`
    (``module:Class``; ``:Class``, a class the prelude defines: a bridge) and returns
    ``factory(params, **torch_keywords)`` over it."""
    module, _, cls = where.partition(":")
    lines = ["def make_target():", *([textwrap.indent(prelude.strip(), "    ")] if prelude.strip() else []),
             *([f"    from {module} import {cls}"] if module else []), "", "    def factory(params, **kwargs):"]
    if rename:
        lines += [f"        for ours, theirs in {rename!r}.items():  # the package's names for torch's keywords",
                  "            if ours in kwargs:", "                kwargs[theirs] = kwargs.pop(ours)"]
    fixed_part = f"**{fixed!r}, " if fixed else ""
    lines += [f"        return {cls}(params, {fixed_part}**kwargs)", "", "    return factory", ""]
    return "\n".join(lines)


def adapter(name: str, package: str, where: str, spec: str, description: str, keywords=("weight_decay",),
            rename: dict | None = None, fixed: dict | None = None, prelude: str = "", **fields) -> Implementation:
    """An entry for the optimizer class at `where` (``module:Class``) of `package` (a requirement
    with its version range). It claims `TORCH_OPTIMIZER` and the keyword features `keywords`
    (assumed: one the package cleanly refuses at construction is dropped, with a note);
    `rename` maps torch's keyword names to the package's, `fixed` are keywords always passed
    (a mode the entry stands for), `prelude` is source run before the import."""
    source = recipe(where, rename or {}, fixed or {}, prelude)
    made = []

    def factory(params, **kwargs):
        if not made:
            space: dict = {}
            exec(source, space)  # noqa: S102 - the recipe above, one source for the adapter and its reproducers
            made.append(space["make_target"]())
        return made[0](params, **kwargs)

    factory.__name__ = factory.__qualname__ = where.partition(":")[2]
    factory.recipe = source
    fields.setdefault("claims", TORCH_OPTIMIZER | set(keywords))
    fields.setdefault("assumed", set(keywords))  # documented, yet a package may refuse one: said, not failed 15 times
    return Implementation(name, factory, description, spec, package=package, **fields)
