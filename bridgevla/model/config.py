"""``BridgeVLAConfig``: the policy's settings, with size presets.

Defaults follow the reference recipe (docs/model.md says where we differ). Size-dependent fields default to
``None`` and are filled from the preset in ``__post_init__``, so ``preset=small`` plus an override such as
``text_layers=3`` works from YAML and the command line (``bridgevla.configuration``), and the resolved config
(everything concrete) is what checkpoints store.

With ``backbone_path`` (a local Hugging Face folder holding real PaliGemma weights and processor) the backbone's
architecture fields are left ``None`` here and taken from that folder when the policy is built; explicit values
that disagree with the folder are an error then.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from bridgevla.configuration import from_dict, to_dict
from bridgevla.data.preprocess import MemoryMarkers

Preset = Literal["tiny", "small", "paligemma-3b-224"]

# Fields that describe the PaliGemma backbone itself (taken from the checkpoint folder when backbone_path is set).
BACKBONE_FIELDS = (
    "image_size",
    "patch_size",
    "vision_hidden_size",
    "vision_layers",
    "vision_heads",
    "vision_intermediate_size",
    "text_hidden_size",
    "text_layers",
    "text_heads",
    "text_kv_heads",
    "text_head_dim",
    "text_intermediate_size",
    "vocab_size",
)

PRESETS: dict[str, dict[str, Any]] = {
    # Unit tests: < 5 M parameters, a 4x4 token grid per view.
    "tiny": dict(
        image_size=64, patch_size=16,
        vision_hidden_size=64, vision_layers=2, vision_heads=2, vision_intermediate_size=128,
        text_hidden_size=64, text_layers=2, text_heads=2, text_kv_heads=1, text_head_dim=32,
        text_intermediate_size=128, vocab_size=2048,
        head_hidden_size=32, action_hidden_sizes=[128, 64],
    ),
    # Learns on a CPU in minutes: 64 px views cut into 8 px patches, so each view is an 8x8 token grid (docs/training.md
    # measured it against 96 px / 16 px patches; `make demo` overrides image_size=48, a 6x6 grid at half the cost). Four
    # narrow language layers: grounding a colour word among look-alike objects is what is slow to learn from
    # scratch, and depth there helped most per second of CPU (docs/model.md has the measurements).
    "small": dict(
        image_size=64, patch_size=8,
        vision_hidden_size=128, vision_layers=3, vision_heads=4, vision_intermediate_size=256,
        text_hidden_size=128, text_layers=4, text_heads=8, text_kv_heads=1, text_head_dim=16,
        text_intermediate_size=256, vocab_size=2048,
        head_hidden_size=64, action_hidden_sizes=[256, 128],
    ),
    # The reference: google/paligemma-3b-pt-224 (SigLIP-So400m/14 + Gemma-2B) and its head sizes.
    "paligemma-3b-224": dict(
        image_size=224, patch_size=14,
        vision_hidden_size=1152, vision_layers=27, vision_heads=16, vision_intermediate_size=4304,
        text_hidden_size=2048, text_layers=18, text_heads=8, text_kv_heads=1, text_head_dim=256,
        text_intermediate_size=16384, vocab_size=257216,
        head_hidden_size=4096, action_hidden_sizes=[4096, 2048],
    ),
}

# Settings that change speed but not the maths: a saved policy can be loaded with other values of these
# (BridgeVLAPolicy.from_pretrained(dir, compile="model", ...)).
RUNTIME_FIELDS = ("attn_implementation", "gradient_checkpointing", "static_shapes", "compile", "compile_mode")


def check_runtime(runtime: dict[str, Any], where: str) -> None:
    """A job's ``runtime`` overrides for ``from_pretrained`` (eval, serve): only ``RUNTIME_FIELDS``, checked when the
    job's config is built rather than in a worker after the environments have started."""
    unknown = sorted(set(runtime) - set(RUNTIME_FIELDS))
    if unknown:
        raise ValueError(f"{where}.runtime: only the runtime settings {list(RUNTIME_FIELDS)} can be set, got {unknown}")

REFERENCE_BOUNDS_LIST = [-0.3, -0.5, 0.6, 0.7, 0.5, 1.6]

