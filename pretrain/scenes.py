"""Synthetic referring-expression scenes for 2D heatmap pre-training: coloured primitives on a table, as point clouds.

A scene is a table plane with 2-5 objects (blocks, flat pads, cylinders), each of a different named colour; the prompt
names one of them ("pick up the red block") and the target is the centre of its top face. With ``relational`` > 0 a
share of the scenes ask for a spatial relation between two named objects instead ("the far side of the red block
from the blue pad"): the target is then beyond the first object's top on the line from the second through it — where a
gripper starts a push of the first object towards the second (slide_block's first keypose), a relation that ten
demos show each colour-direction pairing of about once (docs/training.md). The clouds live in the
renderer's cube frame ([-1, 1]^3), so the heatmap targets come from the same projection as the policy's, and the
model sees the same kind of orthographic point-cloud renders it is later fine-tuned on.

Why synthetic: a from-scratch backbone fine-tuned on ten demos per task sees each colour word as a target once or
twice, far too little to learn that "red" means the red object (docs/training.md measures it). These scenes teach
colour/shape grounding and localisation from unlimited, free, exactly labelled data (DESIGN.md's "synthetic"
detection-style dataset). Everything is generated in batches with torch ops, deterministically from a generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from rendering import REFERENCE_BOUNDS, SceneBounds, bins_to_quaternion, cube_to_world

# Prototypical RGB of common colour words (the names RLBench's and our benchmark's variations use, and a few more).
COLOUR_WORDS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1), "green": (0.1, 0.65, 0.15), "blue": (0.1, 0.25, 0.9), "yellow": (0.95, 0.85, 0.1),
    "cyan": (0.1, 0.8, 0.85), "magenta": (0.85, 0.15, 0.8), "orange": (1.0, 0.5, 0.05),
    "purple": (0.45, 0.15, 0.65), "white": (0.95, 0.95, 0.95), "black": (0.08, 0.08, 0.08),
    "gray": (0.5, 0.5, 0.5), "teal": (0.0, 0.5, 0.5), "navy": (0.0, 0.0, 0.5), "maroon": (0.5, 0.0, 0.0),
    "pink": (1.0, 0.6, 0.7), "brown": (0.45, 0.25, 0.1), "lime": (0.55, 0.95, 0.1), "olive": (0.5, 0.5, 0.0),
}
# Object kinds and the nouns a prompt may use for each.
KINDS: tuple[str, ...] = ("block", "pad", "cylinder")
NOUNS: dict[str, tuple[str, ...]] = {
    "block": ("block", "cube", "box"),
    "pad": ("target", "square", "pad"),
    "cylinder": ("cylinder", "can", "jar"),
}
PHRASES: tuple[str, ...] = ("the {}", "pick up the {}", "touch the {}", "go to the {}", "reach for the {}",
                            "point at the {}", "move to the {}", "grasp the {}")
RELATION_PHRASES: tuple[str, ...] = ("the far side of the {} from the {}", "behind the {}, away from the {}",
                                     "the side of the {} facing away from the {}", "get behind the {} opposite the {}")
GRID = 4  # objects sit in distinct cells of a GRID x GRID layout over the table, so they never overlap


@dataclass
class SceneConfig:
    """How synthetic scenes are drawn. Lengths are cube units (the scene bounds map to [-1, 1])."""

    objects: tuple[int, int] = (2, 5)  # objects per scene, inclusive range
    colours: list[str] = field(default_factory=lambda: list(COLOUR_WORDS))
    table_points: int = 6000
    points_per_object: int = 800
    table_height: tuple[float, float] = (-0.8, -0.5)  # cube z of the table top
    half_size: tuple[float, float] = (0.05, 0.12)  # footprint half-extent of an object
    layout_span: float = 0.8  # objects are placed in [-span, span]^2
    relational: float = 0.0  # share of scenes (of those with >= 2 objects) whose prompt asks for a relation
    relation_distance: float = 3.0  # the relational target lies this many footprint half-sizes beyond the object

    def __post_init__(self) -> None:
        lo, hi = (int(v) for v in self.objects)
        self.objects = (lo, hi)
        if not 1 <= lo <= hi <= GRID * GRID:
            raise ValueError(f"scenes.objects must be (min, max) with 1 <= min <= max <= {GRID * GRID}, got "
                             f"{self.objects}")
        unknown = sorted(set(self.colours) - set(COLOUR_WORDS))
        if unknown:
            raise ValueError(f"scenes.colours: {unknown} not in the palette {sorted(COLOUR_WORDS)}")
        if len(set(self.colours)) < hi:
            raise ValueError(f"scenes.colours: {hi} objects need at least {hi} distinct colours, got "
                             f"{len(set(self.colours))}")
        if self.table_points < 1 or self.points_per_object < 1:
            raise ValueError("scenes.table_points and scenes.points_per_object must be >= 1")
        a, b = self.half_size
        cell_half = self.layout_span / GRID
        if not 0 < a <= b or b * math.sqrt(2) >= cell_half:
            raise ValueError(f"scenes.half_size must be 0 < min <= max with max*sqrt(2) < layout_span/{GRID} "
                             f"({cell_half:.3f}) so objects fit their cells, got {self.half_size}")
        if not -1 <= self.table_height[0] <= self.table_height[1] < 1:
            raise ValueError(f"scenes.table_height must be an increasing pair inside [-1, 1), got {self.table_height}")
        if not 0 < self.layout_span <= 1:
            raise ValueError(f"scenes.layout_span must lie in (0, 1], got {self.layout_span}")
        if not 0.0 <= self.relational <= 1.0:
            raise ValueError(f"scenes.relational must lie in [0, 1], got {self.relational}")
        if not self.relation_distance > 0:
            raise ValueError(f"scenes.relation_distance must be > 0, got {self.relation_distance}")


@dataclass
class SceneBatch:
    """B scenes. ``points``/``colors`` (B, N, 3) cube frame / [0, 1]; ``mask`` (B, N); ``target`` (B, 3) cube frame.
    Ground truth for checks: ``centres`` (B, K, 3) top-face centres, ``present`` (B, K), ``colour_names`` (B, K),
    ``target_index`` (B,) the object the prompt names first (the one whose top or far side is the target).
    ``answers`` (B, K, 3) is where the prompt would point for each choice of object and ``answer_index`` (B,) the
    right choice: for a plain scene the objects' centres and ``target_index``; for a relational one, answer k is the far
    side of the named object from object k (its own centre for k = the named object) and the right one is the second
    object of the prompt. Grounding is scored as "the prediction is nearest the right answer"."""

    points: Tensor
    colors: Tensor
    mask: Tensor
    target: Tensor
    instructions: list[str]
    centres: Tensor
    present: Tensor
    colour_names: list[list[str]]
    target_index: Tensor
    answers: Tensor
    answer_index: Tensor

    def __len__(self) -> int:
        return self.points.shape[0]

    def head(self, n: int) -> SceneBatch:
        """The first ``n`` scenes."""
        take = {k: getattr(self, k)[:n] for k in ("points", "colors", "mask", "target", "centres", "present",
                                                   "target_index", "answers", "answer_index")}
        return SceneBatch(**take, instructions=self.instructions[:n], colour_names=self.colour_names[:n])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SceneBatch:
        move = {k: getattr(self, k).to(device, non_blocking=non_blocking)
                for k in ("points", "colors", "mask", "target", "centres", "present", "target_index", "answers",
                          "answer_index")}
        return SceneBatch(**move, instructions=self.instructions, colour_names=self.colour_names)


def _u(g: torch.Generator, *shape: int, lo: float = 0.0, hi: float = 1.0) -> Tensor:
    return torch.rand(*shape, generator=g) * (hi - lo) + lo


def _box_surface(half: Tensor, g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
    """Points (B, K, n, 3) on the top and four sides of boxes with half extents ``half`` (B, K, 3), in the box frame,
    area-uniform; and a per-point shade (B, K, n) (top lit, sides darker) standing in for the simulator's lighting."""
    hx, hy, hz = half.unbind(-1)
    areas = torch.stack([hx * hy, hy * hz, hy * hz, hx * hz, hx * hz], -1)  # top, +x, -x, +y, -y
    b, k = half.shape[:2]
    face = torch.multinomial(areas.reshape(b * k, 5), n, replacement=True, generator=g).view(b, k, n)
    uv = _u(g, b, k, n, 2, lo=-1.0, hi=1.0)
    h = half[:, :, None, :].expand(b, k, n, 3)
    x, y, z = uv[..., 0] * h[..., 0], uv[..., 1] * h[..., 1], uv[..., 1] * h[..., 2]
    top = face == 0
    xs = (face == 1) | (face == 2)
    ys = (face == 3) | (face == 4)
    sign = torch.where((face == 1) | (face == 3), 1.0, -1.0)
    px = torch.where(xs, sign * h[..., 0], x)
    py = torch.where(ys, sign * h[..., 1], torch.where(xs, uv[..., 0] * h[..., 1], y))
    pz = torch.where(top, h[..., 2], z)
    shade = torch.where(top, 1.0, torch.where(xs, 0.75, 0.6))
    return torch.stack([px, py, pz], -1), shade


