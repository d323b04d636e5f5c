"""The policy: config, PaliGemma backbone, heads, the two-stage forward with its losses, ``act()``, save/load.

``BridgeVLAPolicy`` (``bridgevla.model.policy``) and ``BridgeVLAConfig`` (``bridgevla.model.config``) are the public
names; the other modules are its parts. Depends on ``rendering`` (geometry), ``bridgevla.data`` (the one
preprocessing and the batch format) and ``benchmarks.protocol`` (Observation in, Keypose out).
"""
