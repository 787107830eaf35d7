"""adam-conformance: certify that an optimizer behaves exactly like torch.optim.Adam / AdamW."""

from conformance.registry import FEATURES, Implementation, TargetError, resolve

__all__ = ["FEATURES", "Implementation", "TargetError", "resolve"]
