"""``PolicyBatch`` and ``collate``: the tensors the policy trains and predicts on (docs/INTERFACES.md).

A sample (what a dataset yields and ``collate`` takes) is a mapping — or any object with these attributes:
``points`` (N, 3) world metres and ``colors`` (N, 3) (uint8 or float [0, 1]) already through
``bridgevla.data.preprocess.prepare_cloud``; ``instruction`` str; and for training ``target_position`` (3,),
``target_quaternion`` (4,) xyzw, ``target_gripper_open`` and ``target_ignore_collisions`` (bool/float).
numpy arrays and torch tensors are both accepted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rendering import pad_clouds

TARGET_FIELDS = ("target_position", "target_quaternion", "target_gripper_open", "target_ignore_collisions")


@dataclass
class PolicyBatch:
    """Padded clouds + instructions (+ targets for training). B samples, N = the largest cloud."""

    points: Tensor  # (B, N, 3) float32, world metres
    colors: Tensor  # (B, N, 3) float32 in [0, 1]
    mask: Tensor  # (B, N) bool, False on padding
    instructions: list[str]
    target_position: Tensor | None = None  # (B, 3) world metres
    target_quaternion: Tensor | None = None  # (B, 4) xyzw
    target_gripper_open: Tensor | None = None  # (B,) float 0/1
    target_ignore_collisions: Tensor | None = None  # (B,) float 0/1

    def __post_init__(self) -> None:
        if not isinstance(self.points, Tensor) or self.points.ndim != 3 or self.points.shape[2] != 3:
            raise ValueError(f"points must be a (B, N, 3) tensor, got {getattr(self.points, 'shape', self.points)}")
        b, n = self.points.shape[:2]
        if self.colors.shape != self.points.shape:
            raise ValueError(f"colors must be {tuple(self.points.shape)}, got {tuple(self.colors.shape)}")
        if self.mask.shape != (b, n) or self.mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool ({b}, {n}), got {tuple(self.mask.shape)} {self.mask.dtype}")
        if len(self.instructions) != b:
            raise ValueError(f"instructions must hold {b} strings, got {len(self.instructions)}")
        shapes = {"target_position": (b, 3), "target_quaternion": (b, 4), "target_gripper_open": (b,),
                  "target_ignore_collisions": (b,)}
        for name, shape in shapes.items():
            t = getattr(self, name)
            if t is not None and tuple(t.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")

    def __len__(self) -> int:
        return self.points.shape[0]

    @property
    def has_targets(self) -> bool:
        return all(getattr(self, f) is not None for f in TARGET_FIELDS)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PolicyBatch:
        moved = {
            f.name: (v.to(device, non_blocking=non_blocking) if isinstance(v, Tensor) else v)
            for f in dataclasses.fields(self)
            for v in [getattr(self, f.name)]
        }
        return PolicyBatch(**moved)

    def pin_memory(self) -> PolicyBatch:
        """Lets ``DataLoader(pin_memory=True)`` pin the tensors of a custom batch type."""
        return PolicyBatch(**{f.name: (v.pin_memory() if isinstance(v, Tensor) else v)
                              for f in dataclasses.fields(self) for v in [getattr(self, f.name)]})


def _get(sample: Any, name: str, index: int, required: bool = True) -> Any:
    if isinstance(sample, Mapping):
        if name in sample:
            return sample[name]
    elif hasattr(sample, name):
        return getattr(sample, name)
    if required:
        raise ValueError(f"samples[{index}] has no {name!r}")
    return None


def _tensor(x: Any, name: str, index: int) -> Tensor:
    if isinstance(x, Tensor):
        return x
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError) as e:
        raise ValueError(f"samples[{index}].{name} is not array-like: {e}") from e


def _colors01(c: Tensor, index: int) -> Tensor:
    if c.dtype == torch.uint8:
        return c.float() / 255.0
    if not c.is_floating_point():
        raise ValueError(f"samples[{index}].colors must be uint8 or float, got {c.dtype}")
    return c.float()


def collate(samples: Sequence[Any]) -> PolicyBatch:
    """Pad the samples' clouds into a :class:`PolicyBatch`; targets are included when every sample has them."""
    if len(samples) == 0:
        raise ValueError("samples must not be empty")
    points = [_tensor(_get(s, "points", i), "points", i).float() for i, s in enumerate(samples)]
    colors = [_colors01(_tensor(_get(s, "colors", i), "colors", i), i) for i, s in enumerate(samples)]
    for i, (p, c) in enumerate(zip(points, colors)):
        if p.ndim != 2 or p.shape[1] != 3 or c.shape != p.shape:
            raise ValueError(f"samples[{i}]: points and colors must both be (N, 3), got {tuple(p.shape)}, "
                             f"{tuple(c.shape)}")
    instructions = []
    for i, s in enumerate(samples):
        text = _get(s, "instruction", i)
        if not isinstance(text, str):
            raise ValueError(f"samples[{i}].instruction must be a str, got {type(text).__name__}")
        instructions.append(text)
    pts, mask = pad_clouds(points)
    cols, _ = pad_clouds(colors)
    targets: dict[str, Tensor | None] = dict.fromkeys(TARGET_FIELDS)
    present = [[_get(s, f, i, required=False) is not None for f in TARGET_FIELDS] for i, s in enumerate(samples)]
    if all(all(p) for p in present):
        for f in TARGET_FIELDS:
            vals = [_tensor(_get(s, f, i), f, i).float() for i, s in enumerate(samples)]
            targets[f] = torch.stack([v.reshape(-1) if f in TARGET_FIELDS[:2] else v.reshape(()) for v in vals])
    elif any(any(p) for p in present):
        raise ValueError("either every sample or none must carry the targets " + str(TARGET_FIELDS))
    return PolicyBatch(points=pts, colors=cols, mask=mask, instructions=instructions, **targets)