def _cylinder_surface(radius: Tensor, half_h: Tensor, g: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
    """Points (B, K, n, 3) on the top disc and the side of upright cylinders, area-uniform, and their shade."""
    b, k = radius.shape
    r, hh = radius[..., None], half_h[..., None]
    p_top = r / (r + 4 * hh)  # disc area / (disc + side) = pi r^2 / (pi r^2 + 2 pi r * 2 hh)
    top = _u(g, b, k, n) < p_top
    ang = _u(g, b, k, n, hi=2 * math.pi)
    rad = torch.where(top, r * _u(g, b, k, n).sqrt(), r)
    z = torch.where(top, hh, _u(g, b, k, n, lo=-1.0) * hh)
    shade = torch.where(top, 1.0, 0.6 + 0.25 * ang.cos())
    return torch.stack([rad * ang.cos(), rad * ang.sin(), z], -1), shade


def generate_scenes(cfg: SceneConfig, batch_size: int, generator: torch.Generator) -> SceneBatch:
    """``batch_size`` scenes drawn from ``generator`` (see the module doc). Same generator state, same scenes."""
    g, b, k, n = generator, batch_size, cfg.objects[1], cfg.points_per_object
    count = torch.randint(cfg.objects[0], cfg.objects[1] + 1, (b,), generator=g)
    present = torch.arange(k)[None] < count[:, None]  # (B, K)
    # Distinct colours and grid cells per scene: argsort of uniform noise is a random permutation per row.
    palette = torch.tensor([COLOUR_WORDS[c] for c in cfg.colours])
    colour_idx = _u(g, b, len(cfg.colours)).argsort(-1)[:, :k]
    cells = _u(g, b, GRID * GRID).argsort(-1)[:, :k]
    kind = torch.randint(0, len(KINDS), (b, k), generator=g)
    half = _u(g, b, k, lo=cfg.half_size[0], hi=cfg.half_size[1])
    aspect = _u(g, b, k, lo=0.6, hi=1.0)  # the short side of a box footprint
    height = torch.where(kind == 1, 0.012, half * _u(g, b, k, lo=0.6, hi=1.4))  # pads are flat
    yaw = _u(g, b, k, hi=math.pi)

    # Jittered grid: each object may move inside its cell as far as its footprint radius allows.
    cell = 2 * cfg.layout_span / GRID
    centre_xy = torch.stack([cells // GRID, cells % GRID], -1) * cell - cfg.layout_span + cell / 2
    slack = (cell / 2 - half * math.sqrt(2)).clamp(min=0.0)
    centre_xy = centre_xy + _u(g, b, k, 2, lo=-1.0, hi=1.0) * slack[..., None]
    table_z = _u(g, b, lo=cfg.table_height[0], hi=cfg.table_height[1])

    box_half = torch.stack([half, half * aspect, height], -1)
    box_pts, box_shade = _box_surface(box_half, g, n)
    cyl_pts, cyl_shade = _cylinder_surface(half, height, g, n)
    is_cyl = (kind == 2)[..., None, None]
    local = torch.where(is_cyl, cyl_pts, box_pts)
    shade = torch.where(is_cyl[..., 0], cyl_shade, box_shade)
    c, s = yaw.cos()[..., None], yaw.sin()[..., None]
    x = c * local[..., 0] - s * local[..., 1] + centre_xy[..., None, 0]
    y = s * local[..., 0] + c * local[..., 1] + centre_xy[..., None, 1]
    z = local[..., 2] + (table_z[:, None] + height)[..., None]
    obj_pts = torch.stack([x, y, z], -1)  # (B, K, n, 3)
    brightness = _u(g, b, k, lo=0.75, hi=1.1)[..., None, None]
    obj_rgb = palette[colour_idx][:, :, None, :] * shade[..., None] * brightness

    t = cfg.table_points
    table_pts = torch.cat([_u(g, b, t, 2, lo=-1.0, hi=1.0), table_z[:, None, None].expand(b, t, 1)], -1)
    table_rgb = (_u(g, b, 1, 1, lo=0.4, hi=1.0) * torch.tensor([1.0, 0.9, 0.75])
                 * _u(g, b, 1, 3, lo=0.85, hi=1.15)).expand(b, t, 3)

    points = torch.cat([table_pts, obj_pts.reshape(b, k * n, 3)], 1)
    colors = torch.cat([table_rgb, obj_rgb.reshape(b, k * n, 3)], 1)
    colors = (colors + 0.02 * torch.randn(colors.shape, generator=g)).clamp(0.0, 1.0)
    mask = torch.cat([torch.ones(b, t, dtype=torch.bool), present[..., None].expand(b, k, n).reshape(b, k * n)], 1)

    target_index = (_u(g, b) * count).long().clamp(max=k - 1)
    centres = torch.cat([centre_xy, (table_z[:, None] + 2 * height)[..., None]], -1)
    target = centres[torch.arange(b), target_index]
    names = [[cfg.colours[i] for i in row] for row in colour_idx.tolist()]
    phrase = torch.randint(0, len(PHRASES), (b,), generator=g).tolist()
    noun = torch.randint(0, 3, (b,), generator=g).tolist()
    ti, kinds = target_index.tolist(), kind.tolist()
    instructions = [PHRASES[phrase[i]].format(f"{names[i][ti[i]]} {NOUNS[KINDS[kinds[i][ti[i]]]][noun[i]]}")
                    for i in range(b)]
    answers, answer_index = centres, target_index
    if cfg.relational > 0:  # drawn last and only when asked for: plain scenes stay those of earlier versions
        target, answers, answer_index, instructions = _relations(cfg, g, centres, half, count, target_index, names,
                                                                 kind, noun, instructions)
    return SceneBatch(points=points, colors=colors, mask=mask, target=target, instructions=instructions,
                      centres=centres, present=present, colour_names=names, target_index=target_index,
                      answers=answers, answer_index=answer_index)


def _relations(cfg: SceneConfig, g: torch.Generator, centres: Tensor, half: Tensor, count: Tensor, named: Tensor,
               names: list[list[str]], kind: Tensor, noun: list[int], instructions: list[str],
               ) -> tuple[Tensor, Tensor, Tensor, list[str]]:
    """Turn a ``cfg.relational`` share of the scenes into "the far side of <named> from <other>" (module doc)."""
    b, k = half.shape
    rows = torch.arange(b)
    relational = (_u(g, b) < cfg.relational) & (count >= 2)
    # Another present object: a uniform offset of 1 .. count-1 from the named one, modulo the count.
    other = (named + 1 + (_u(g, b) * (count - 1)).long().clamp(max=k - 2)) % count
    phrase = torch.randint(0, len(RELATION_PHRASES), (b,), generator=g).tolist()
    # Far side of the named object from each object j: beyond its centre along (named - j), in the table plane.
    anchor = centres[rows, named]  # (B, 3)
    away = anchor[:, None, :2] - centres[..., :2]  # (B, K, 2)
    unit = away / away.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    reach = (cfg.relation_distance * half[rows, named])[:, None, None]
    # Kept inside the cube (a target outside cannot be rendered): at most a few hundredths, for corner objects.
    far_xy = (anchor[:, None, :2] + reach * unit).clamp(-0.98, 0.98)
    far = torch.cat([far_xy, anchor[:, None, 2:].expand(b, k, 1)], -1)
    is_named = torch.arange(k)[None] == named[:, None]
    far = torch.where(is_named[..., None], centres, far)
    answers = torch.where(relational[:, None, None], far, centres)
    answer_index = torch.where(relational, other, named)
    target = answers[rows, answer_index]

    def label(i: int, j: int) -> str:
        return f"{names[i][j]} {NOUNS[KINDS[int(kind[i, j])]][noun[i]]}"

    nm, ot, rel = named.tolist(), other.tolist(), relational.tolist()
    instructions = [RELATION_PHRASES[phrase[i]].format(label(i, nm[i]), label(i, ot[i])) if rel[i]
                    else instructions[i] for i in range(b)]
    return target, answers, answer_index, instructions


def tabletop_samples(
    count: int,
    seed: int = 0,
    bounds: SceneBounds = REFERENCE_BOUNDS,
    table_points: int = 4096,
    points_per_object: int = 400,
    objects: tuple[int, int] = (3, 3),
) -> list[dict[str, Any]]:
    """``count`` scenes as policy training samples in ``collate``'s format (world metres, colours in [0, 1]).

    The same scenes as :func:`generate_scenes`, mapped from the cube to the world through ``bounds``, with random
    keypose targets: the position is the named object's top-face centre, the rotation a random bin triple with
    |pitch| < 90° (so Euler bins are canonical), gripper and collision flags random. Used by the policy's tests
    (overfitting, save/load) and its speed benchmark, where a scene with a known answer and no simulator is needed.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    g = torch.Generator().manual_seed(seed)
    cfg = SceneConfig(objects=objects, table_points=table_points, points_per_object=points_per_object)
    scenes = generate_scenes(cfg, count, g)
    points = cube_to_world(scenes.points, bounds)
    target = cube_to_world(scenes.target, bounds)
    bins = torch.stack([torch.randint(0, 72, (count,), generator=g), torch.randint(20, 52, (count,), generator=g),
                        torch.randint(0, 72, (count,), generator=g)], -1)
    quats = bins_to_quaternion(bins)
    flags = torch.randint(0, 2, (count, 2), generator=g).float()
    return [{"points": points[i][scenes.mask[i]], "colors": scenes.colors[i][scenes.mask[i]],
             "instruction": scenes.instructions[i], "target_position": target[i], "target_quaternion": quats[i],
             "target_gripper_open": flags[i, 0], "target_ignore_collisions": flags[i, 1]} for i in range(count)]
