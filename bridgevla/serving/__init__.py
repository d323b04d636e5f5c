"""Serving a trained policy: the policy server and the real-robot runner (arm, cameras, calibration, safety) go here.
Like evaluation, it talks to robots and simulators only through ``benchmarks.protocol``."""
