"""Policy speed: ms per ``act()`` (both stages: preprocessing + render + backbone + heads + decode) and per training
step, for the tiny/small presets on the CPU (and on CUDA when present).

Run: ``python -m bridgevla.scripts.speed_policy`` (part of ``make bench``). Figures go to docs/PERFORMANCE.md.
A model is a preset, optionally with config overrides after a colon:
``--models small small:image_size=48,text_layers=2`` times the two side by side in one run (what a comparison of
settings needs on a noisy machine).
The 3B size on a GPU (eager and compiled, batch 1 and 8, training throughput) is ``bridgevla.scripts.speed_gpu``,
run by ``benchmarks/speed/gpu.sh``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.protocol import CameraFrame, Observation
from benchmarks.speed.common import machine, time_ms
from bridgevla.configuration import from_dict, parse_overrides
from bridgevla.data.batch import PolicyBatch, collate
from bridgevla.model.config import BridgeVLAConfig
from bridgevla.model.policy import BridgeVLAPolicy
from pretrain.scenes import tabletop_samples
from rendering import fuse_heatmaps


def synthetic_observation(image_size: int = 128, cameras: int = 4, seed: int = 0) -> Observation:
    """RLBench-like input size: ``cameras`` RGB-D frames of a tilted plane crossing the workspace."""
    rng = np.random.default_rng(seed)
    frames = {}
    for c in range(cameras):
        k = np.array([[image_size * 0.8, 0, image_size / 2], [0, image_size * 0.8, image_size / 2], [0, 0, 1]])
        ext = np.eye(4)
        ext[:3, :3] = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # looking straight down
        ext[:3, 3] = (0.2 + 0.05 * c, 0.0, 1.9)
        u = np.linspace(0, 1, image_size, dtype=np.float32)
        depth = 0.9 + 0.2 * u[None, :] + 0.02 * rng.random((image_size, image_size), dtype=np.float32)
        rgb = rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)
        frames[f"cam{c}"] = CameraFrame(rgb, depth.astype(np.float32), k, ext)
    return Observation(cameras=frames, gripper_pose=np.array([0, 0, 1.2, 0, 0, 0, 1.0]), gripper_open=1.0,
                       joint_positions=np.zeros(7), joint_velocities=np.zeros(7),
                       instructions=["put the red block on the green target"])


def model_config(model: str, dtype: str) -> BridgeVLAConfig:
    """``"small"`` or ``"small:image_size=48,text_layers=2"``: a preset plus BridgeVLAConfig overrides (checked)."""
    preset, _, extra = model.partition(":")
    overrides = [item for item in extra.split(",") if item]
    return from_dict(BridgeVLAConfig, {"preset": preset, "dtype": dtype, **parse_overrides(overrides)})


def bench_preset(model: str, device: str, dtype: str, train_batch: int, repeats: int, profile: bool = False,
                 flops: bool = False, cotrain: int = 0) -> None:
    torch.manual_seed(0)
    policy = BridgeVLAPolicy(model_config(model, dtype), device=device)
    params = sum(p.numel() for p in policy.parameters()) / 1e6
    label = f"{model} ({params:.1f} M, {dtype})"
    obs = synthetic_observation()
    ms = time_ms(lambda: policy.act(obs), device, repeats=repeats)
    print(f"| {device} | {label} | act(), batch 1, {sum(f.depth.size for f in obs.cameras.values()):,} pixels "
          f"| {ms:.1f} |", flush=True)
    # Where act() spends its time, stage by stage (each part timed alone).
    batch = collate(tabletop_samples(1, seed=0, table_points=20_000)).to(device)
    pts, colors, mask = policy._cube_cloud(batch)
    ids, attn = policy.encode_instructions(batch.instructions)
    views = policy.render_views(pts, colors, mask)
    with torch.no_grad():
        heat = torch.softmax(policy.heatmap_logits(views, ids, attn)[1].flatten(2), -1).view_as(views[:, :, 0])
        parts = {
            "render (one stage)": lambda: policy.render_views(pts, colors, mask),
            "backbone + heatmap head (one stage)": lambda: policy.heatmap_logits(views, ids, attn),
            f"fusion decode {policy.image_size}³ (one stage)": lambda: fuse_heatmaps(heat, policy.image_size),
        }
        for name, fn in parts.items():
            ms = time_ms(fn, device, repeats=repeats)
            print(f"| {device} | {label} | {name} | {ms:.1f} |", flush=True)
    # One optimizer step (forward of both stages, backward, Adam).
    train = collate(tabletop_samples(train_batch, seed=1, table_points=20_000))
    opt = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=1e-5)

    def step() -> None:
        out = policy.compute_loss(train)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()

    ms = time_ms(step, device, warmup=1, repeats=max(3, repeats // 2))
    print(f"| {device} | {label} | training step, batch {train_batch} | {ms:.1f} |", flush=True)
    if cotrain:
        bench_cotrain(policy, train, opt, cotrain, device, label, repeats)
    if profile:
        profile_step(step, label)
    if flops:
        flop_split(policy, train, label)


def bench_cotrain(policy: BridgeVLAPolicy, train: PolicyBatch, opt: torch.optim.Optimizer, scenes: int, device: str,
                  label: str, repeats: int) -> None:
    """A co-trained step (the demo's: ``train`` plus ``scenes`` synthetic grounding scenes) with the scenes in a
    backbone pass of their own and in the demos' pass (``cotrain.one_pass``), timed in alternating rounds so that
    a noisy machine's drift hits both alike."""
    from bridgevla.training.job import CoBatch, _CoTrained
    from pretrain.cotrain import CotrainConfig, SyntheticGrounding

    variants = {}
    for one_pass in (False, True):
        task = SyntheticGrounding(CotrainConfig(enabled=True, batch_size=scenes, one_pass=one_pass), seed=0)
        module, batch = _CoTrained(policy, task), CoBatch(train.to(device), task.batch(0).to(device))

        def step(module: _CoTrained = module, batch: CoBatch = batch) -> None:
            out = module.compute_loss(batch)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()

        variants["one pass" if one_pass else "two passes"] = step
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(max(3, repeats // 2)):
        for name, step in variants.items():
            times[name].append(time_ms(step, device, warmup=1, repeats=1))
    for name, ms in times.items():
        print(f"| {device} | {label} | co-trained step, batch {len(train)} + {scenes} scenes, {name} | "
              f"{float(np.median(ms)):.1f} |", flush=True)


# The parts of a training step's forward pass, by the module path torch's FLOP counter reports them under.
FLOP_PARTS = (("vision tower", "Backbone.model.model.vision_tower"),
              ("language model", "Backbone.model.model.language_model"),
              ("heatmap head", "ConvexUpsampleHead"), ("action head", "ActionHead"))


def flop_split(policy: BridgeVLAPolicy, train: PolicyBatch, label: str) -> dict[str, int]:
    """Forward FLOPs of one training step (both stages) by model part, counted (torch.utils.flop_counter), not
    timed: which part a cheaper step has to shrink, independent of the machine's load. Backward is ~2x forward."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, depth=None)
    # The counter has no formula for the CPU's fused attention kernel (SDPA's flash path): attention would count as
    # zero. The eager implementation computes the same products as matmuls, which it counts.
    configs = [policy.backbone.model.config.vision_config, policy.backbone.model.config.text_config]
    before = [c._attn_implementation for c in configs]
    try:
        for c in configs:
            c._attn_implementation = "eager"
        with counter, torch.no_grad():
            policy.compute_loss(train)
    finally:
        for c, b in zip(configs, before):
            c._attn_implementation = b
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    total = counter.get_total_flops()
    print(f"\n{label}: forward FLOPs of one training step, batch {len(train.instructions)}, by part")
    print("| part | GFLOP | share |\n|---|---:|---:|")
    for part, prefix in FLOP_PARTS:
        n = counts.get(prefix, 0)
        print(f"| {part} | {n / 1e9:.2f} | {100 * n / max(total, 1):.0f} % |")
    print(f"| total | {total / 1e9:.2f} | 100 % |", flush=True)
    return {part: counts.get(prefix, 0) for part, prefix in FLOP_PARTS} | {"total": total}


def profile_step(step, label: str, steps: int = 3) -> None:
    """Where a training step's time goes, by operator (self time; torch.profiler): what a throughput change should
    target first (docs/PERFORMANCE.md)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    print(f"\n{label}: {steps} training steps by operator (self CPU time)")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", "--presets", nargs="+", default=["tiny", "small"],
                        help="presets timed on the CPU, each optionally with overrides: small:image_size=48")
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--profile", action="store_true", help="also print a per-operator profile of the training step")
    parser.add_argument("--flops", action="store_true", help="also print the training step's FLOPs by model part")
    parser.add_argument("--cotrain", type=int, default=0, metavar="K",
                        help="also time a step with K co-trained synthetic scenes, in two passes and in one "
                             "(the demo: --train-batch 6 --cotrain 2)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    print(f"| device | model | what | ms (median of {args.repeats}) |")
    print("|---|---|---|---|")
    for model in args.models:  # built first: a mistyped override fails before minutes of timing
        try:
            model_config(model, "float32")
        except ValueError as e:  # ConfigError is one
            parser.error(f"--models {model}: {e}")
    for model in args.models:
        bench_preset(model, "cpu", "float32", args.train_batch, args.repeats, args.profile, args.flops, args.cotrain)
    if torch.cuda.is_available():
        for model in args.models:
            bench_preset(model, "cuda", "float32", args.train_batch, args.repeats)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
