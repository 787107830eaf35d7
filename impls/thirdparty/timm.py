"""timm's own AdamW (``AdamWLegacy``: its ``AdamW`` is torch's). ``import timm`` imports
torchvision; where torchvision is missing, ``timm/optim/adamw.py`` is loaded on its own (it
imports only torch and timm's small optim helpers)."""

from impls.thirdparty import adapter

ALONE = """
import importlib.machinery
import importlib.util
import sys

try:
    import timm.optim  # imports torchvision
except ImportError:  # empty timm and timm.optim packages over timm's folders
    root = importlib.util.find_spec("timm").submodule_search_locations[0]
    for name, path in (("timm", root), ("timm.optim", root + "/optim")):
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [path]
        sys.modules[name] = importlib.util.module_from_spec(spec)
"""

PACKAGE = "timm>=1.0.12,<2"
ADAMW = adapter("timm-adamw", PACKAGE, "timm.optim.adamw:AdamWLegacy", "adamw",
                "timm.optim.AdamWLegacy (timm's own AdamW)", ("weight_decay", "amsgrad", "maximize"), prelude=ALONE)
