"""RLBench (PerAct's 18-task split): its demo format (import/export, restricted unpickling), reading its demo folders
for training, and the simulator harness behind :class:`benchmarks.protocol.Environment`.

Nothing here imports RLBench, PyRep or CoppeliaSim at module import time; the harness does so when it launches and
names the missing piece when one is absent (docs/benchmarks.md has the install).
"""
