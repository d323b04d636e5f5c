"""Every GPU figure of docs/PERFORMANCE.md in one run: the PaliGemma-3B policy (random weights, bf16) on one GPU.

Rows (each printed as soon as it is measured, then the whole Markdown table again at the end):
- the GPU: measured bf16 matrix-product TFLOP/s, the yardstick of the compute limit;
- render (3 views, 224², 100k points) and the 224³ fusion decode on the GPU, batch 1 and 8;
- ``act()`` latency per keypose at batch 1 and 8 (CPU preprocessing + upload + both stages on the GPU) and the GPU part
  alone (``predict_on_device``), eager and compiled (per-layer and whole-model ``torch.compile`` with CUDA graphs), with
  the compile time and the ratio to the compute limit (FLOPs of one keypose counted by torch / measured TFLOP/s);
- whether a keypose runs without one host↔device synchronisation (CUDA sync debug mode);
- training samples/s at the reference batch (4): the reference recipe's settings (bf16 weights, Adam, vision tower
  and embeddings frozen) and ours (fused Adam, activation checkpointing at batch 4 and 16).

``--dry-run`` runs the same code on the CPU with the tiny preset (seconds per row, compiling for minutes on a slow
CPU), so the script is known to work before anyone spends GPU time on it. ``--budget-s`` skips the rows that would
start after that many seconds (the script must fit a few minutes of a borrowed GPU); skipped rows say so.

Run: ``bash benchmarks/speed/gpu.sh`` (installs the pinned wheels first) or ``python -m bridgevla.scripts.speed_gpu``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.fileio import atomic_write_text
from benchmarks.protocol import Observation
from benchmarks.speed.common import machine
from bridgevla.data.batch import collate
from bridgevla.model.config import BridgeVLAConfig
from bridgevla.model.policy import BridgeVLAPolicy
from bridgevla.scripts.speed_policy import synthetic_observation
from bridgevla.training.config import OptimConfig
from bridgevla.training.loop import build_optimizer
from pretrain.scenes import tabletop_samples
from rendering import fuse_heatmaps, gaussian_targets, render


@dataclass
class Plan:
    device: str
    preset: str
    dtype: str
    batches: tuple[int, ...]
    train_batches: tuple[int, ...]  # the first is the reference batch
    repeats: int
    matmul_size: int
    points: int
    compile_variants: list[tuple[str, str]]
    observation_size: int = 128
    out: Path | None = None  # the table is rewritten here after every row (a run cut short keeps what it measured)
    header: str = ""
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # (what, setting, figure, note)

    def table(self) -> str:
        lines = ["| what | setting | figure | note |", "|---|---|---|---|"]
        return "\n".join(lines + [f"| {w} | {s} | {f} | {n} |" for w, s, f, n in self.rows])


def gpu_plan(repeats: int) -> Plan:
    return Plan(device="cuda", preset="paligemma-3b-224", dtype="bfloat16", batches=(1, 8), train_batches=(4, 16),
                repeats=repeats, matmul_size=8192, points=100_000,
                compile_variants=[("layers", "reduce-overhead"), ("model", "reduce-overhead")])


def dry_run_plan() -> Plan:
    return Plan(device="cpu", preset="tiny", dtype="float32", batches=(1, 2), train_batches=(2, 3), repeats=2,
                matmul_size=512, points=20_000, observation_size=32,
                compile_variants=[("layers", "reduce-overhead"), ("model", "reduce-overhead")])


class Budget:
    def __init__(self, seconds: float) -> None:
        self.start, self.seconds = time.perf_counter(), seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> bool:
        return self.elapsed() < self.seconds


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(fn: Callable[[], object], device: str, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def add(plan: Plan, what: str, setting: str, figure: str, note: str = "") -> None:
    plan.rows.append((what, setting, figure, note))
    print(f"| {what} | {setting} | {figure} | {note} |", flush=True)
    if plan.out is not None:
        plan.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(plan.out, f"{plan.header}\n\n{plan.table()}\n")  # a timeout kill keeps the last table


def matmul_tflops(plan: Plan) -> float:
    n = plan.matmul_size
    dtype = torch.bfloat16 if plan.device == "cuda" else torch.float32
    a = torch.randn(n, n, dtype=dtype, device=plan.device)
    b = torch.randn(n, n, dtype=dtype, device=plan.device)
    ms = median_ms(lambda: a @ b, plan.device, max(plan.repeats, 10), warmup=3)
    return 2 * n**3 / (ms * 1e-3) / 1e12


def rendering_rows(plan: Plan) -> None:
    g = torch.Generator().manual_seed(0)
    for b in plan.batches:
        pts = torch.rand(b, plan.points, 3, generator=g) * 2 - 1
        pts[:, : plan.points // 2, 2] = -0.5 + 0.01 * pts[:, : plan.points // 2, 2]  # a table-top-like slab
        pts, feats = pts.to(plan.device), torch.rand(b, plan.points, 3, generator=g).to(plan.device)
        ms = median_ms(lambda pts=pts, feats=feats: render(pts, feats, image_size=224), plan.device, plan.repeats)
        add(plan, f"render 3 views 224², {plan.points:,} points", f"batch {b}", f"{ms:.2f} ms")
        heat = gaussian_targets(torch.rand(b, 3, generator=g).to(plan.device) * 1.6 - 0.8, 224)
        ms = median_ms(lambda heat=heat: fuse_heatmaps(heat, 224), plan.device, plan.repeats)
        add(plan, "fusion decode 224³ (dense on GPU, pruned on CPU)", f"batch {b}", f"{ms:.2f} ms")


def build_policy(plan: Plan, **runtime) -> BridgeVLAPolicy:
    """The plan's preset with random weights; static prompt shapes for inference unless ``runtime`` says otherwise."""
    torch.manual_seed(0)
    cfg = BridgeVLAConfig(preset=plan.preset, dtype=plan.dtype, **{"static_shapes": True, **runtime})
    return BridgeVLAPolicy(cfg, device=plan.device).eval()


