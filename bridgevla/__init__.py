"""bridgevla: BridgeVLA-style 3D manipulation policies.

The policy lives in ``bridgevla.policy`` (``BridgeVLAPolicy``, ``BridgeVLAConfig`` in ``bridgevla.config``); training in
``bridgevla.train``; evaluation in ``bridgevla.eval``; the command line in ``bridgevla.cli``. Submodules are imported
on use so that ``import bridgevla`` stays cheap.
"""

__version__ = "0.1.0"
