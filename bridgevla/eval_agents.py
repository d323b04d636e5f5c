"""What the evaluation runner can put in front of an environment: the trained policy and two baselines.

- ``policy``: a saved BridgeVLA policy (``BridgeVLAPolicy.from_pretrained``).
- ``random``: a uniformly random keypose inside the scene bounds each step (the floor any policy must beat).
- ``expert``: the environment's own scripted plan (``env.expert_keyposes()``), replayed keypose by keypose
  (the ceiling: what the simulator and planner allow).

Agents see the environment only through the protocol, plus ``expert_keyposes`` for the expert, which the runner
treats as an optional capability: a benchmark without it simply cannot run the expert baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from benchmarks.protocol import Environment, Keypose, Observation

AGENT_NAMES = ("policy", "random", "expert")


class Agent(Protocol):
    name: str

    def reset(self, env: Environment, observation: Observation, seed: int) -> None: ...

    def act(self, observation: Observation) -> Keypose: ...


class RandomKeyposeAgent:
    """Uniform position in the bounds, uniform random rotation, fair coins for gripper and collisions."""

    name = "random"

    def __init__(self, bounds: tuple[float, ...]) -> None:
        if len(bounds) != 6 or any(h <= l for l, h in zip(bounds[:3], bounds[3:])):
            raise ValueError(f"bounds must be [xmin, ymin, zmin, xmax, ymax, zmax] with max > min, got {bounds}")
        self.lo, self.hi = np.asarray(bounds[:3]), np.asarray(bounds[3:])
        self.rng = np.random.default_rng(0)

    def reset(self, env: Environment, observation: Observation, seed: int) -> None:
        # Seeded per episode, so a resumed evaluation replays the same random episodes.
        self.rng = np.random.default_rng(seed)

    def act(self, observation: Observation) -> Keypose:
        q = self.rng.normal(size=4)  # a normalised 4-D Gaussian is a uniform random rotation
        q /= np.linalg.norm(q)
        pos = self.lo + (self.hi - self.lo) * self.rng.random(3)
        return Keypose(pos, q, bool(self.rng.random() < 0.5), bool(self.rng.random() < 0.5))


class ExpertAgent:
    """Replays ``env.expert_keyposes()`` computed right after reset; repeats the last keypose if asked for more."""

    name = "expert"

    def __init__(self) -> None:
        self.plan: list[Keypose] = []
        self.i = 0

    def reset(self, env: Environment, observation: Observation, seed: int) -> None:
        planner = getattr(env, "expert_keyposes", None)
        if planner is None:
            raise ValueError(f"agents: 'expert' needs an environment with expert_keyposes(); "
                             f"{type(env).__name__} has none")
        self.plan, self.i = list(planner()), 0
        if not self.plan:
            raise ValueError(f"{type(env).__name__}.expert_keyposes() returned an empty plan")

    def act(self, observation: Observation) -> Keypose:
        kp = self.plan[min(self.i, len(self.plan) - 1)]
        self.i += 1
        return kp


class PolicyAgent:
    """A trained policy loaded from ``checkpoint`` (a ``save_pretrained`` directory)."""

    name = "policy"

    def __init__(self, checkpoint: str, device: str = "auto") -> None:
        import torch
        from bridgevla.policy import BridgeVLAPolicy  # lazy: baselines must run without the model stack

        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.policy = BridgeVLAPolicy.from_pretrained(checkpoint, device=dev)
        self.policy.eval()
        self.last: Any = None

    def reset(self, env: Environment, observation: Observation, seed: int) -> None:
        self.last = None

    def act(self, observation: Observation) -> Keypose:
        return self.policy.act(observation)


@dataclass
class AgentSpec:
    """Everything a worker process needs to build its own agent: plain strings and numbers, cheap to send."""

    name: str
    checkpoint: str | None = None
    device: str = "auto"
    bounds: tuple[float, ...] = (-0.3, -0.5, 0.6, 0.7, 0.5, 1.6)


def make_agent(spec: AgentSpec) -> Agent:
    if spec.name == "random":
        return RandomKeyposeAgent(spec.bounds)
    if spec.name == "expert":
        return ExpertAgent()
    if spec.name == "policy":
        if not spec.checkpoint:
            raise ValueError("checkpoint: the 'policy' agent needs --checkpoint DIR")
        return PolicyAgent(spec.checkpoint, spec.device)
    raise ValueError(f"agents: unknown agent {spec.name!r}; choose from {list(AGENT_NAMES)}")