def free() -> None:
    """Return the memory of the objects the caller just deleted (the next model must not sit next to the last)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def keypose_flops(policy: BridgeVLAPolicy, obs: Observation) -> float:
    batch = collate([_sample(policy, obs)]).to(policy.device)
    ids, attn = policy.encode_instructions(batch.instructions)
    with FlopCounterMode(display=False) as counter:
        policy.predict_on_device(batch, ids, attn)
    return float(counter.get_total_flops())


def _sample(policy: BridgeVLAPolicy, obs: Observation) -> dict:
    from bridgevla.data.preprocess import observation_cloud

    points, colors = observation_cloud(obs, policy.bounds, list(policy.config.cameras) or None)
    return {"points": points, "colors": colors, "instruction": obs.instructions[0]}


def sync_free(policy: BridgeVLAPolicy, obs: Observation) -> str:
    """'yes' when a whole keypose after the input upload runs under CUDA's sync debug mode "error"."""
    if policy.device.type != "cuda":
        return "n/a on CPU"
    batch = collate([_sample(policy, obs)]).to(policy.device)
    ids, attn = policy.encode_instructions(batch.instructions)
    policy.predict_on_device(batch, ids, attn)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        policy.predict_on_device(batch, ids, attn)
        return "yes"
    except RuntimeError as e:
        return f"NO: {str(e).splitlines()[0][:100]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")


def act_rows(plan: Plan, policy: BridgeVLAPolicy, setting: str, obs: Observation, limit_ms: float) -> None:
    for b in plan.batches:
        many = [obs] * b
        act_ms = median_ms(lambda many=many: policy.act(many), plan.device, plan.repeats)
        batch = collate([_sample(policy, obs)] * b).to(policy.device)
        ids, attn = policy.encode_instructions(batch.instructions)
        gpu_ms = median_ms(lambda batch=batch, ids=ids, attn=attn: policy.predict_on_device(batch, ids, attn),
                           plan.device, plan.repeats)
        ratio = f"{gpu_ms / b / limit_ms:.1f}× the compute limit ({limit_ms:.1f} ms)" if limit_ms else ""
        add(plan, f"act() per keypose, batch {b}", setting, f"{act_ms / b:.1f} ms",
            f"GPU part {gpu_ms / b:.1f} ms/keypose; {ratio}")


