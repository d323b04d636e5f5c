"""SE(3) augmentation of a training batch: move the cloud and its target keypose together.

As the reference: a translation uniform in ±``translation`` × (bound side) per axis and a yaw uniform in
±``yaw_degrees`` about the target (gripper) position, no roll or pitch. A perturbation that would push the target
out of the scene bounds is useless (the policy could never predict it), so ``max_tries`` candidates are drawn per
sample at once and the first one keeping the target inside is used; a sample with no valid candidate is left as is.
Points pushed out of the bounds are masked, as the renderer's crop would drop them anyway.

Optionally (``mirror_probability``, off by default) a sample is first replaced by its mirror image in the vertical
plane ``y = mirror_plane_y`` — the cloud, the target keypose and the words "left"/"right" of its instruction — where
the mirrored target stays inside the bounds. Ten demos cover a task's layouts unevenly (slide_block's ten: five
pushes to +y, one to −y, and the −y test episodes fail most: docs/training.md, runs 21–24); a scene whose robot,
cameras and bounds are symmetric about that plane (the embedded benchmark's, about the robot base's y = 0) makes
every demo a second, mirrored one. Only for tasks whose goal is mirror-symmetric too (not an instruction that names
a side in other words, "the drawer nearer the door", nor chiral objects) and whose demos hold the gripper by a
convention ``mirror_gripper_quaternions`` knows.

Everything is batched tensor code and runs on whatever device the batch is on (the GPU when there is one).
The geometry itself (rigid transforms, quaternion rotation) comes from ``rendering.transforms``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from bridgevla.data.recolour import RecolourConfig, recolour_batch
from rendering import SceneBounds, crop_to_bounds
from rendering.transforms import (
    mirror_gripper_quaternions,
    mirror_points,
    rotate_quaternions,
    transform_points,
    yaw_matrix,
)

_SIDES = re.compile(r"\b(left|right|Left|Right|LEFT|RIGHT)\b")
_OTHER_SIDE = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}


@dataclass
class AugmentConfig:
    enabled: bool = True
    translation: float = 0.125  # fraction of each bound side; uniform in ±translation·side per axis
    yaw_degrees: float = 45.0  # uniform in ±yaw_degrees about the world z axis through the target
    max_tries: int = 10
    # Probability of replacing a sample by its mirror image in the plane y = mirror_plane_y (module doc); 0: off.
    mirror_probability: float = 0.0
    mirror_plane_y: float = 0.0  # metres; the embedded benchmark's robot base and cameras are symmetric about y = 0
    # Colour permutation of the scene and its instruction together (bridgevla/data/recolour.py); off by default.
    recolour: RecolourConfig = field(default_factory=RecolourConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.translation <= 1.0:
            raise ValueError(f"augment.translation must lie in [0, 1], got {self.translation}")
        if not 0.0 <= self.yaw_degrees <= 180.0:
            raise ValueError(f"augment.yaw_degrees must lie in [0, 180], got {self.yaw_degrees}")
        if not 0.0 <= self.mirror_probability <= 1.0:
            raise ValueError(f"augment.mirror_probability must lie in [0, 1], got {self.mirror_probability}")
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


def swap_sides(text: str) -> str:
    """An instruction for the mirror image: "left" and "right" (whole words, any of three cases) trade places."""
    return _SIDES.sub(lambda m: _OTHER_SIDE[m.group(0)], text)


def sample_mirror(target_position: Tensor, bounds: SceneBounds, cfg: AugmentConfig,
                  generator: torch.Generator | None = None) -> Tensor:
    """(B,) bool: which samples become their mirror image — drawn with ``cfg.mirror_probability``, and only where the
    mirrored target stays inside the bounds (an asymmetric box could otherwise push it out)."""
    b = target_position.shape[0]
    draw = torch.rand(b, generator=generator, device=target_position.device) < cfg.mirror_probability
    mirrored = mirror_points(target_position, 1, cfg.mirror_plane_y)
    lo, hi = target_position.new_tensor(bounds.lo), target_position.new_tensor(bounds.hi)
    return draw & ((mirrored >= lo) & (mirrored <= hi)).all(-1)


def mirror_clouds(points: Tensor, target_position: Tensor, target_quaternion: Tensor, flip: Tensor,
                  plane_y: float) -> tuple[Tensor, Tensor, Tensor]:
    """Replace the samples where ``flip`` (B,) is set by their mirror image in the plane y = ``plane_y``."""
    f3 = flip[:, None]
    return (torch.where(flip[:, None, None], mirror_points(points, 1, plane_y), points),
            torch.where(f3, mirror_points(target_position, 1, plane_y), target_position),
            torch.where(f3, mirror_gripper_quaternions(target_quaternion, 1), target_quaternion))


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
    target_quaternion): the mirror image where ``cfg.mirror_probability`` draws it, the rigid perturbation, then
    the colour permutation when ``cfg.recolour`` asks for it. With the mirror off no random number is drawn for it,
    so the other augmentations see the same stream as before the option existed."""
    if cfg.enabled and cfg.mirror_probability > 0:
        flip = sample_mirror(batch.target_position, bounds, cfg, generator)
        pts, pos, quat = mirror_clouds(batch.points, batch.target_position, batch.target_quaternion, flip,
                                       cfg.mirror_plane_y)
        words = [swap_sides(t) if f else t for t, f in zip(batch.instructions, flip.tolist(), strict=True)]
        batch = dataclasses.replace(batch, points=pts, target_position=pos, target_quaternion=quat, instructions=words)
    pts, mask, pos, quat = augment_clouds(batch.points, batch.mask, batch.target_position, batch.target_quaternion,
                                          bounds, cfg, generator)
    batch = dataclasses.replace(batch, points=pts, mask=mask, target_position=pos, target_quaternion=quat)
    return recolour_batch(batch, cfg.recolour, generator) if cfg.enabled else batch


def step_generator(seed: int, micro_step: int, device: torch.device) -> torch.Generator:
    """The generator for micro-batch ``micro_step``: a pure function of (seed, step), so resumes replay it."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + micro_step * 7919 + 17) % (2**63 - 1))
    return g
