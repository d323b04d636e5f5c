"""SE(3) augmentation of a training batch: move the cloud and its target keypose together.

As the reference: a translation uniform in ±``translation`` × (bound side) per axis and a yaw uniform in
±``yaw_degrees`` about the target (gripper) position, no roll or pitch. A perturbation that would push the target
out of the scene bounds is useless (the policy could never predict it), so ``max_tries`` candidates are drawn per
sample at once and the first one keeping the target inside is used; a sample with no valid candidate is left as is.
Points pushed out of the bounds are masked, as the renderer's crop would drop them anyway.

Everything is batched tensor code and runs on whatever device the batch is on (the GPU when there is one).
The geometry itself (rigid transforms, quaternion rotation) comes from ``rendering.transforms``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from bridgevla.data.recolour import RecolourConfig, recolour_batch
from rendering import SceneBounds, crop_to_bounds
from rendering.transforms import rotate_quaternions, transform_points, yaw_matrix


@dataclass
class AugmentConfig:
    enabled: bool = True
    translation: float = 0.125  # fraction of each bound side; uniform in ±translation·side per axis
    yaw_degrees: float = 45.0  # uniform in ±yaw_degrees about the world z axis through the target
    max_tries: int = 10
    # Colour permutation of the scene and its instruction together (bridgevla/data/recolour.py); off by default.
    recolour: RecolourConfig = field(default_factory=RecolourConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.translation <= 1.0:
            raise ValueError(f"augment.translation must lie in [0, 1], got {self.translation}")
        if not 0.0 <= self.yaw_degrees <= 180.0:
            raise ValueError(f"augment.yaw_degrees must lie in [0, 180], got {self.yaw_degrees}")
        if self.max_tries < 1:
            raise ValueError(f"augment.max_tries must be >= 1, got {self.max_tries}")


@dataclass
class Perturbation:
    rotation: Tensor  # (B, 3, 3) yaw
    translation: Tensor  # (B, 3) metres
    applied: Tensor  # (B,) bool: False where no candidate kept the target inside the bounds


def sample_perturbation(target_position: Tensor, bounds: SceneBounds, cfg: AugmentConfig,
                        generator: torch.Generator | None = None) -> Perturbation:
    """Draw one in-bounds perturbation per sample (see module doc). ``target_position`` (B, 3) world metres."""
    if target_position.ndim != 2 or target_position.shape[1] != 3:
        raise ValueError(f"target_position must have shape (B, 3), got {tuple(target_position.shape)}")
    b, k, dev, dt = target_position.shape[0], cfg.max_tries, target_position.device, target_position.dtype
    lo, hi = target_position.new_tensor(bounds.lo), target_position.new_tensor(bounds.hi)
    u = torch.rand(b, k, 4, generator=generator, device=dev, dtype=dt) * 2 - 1
    shift = u[..., :3] * cfg.translation * (hi - lo)
    yaw = u[..., 3] * math.radians(cfg.yaw_degrees)
    # The yaw pivots on the target, so only the translation moves it: a candidate is valid iff target+shift is inside.
    moved = target_position[:, None] + shift
    valid = ((moved >= lo) & (moved <= hi)).all(-1)  # (B, K)
    first = valid.to(torch.int8).argmax(-1)  # index of the first valid candidate (0 when none is)
    applied = valid.any(-1)
    pick = first[:, None, None].expand(b, 1, 3)
    shift = torch.gather(shift, 1, pick)[:, 0] * applied[:, None]
    yaw = torch.gather(yaw, 1, first[:, None])[:, 0] * applied
    return Perturbation(rotation=yaw_matrix(yaw), translation=shift, applied=applied)


def augment_clouds(points: Tensor, mask: Tensor, target_position: Tensor, target_quaternion: Tensor,
                   bounds: SceneBounds, cfg: AugmentConfig, generator: torch.Generator | None = None,
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Perturb (points (B,N,3), mask (B,N), target position (B,3), quaternion (B,4) xyzw) together."""
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape (B, N, 3), got {tuple(points.shape)}")
    if mask.shape != points.shape[:2]:
        raise ValueError(f"mask must have shape {tuple(points.shape[:2])}, got {tuple(mask.shape)}")
    if target_quaternion.shape != (points.shape[0], 4):
        raise ValueError(f"target_quaternion must have shape ({points.shape[0]}, 4), got "
                         f"{tuple(target_quaternion.shape)}")
    if not cfg.enabled:
        return points, mask, target_position, target_quaternion
    p = sample_perturbation(target_position, bounds, cfg, generator)
    new_points = transform_points(points, p.rotation, p.translation, pivot=target_position)
    new_position = target_position + p.translation
    new_quat = rotate_quaternions(target_quaternion, p.rotation)
    new_mask = mask & crop_to_bounds(new_points, bounds)
    return new_points, new_mask, new_position, new_quat


def augment_batch(batch: Any, bounds: SceneBounds, cfg: AugmentConfig,
                  generator: torch.Generator | None = None) -> Any:
    """The same on a ``PolicyBatch`` (any dataclass with points/colors/mask/instructions/target_position/
    target_quaternion), followed by the colour permutation when ``cfg.recolour`` asks for it."""
    pts, mask, pos, quat = augment_clouds(batch.points, batch.mask, batch.target_position, batch.target_quaternion,
                                          bounds, cfg, generator)
    batch = dataclasses.replace(batch, points=pts, mask=mask, target_position=pos, target_quaternion=quat)
    return recolour_batch(batch, cfg.recolour, generator) if cfg.enabled else batch


def step_generator(seed: int, micro_step: int, device: torch.device) -> torch.Generator:
    """The generator for micro-batch ``micro_step``: a pure function of (seed, step), so resumes replay it."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + micro_step * 7919 + 17) % (2**63 - 1))
    return g