def training_rows(plan: Plan, budget: Budget) -> None:
    ref_batch, big_batch = plan.train_batches
    settings = [
        (f"reference recipe: {plan.dtype} weights, Adam (for-loop), no checkpointing", ref_batch, "for-loop", False),
        ("fused Adam", ref_batch, "fused", False),
        ("fused Adam + activation checkpointing", ref_batch, "fused", True),
        ("fused Adam + activation checkpointing", big_batch, "fused", True),
    ]
    for name, b, impl, ckpt in settings:
        if not budget.left():
            add(plan, f"training, batch {b}", name, "skipped", "time budget spent")
            continue
        policy = build_policy(plan, gradient_checkpointing=ckpt, static_shapes=False)  # prompts as the trainer pads
        policy.train()
        policy.freeze(vision_tower=True, embeddings=True)  # the reference's frozen set
        opt = build_optimizer(policy, OptimConfig(name="adam", lr=8e-5, weight_decay=1e-6, implementation=impl))
        batch = collate(tabletop_samples(b, seed=1, table_points=20_000)).to(plan.device)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if plan.device == "cuda" else contextlib.nullcontext()

        def step(policy=policy, opt=opt, batch=batch, amp=amp) -> None:
            with amp:  # as the trainer's precision=auto on CUDA
                loss = policy.compute_loss(batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            opt.step()

        try:
            ms = median_ms(step, plan.device, max(3, plan.repeats // 2), warmup=2)
            mem = f"; peak memory {torch.cuda.max_memory_allocated() / 2**30:.0f} GiB" if plan.device == "cuda" else ""
            add(plan, f"training, batch {b}", name, f"{b / (ms * 1e-3):.1f} samples/s", f"{ms:.0f} ms/step{mem}")
        except torch.cuda.OutOfMemoryError:
            add(plan, f"training, batch {b}", name, "out of memory")
        del policy, opt, batch, step
        free()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def run(plan: Plan, budget: Budget) -> None:
    print(f"machine: {machine()}")
    print("| what | setting | figure | note |\n|---|---|---|---|")
    tflops = matmul_tflops(plan)
    add(plan, f"matrix product {plan.matmul_size}³", "bf16" if plan.device == "cuda" else "float32",
        f"{tflops:.3g} TFLOP/s", "the yardstick of the compute limit")
    rendering_rows(plan)
    obs = synthetic_observation(plan.observation_size)
    policy = build_policy(plan)
    flops = keypose_flops(policy, obs)
    limit_ms = flops / (tflops * 1e12) * 1e3
    add(plan, "FLOPs per keypose (both stages, batch 1)", plan.preset, f"{flops / 1e12:.3g} TFLOP",
        f"compute limit {limit_ms:.2f} ms at the measured TFLOP/s")
    add(plan, "keypose without host↔device synchronisation", "eager", sync_free(policy, obs))
    act_rows(plan, policy, "eager", obs, limit_ms)
    del policy
    free()
    training_rows(plan, budget)  # before the compiled rows: those take the longest and come last
    for scope, mode in plan.compile_variants:
        setting = f"compile={scope}, {mode}"
        if not budget.left():
            add(plan, "act() per keypose", setting, "skipped", "time budget spent")
            continue
        policy = build_policy(plan, compile=scope, compile_mode=mode)
        t = time.perf_counter()
        try:
            for b in plan.batches:  # compile (and record graphs) for every batch size before timing
                policy.act([obs] * b)
                policy.act([obs] * b)
            add(plan, "compile + first calls", setting, f"{time.perf_counter() - t:.0f} s",
                f"batch sizes {list(plan.batches)}")
            act_rows(plan, policy, setting, obs, limit_ms)
        except Exception as e:  # a compile failure is a result to report, not a reason to lose the other rows
            add(plan, "act() per keypose", setting, "FAILED", f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
            traceback.print_exc()
        del policy
        free()
        torch._dynamo.reset()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="the same code on the CPU with the tiny preset")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=390.0, help="skip rows that would start after this")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled rows")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    if args.dry_run:
        torch.set_num_threads(1)
        plan = dry_run_plan()
    else:
        if not torch.cuda.is_available():
            raise SystemExit("speed_gpu: no CUDA device (use --dry-run to check the script on the CPU)")
        plan = gpu_plan(args.repeats)
        torch.backends.cuda.matmul.allow_tf32 = True
    if args.no_compile:
        plan.compile_variants = []
    budget = Budget(args.budget_s)
    plan.out = args.out
    kind = " (dry run: tiny preset on the CPU)" if args.dry_run else ""
    plan.header = f"Machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}{kind}."
    run(plan, budget)
    plan.header += f" {budget.elapsed():.0f} s in all."
    print(f"\n{plan.header}\n\n{plan.table()}")
    if plan.out is not None:
        atomic_write_text(plan.out, f"{plan.header}\n\n{plan.table()}\n")  # a timeout kill keeps the last table


if __name__ == "__main__":
    main()