# Sanity limits, far above any real model (PaliGemma-3B: vocabulary 257 216, widths <= 16 384, 27 layers), so that a
# crafted config (a 1e12 vocabulary in a downloaded checkpoint) is refused before anything is allocated.
SIZE_LIMITS: dict[str, int] = {
    "image_size": 4096, "patch_size": 4096, "vocab_size": 1 << 21, "tokenizer_vocab_size": 1 << 21,
    "vision_layers": 512, "text_layers": 512, "vision_heads": 1024, "text_heads": 1024, "text_kv_heads": 1024,
    "vision_hidden_size": 1 << 16, "text_hidden_size": 1 << 16, "text_head_dim": 4096,
    "vision_intermediate_size": 1 << 18, "text_intermediate_size": 1 << 18, "head_hidden_size": 1 << 16,
    "decode_grid_res": 4096, "max_text_tokens": 1 << 16, "num_rotation_bins": 3600, "rotation_pe_frequencies": 64,
}
MAX_PARAMETERS = 50_000_000_000  # the estimate of estimated_parameters() above which a config is refused


def _as_list(name: str, value: Any, length: int | None = None) -> list:
    """A list/tuple field given as something else (a mapping, a bare string) is an error, not iterated."""
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{name} must be a list, got {type(value).__name__} {value!r:.60}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name} needs {length} values, got {len(value)}")
    return list(value)


def _as_floats(name: str, value: Any, length: int) -> list[float]:
    items = _as_list(name, value, length)
    try:
        out = [float(v) for v in items]
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must hold numbers, got {items!r:.80}") from e
    if not all(math.isfinite(v) for v in out) or any(isinstance(v, bool) for v in items):
        raise ValueError(f"{name} must hold finite numbers, got {items!r:.80}")
    return out


