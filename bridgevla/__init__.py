"""bridgevla: BridgeVLA-style 3D manipulation policies.

Public API::

    from bridgevla import BridgeVLAPolicy, BridgeVLAConfig

Subpackages follow the pipeline: ``model`` (the policy), ``data`` (episodes -> batches), ``training``, ``evaluation``,
``serving`` and ``scripts`` (the command line and other entry points); ``configuration`` is the one config system.
The two public names are imported on first use (PEP 562), so ``import bridgevla`` stays cheap (no torch/transformers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["BridgeVLAConfig", "BridgeVLAPolicy", "__version__"]

if TYPE_CHECKING:
    from bridgevla.model.config import BridgeVLAConfig
    from bridgevla.model.policy import BridgeVLAPolicy

_LAZY = {"BridgeVLAPolicy": "bridgevla.model.policy", "BridgeVLAConfig": "bridgevla.model.config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bridgevla' has no attribute {name!r}")
