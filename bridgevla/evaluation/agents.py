"""What the evaluation runner can put in front of an environment: the trained policy and two baselines.

- ``policy``: a saved BridgeVLA policy (``BridgeVLAPolicy.from_pretrained``).
- ``random``: a uniformly random keypose inside the scene bounds each step (the floor any policy must beat).
- ``expert``: the environment's own scripted plan (``env.expert_keyposes()``), replayed keypose by keypose
  (the ceiling: what the simulator and planner allow).

Agents see the environment only through the protocol, plus ``expert_keyposes`` for the expert, which the runner
treats as an optional capability: a benchmark without it simply cannot run the expert baseline.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmarks.fileio import atomic_write_bytes
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

    def __init__(self, checkpoint: str, device: str = "auto", runtime: dict[str, Any] | None = None) -> None:
        import torch

        from bridgevla.model.policy import BridgeVLAPolicy  # lazy: baselines must run without the model stack

        dev = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        self.policy = BridgeVLAPolicy.from_pretrained(checkpoint, device=dev, **(runtime or {}))
        self.policy.eval()
        # None: not recording. A list: the runner wants a picture per step (views + heatmaps of both stages).
        self.frames: list[Any] | None = None
        self.history: list[Keypose] = []  # keyposes sent this episode (a memory policy draws them into its input)

    def reset(self, env: Environment, observation: Observation, seed: int) -> None:
        self.history = []

    def act(self, observation: Observation) -> Keypose:
        if self.frames is None:
            keypose = self.policy.act(observation, history=self.history)
        else:
            keypose, pred = self.policy.act(observation, return_prediction=True, history=self.history)
            self.frames.append(prediction_picture(pred))
        self.history.append(keypose)
        return keypose


def prediction_picture(pred: Any) -> Any:
    """Stage-1 views over stage-2 views, each with its heatmaps and decoded point (a PIL image)."""
    from PIL import Image

    from rendering.viz import views_image

    rows = [views_image(pred.views[s][0, :, :3], pred.heatmaps[s][0], pred.cube_points[s][0])
            for s in range(len(pred.views))]
    out = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)))
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height
    return out


def save_strip(frames: list[Any], path: Path) -> Path:
    """Steps side by side, left to right, as one PNG."""
    from PIL import Image

    out = Image.new("RGB", (sum(f.width for f in frames), max(f.height for f in frames)))
    x = 0
    for f in frames:
        out.paste(f, (x, 0))
        x += f.width
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())  # a kill mid-write never leaves a truncated picture
    return path


@dataclass
class AgentSpec:
    """Everything a worker process needs to build its own agent: plain strings and numbers, cheap to send."""

    name: str
    checkpoint: str | None = None
    device: str = "auto"
    bounds: tuple[float, ...] = (-0.3, -0.5, 0.6, 0.7, 0.5, 1.6)
    runtime: dict[str, Any] = field(default_factory=dict)  # the policy's speed settings (EvalConfig.runtime)


def make_agent(spec: AgentSpec) -> Agent:
    if spec.name == "random":
        return RandomKeyposeAgent(spec.bounds)
    if spec.name == "expert":
        return ExpertAgent()
    if spec.name == "policy":
        if not spec.checkpoint:
            raise ValueError("checkpoint: the 'policy' agent needs --checkpoint DIR")
        return PolicyAgent(spec.checkpoint, spec.device, spec.runtime)
    raise ValueError(f"agents: unknown agent {spec.name!r}; choose from {list(AGENT_NAMES)}")