@dataclass
class BridgeVLAConfig:
    """All settings of :class:`bridgevla.model.policy.BridgeVLAPolicy`. ``None`` = take it from ``preset``."""

    preset: Preset = "paligemma-3b-224"
    # Local folder with real PaliGemma weights + processor in the Hugging Face layout (save_pretrained output).
    backbone_path: str | None = None

    # --- backbone architecture (PaliGemma = SigLIP vision tower + Gemma language model) ---
    image_size: int | None = None  # rendered view size, pixels (also the SigLIP input size)
    patch_size: int | None = None  # SigLIP patch; the token grid per view is image_size / patch_size
    vision_hidden_size: int | None = None
    vision_layers: int | None = None
    vision_heads: int | None = None
    vision_intermediate_size: int | None = None
    text_hidden_size: int | None = None
    text_layers: int | None = None
    text_heads: int | None = None
    text_kv_heads: int | None = None
    text_head_dim: int | None = None
    text_intermediate_size: int | None = None
    vocab_size: int | None = None  # grown to the tokenizer's size when smaller
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"  # weights; the reference trains in bf16
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    gradient_checkpointing: bool = False  # recompute activations in backward: less memory, ~30% more compute

    # --- runtime speed options (no effect on the maths; docs/PERFORMANCE.md) ---
    # Prompts padded to max_text_tokens, so every call has the same shapes (what compiled graphs and CUDA graphs
    # need; implied by compile != "none"); costs the padding tokens (masked, so the outputs do not change).
    static_shapes: bool = False
    # torch.compile of the backbone: "layers" compiles each transformer layer (identical layers share one compiled
    # graph, so compiling takes seconds, not minutes); "model" compiles backbone + heatmap head as one graph, which
    # both stages share (fewest kernel launches; longest compile).
    compile: Literal["none", "layers", "model"] = "none"
    # torch.compile's mode: "reduce-overhead" also records CUDA graphs (one launch per graph instead of one per
    # kernel), the main lever at batch 1 on a GPU.
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"

    # --- input ---
    # Cameras whose clouds act() fuses (empty = all in the observation); the training dataset uses the same list.
    cameras: list[str] = field(default_factory=list)
    # Extra rendered channels beside RGB (the reference feeds RGB only): "depth" (1) and/or "xyz" (3, cube coords).
    extra_channels: list[Literal["depth", "xyz"]] = field(default_factory=list)
    # Point budget: a random subset of this many points of each cropped cloud, in training and in act() alike
    # (rendering cost is linear in it); 0 keeps every point (the reference).
    max_points: int = 0
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # SigLIP's normalisation; real processors override
    image_std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    max_text_tokens: int = 48  # longer instructions are cut
    tokenizer_vocab_size: int = 2048  # offline tokenizer only
    tokenizer_extra_text: list[str] = field(default_factory=list)  # extra words for the offline tokenizer's BPE

    # --- heads ---
    head_hidden_size: int | None = None  # heatmap head conv width (reference 4096)
    action_hidden_sizes: list[int] | None = None  # rotation/gripper/collision MLP (reference [4096, 2048])
    # "bins": the reference's 3 x num_rotation_bins Euler classifiers (autoregressive); "6d": a continuous 6D rotation
    # (two matrix columns, Gram-Schmidt) regressed with a matrix L2 loss — BridgeVLA reports +2.3 points on RLBench
    # for a continuous head. Predictions still carry rotation_bins (of the decoded quaternion) either way.
    rotation_head: Literal["bins", "6d"] = "bins"
    # Memory of the episode so far: the last N executed keyposes are drawn into the cloud as small marker spheres
    # (bridgevla.data.preprocess.add_memory_markers), so progress the scene does not show (a pressed button springs
    # back) is visible in every view. 0 = off (the reference). act() then needs the keyposes executed so far.
    memory_keyposes: int = 0
    memory_marker_radius: float = 0.015  # metres
    memory_marker_points: int = 48
    num_rotation_bins: int = 72  # per Euler axis (5 degrees)
    rotation_pe_frequencies: int = 8  # sinusoidal encoding of earlier bins for the autoregressive rotation head
    rotation_bin_noise: tuple[int, int] = (-2, 1)  # teacher-forcing noise added to earlier bins, inclusive range

    # --- geometry / coarse-to-fine ---
    bounds: list[float] = field(default_factory=lambda: list(REFERENCE_BOUNDS_LIST))  # xyz min, xyz max (metres)
    splat_radius: float = 0.012  # cube units
    zoom_factor: float = 4.0  # stage 2 magnification around the stage-1 point
    stage1_noise: float = 0.1  # training: stage-2 centre = truth + U(±noise) per axis, cube units (±5 cm default)
    decode_grid_res: int | None = None  # translation decode grid per axis; None = image_size (exact)

    # --- losses ---
    heatmap_sigma: float = 1.5  # pixels
    heatmap_cutoff: float = 3.0  # sigmas

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        p = PRESETS[self.preset]
        for name, value in p.items():
            if getattr(self, name) is None and not (self.backbone_path and name in BACKBONE_FIELDS):
                setattr(self, name, list(value) if isinstance(value, list) else value)
        self.extra_channels = _as_list("extra_channels", self.extra_channels)
        cameras = _as_list("cameras", self.cameras)
        if not all(isinstance(c, str) and c for c in cameras):
            raise ValueError(f"cameras must be a list of camera names, got {cameras!r:.80}")
        self.cameras = cameras
        self.bounds = _as_floats("bounds", self.bounds, 6)
        self.image_mean = tuple(_as_floats("image_mean", self.image_mean, 3))
        self.image_std = tuple(_as_floats("image_std", self.image_std, 3))
        self._validate()

    def _validate(self) -> None:
        for name in ("compile", "compile_mode"):
            allowed = typing.get_args(typing.get_type_hints(BridgeVLAConfig)[name])
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in (*BACKBONE_FIELDS, "head_hidden_size", "decode_grid_res", "tokenizer_vocab_size",
                     "max_text_tokens", "num_rotation_bins", "rotation_pe_frequencies"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
            if v is not None and name in SIZE_LIMITS and v > SIZE_LIMITS[name]:
                raise ValueError(f"{name}={v} exceeds the sanity limit {SIZE_LIMITS[name]} (a corrupted or crafted "
                                 "config?)")
        if self.image_size is not None and self.patch_size is not None and self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.action_hidden_sizes is not None:
            sizes = _as_list("action_hidden_sizes", self.action_hidden_sizes)
            if not sizes or len(sizes) > 16 or not all(
                isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= SIZE_LIMITS["head_hidden_size"]
                for h in sizes
            ):
                raise ValueError(f"action_hidden_sizes must be 1 to 16 positive ints <= "
                                 f"{SIZE_LIMITS['head_hidden_size']}, got {self.action_hidden_sizes!r:.80}")
        bad = sorted(set(self.extra_channels) - {"depth", "xyz"})
        if bad or len(set(self.extra_channels)) != len(self.extra_channels):
            raise ValueError(f"extra_channels must hold distinct values of ['depth', 'xyz'], got {self.extra_channels}")
        if len(self.bounds) != 6 or any(h <= l for l, h in zip(self.bounds[:3], self.bounds[3:])):
            raise ValueError(f"bounds must be [xmin, ymin, zmin, xmax, ymax, zmax] with max > min, got {self.bounds}")
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError(f"image_mean/image_std need 3 values (std > 0), got {self.image_mean}, {self.image_std}")
        if not isinstance(self.max_points, int) or isinstance(self.max_points, bool) or self.max_points < 0:
            raise ValueError(f"max_points must be an integer >= 0 (0 keeps every point), got {self.max_points!r}")
        for name in ("zoom_factor", "heatmap_sigma", "heatmap_cutoff"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("splat_radius", "stage1_noise"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if self.memory_keyposes < 0 or self.memory_marker_points < 1 or not self.memory_marker_radius > 0:
            raise ValueError(f"memory_keyposes must be >= 0, memory_marker_points >= 1 and memory_marker_radius > 0, "
                             f"got {self.memory_keyposes}, {self.memory_marker_points}, {self.memory_marker_radius}")
        if self.num_rotation_bins < 2:
            raise ValueError(f"num_rotation_bins must be >= 2, got {self.num_rotation_bins}")
        lo, hi = self.rotation_bin_noise
        if lo > hi:
            raise ValueError(f"rotation_bin_noise must be (low, high) with low <= high, got {self.rotation_bin_noise}")
        if self.rotation_pe_frequencies < 1 or self.max_text_tokens < 2 or self.tokenizer_vocab_size < 261:
            raise ValueError("rotation_pe_frequencies must be >= 1, max_text_tokens >= 2, tokenizer_vocab_size >= 261")
        n = self.estimated_parameters()
        if n > MAX_PARAMETERS:
            raise ValueError(f"this config describes a model of about {n / 1e9:.0f}B parameters (> "
                             f"{MAX_PARAMETERS / 1e9:.0f}B): refused before allocating it (a corrupted or crafted "
                             "config?)")

    def estimated_parameters(self) -> int:
        """Rough parameter count of the backbone and heads (0 for fields still unresolved): enough to refuse a
        config that could never be allocated, not an exact figure."""
        g = {k: (getattr(self, k) or 0) for k in (*BACKBONE_FIELDS, "head_hidden_size")}
        vocab = max(g["vocab_size"], self.tokenizer_vocab_size if not self.backbone_path else 0)
        dv, dt = g["vision_hidden_size"], g["text_hidden_size"]
        per_layer = 4 * dv * dv + 2 * dv * g["vision_intermediate_size"]
        vision = 3 * g["patch_size"] ** 2 * dv + g["vision_layers"] * per_layer
        attn = dt * g["text_head_dim"] * (2 * g["text_heads"] + 2 * g["text_kv_heads"])
        text = vocab * dt + g["text_layers"] * (attn + 3 * dt * g["text_intermediate_size"])
        heads = g["head_hidden_size"] * (dt + 9 * g["head_hidden_size"]) + sum(self.action_hidden_sizes or []) * dt
        return int(vision + text + heads + dv * dt)

    # --- conveniences ---
    @classmethod
    def from_preset(cls, preset: Preset, **overrides: Any) -> BridgeVLAConfig:
        return cls(preset=preset, **overrides)

    def memory_markers(self) -> MemoryMarkers | None:
        """The memory settings for the data pipeline and ``act()`` (None when memory is off)."""
        if not self.memory_keyposes:
            return None
        return MemoryMarkers(self.memory_keyposes, self.memory_marker_radius, self.memory_marker_points)

    @property
    def grid_size(self) -> int:
        """Tokens per side of a view's token grid."""
        if self.image_size is None or self.patch_size is None:
            raise ValueError("image_size/patch_size are not resolved yet (backbone_path configs resolve on build)")
        return self.image_size // self.patch_size

    @property
    def num_view_channels(self) -> int:
        return 3 + sum(1 if c == "depth" else 3 for c in self.extra_channels)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BridgeVLAConfig:
        return from_dict(cls, data)

    def replace(self, **changes: Any) -> BridgeVLAConfig:
        return dataclasses.replace(self, **changes)
