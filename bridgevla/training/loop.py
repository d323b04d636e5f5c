"""The training loop: any module with ``compute_loss(batch) -> {"loss": ..., term: ...}`` on any batch source.

Exact resume is a design constraint, not an afterthought. Micro-batch ``k`` is a pure function of
``(seed, k)`` (the batch source derives every sample from it, see ``bridgevla.data.dataset``), augmentation draws from a
generator seeded by ``(seed, k)``, the learning rate is a pure function of the optimizer step, and the global RNG
states the model draws from (stage-2 noise, rotation-bin noise, dropout) are saved in every checkpoint. A run killed
after checkpoint ``s`` and resumed therefore replays steps ``s+1…`` exactly as the uninterrupted run did.

Multi-GPU: launch the same command under ``torchrun --nproc_per_node N -m bridgevla.scripts.cli train ...``; the
trainer sees ``WORLD_SIZE`` > 1, joins the process group and wraps the model in DDP (docs/training.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from tqdm import tqdm

from bridgevla.training.config import FreezeConfig, LoraConfig, OptimConfig, TrainConfig
from bridgevla.training.state import latest_checkpoint, load_checkpoint, save_checkpoint


class BatchSource(Protocol):
    """Yields micro-batches ``start, start+1, …``; micro-batch k must depend only on the source's seed and k."""

    def iterate(self, start: int) -> Iterable[Any]: ...


# prepare(batch, micro_step, device) -> batch on device (augmentation goes here so it can run on the GPU).
PrepareFn = Callable[[Any, int, torch.device], Any]


def lr_factor(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Multiplier of ``optim.lr`` at optimizer step ``step`` (0-based): linear warm-up, then the schedule."""
    if optim.warmup_steps > 0 and step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    span = max(1, total_steps - optim.warmup_steps)
    progress = min(1.0, (step - optim.warmup_steps) / span)
    lo = optim.min_lr_ratio
    if optim.schedule == "cosine":
        return lo + (1.0 - lo) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return lo + (1.0 - lo) * (1.0 - progress)


def apply_freezing(model: torch.nn.Module, freeze: FreezeConfig) -> list[str]:
    """Set ``requires_grad=False`` on matching parameters; returns their names. A pattern matching nothing is an
    error: a silently unfrozen 400M-parameter vision tower is the kind of mistake nobody notices for a week."""
    rules: list[tuple[str, str]] = [(f"freeze.patterns[{i}]", p) for i, p in enumerate(freeze.patterns)]
    if freeze.vision_tower:
        rules.append(("freeze.vision_tower", r"vision_tower\.|vision_model\."))
    if freeze.embeddings:
        rules.append(("freeze.embeddings", r"embed_tokens\.|lm_head\."))
    frozen: list[str] = []
    names = [n for n, _ in model.named_parameters()]
    for key, pattern in rules:
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"{key}: {pattern!r} is not a valid regular expression ({e})") from e
        hits = [n for n in names if rx.search(n)]
        if not hits:
            raise ValueError(f"{key}: no parameter of {type(model).__name__} matches {pattern!r}")
        frozen.extend(hits)
    frozen_set = set(frozen)
    for n, p in model.named_parameters():
        if n in frozen_set:
            p.requires_grad_(False)
    return sorted(frozen_set)


def apply_lora(model: torch.nn.Module, lora: LoraConfig) -> torch.nn.Module:
    """Inject peft LoRA adapters in place; only adapters and ``lora.trainable`` parameters keep gradients."""
    import peft  # imported lazily: peft pulls in transformers, which the tiny-module tests do not need

    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    missing = [t for t in lora.target_modules if t not in names]
    if missing:
        raise ValueError(f"lora.target_modules: {missing} name no sub-module of {type(model).__name__}")
    cfg = peft.LoraConfig(r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=list(lora.target_modules))
    model = peft.inject_adapter_in_model(cfg, model)
    keep = [re.compile(p) for p in lora.trainable]
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n or any(rx.search(n) for rx in keep))
    return model


def build_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("freeze/lora: every parameter is frozen; nothing to train")
    cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
    # foreach=False keeps the update order identical across runs and resumes (and across torch's heuristics).
    return cls(params, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay,
               foreach=False)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else \
            torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device: {name} requested but CUDA is not available")
    return device


class _LossModule(torch.nn.Module):
    """DDP synchronises gradients through ``forward``; route ``compute_loss`` through it."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        return self.model.compute_loss(batch)


def _to_device(batch: Any, device: torch.device) -> Any:
    if hasattr(batch, "to"):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    seconds: float
    data_seconds: float  # time the loop waited for batches
    samples: int
    history: list[dict[str, float]] = field(default_factory=list)
    last_step: int = 0  # optimizer steps done in total (this session and the ones before a resume)
    time_limited: bool = False  # stopped by train.time_limit_minutes before train.steps

    @property
    def steps_per_second(self) -> float:
        return self.steps / max(self.seconds, 1e-9)

    @property
    def data_samples_per_second(self) -> float:
        """Throughput the loader would sustain if the model were free: samples over time spent waiting on data."""
        return self.samples / max(self.data_seconds, 1e-9)


class Trainer:
    """Runs ``cfg.steps`` optimizer steps of ``model.compute_loss`` over ``source``, with checkpoints in
    ``cfg.out_dir/checkpoints`` and logs in ``cfg.out_dir`` (metrics.jsonl, TensorBoard ``tb/``)."""

    def __init__(
        self,
        model: torch.nn.Module,
        source: BatchSource,
        cfg: TrainConfig,
        optim: OptimConfig,
        prepare: PrepareFn | None = None,
        job_config: dict[str, Any] | None = None,
    ) -> None:
        self.cfg, self.optim_cfg = cfg, optim
        self.source, self.prepare = source, prepare
        self.job_config = job_config or {}
        self.device = resolve_device(cfg.device)
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.model = model.to(self.device)
        self.optimizer = build_optimizer(self.model, optim)
        self.out_dir = Path(cfg.out_dir)
        self.ckpt_dir = self.out_dir / "checkpoints"
        self.autocast = cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")
        wrapped = _LossModule(self.model)
        if self.world_size > 1:
            wrapped = torch.nn.parallel.DistributedDataParallel(
                wrapped, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.ddp_find_unused_parameters)
        self.loss_module = wrapped

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def _set_lr(self, step: int) -> float:
        lr = self.optim_cfg.lr * lr_factor(step, self.optim_cfg, self.cfg.steps)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def _micro_step(self, batch: Any, micro: int, sync: bool) -> dict[str, float]:
        batch = self.prepare(batch, micro, self.device) if self.prepare else _to_device(batch, self.device)
        ctx = self.loss_module.no_sync() if (not sync and self.world_size > 1) else contextlib.nullcontext()
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast else contextlib.nullcontext()
        with ctx:
            with amp:
                losses = self.loss_module(batch)
            if "loss" not in losses:
                raise ValueError("model.compute_loss must return a dict with key 'loss'")
            (losses["loss"].float() / self.optim_cfg.grad_accum).backward()
        return {k: float(v.detach()) for k, v in losses.items()}

    def _resume(self) -> int:
        ckpt = latest_checkpoint(self.ckpt_dir)
        if ckpt is None:
            return 0
        loaded = load_checkpoint(ckpt, self.model, self.optimizer)
        return loaded.step

    def _save(self, step: int) -> None:
        if self.is_main:
            save_checkpoint(self.ckpt_dir, step, self.model, self.optimizer, keep_last=self.cfg.keep_checkpoints,
                            extra={"config": self.job_config, "lr": self.optimizer.param_groups[0]["lr"]})
        if self.world_size > 1:
            dist.barrier()

    def fit(self, resume: bool = False, stop_after: int | None = None,
            on_step: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
        """Train to ``cfg.steps``. ``resume`` continues from the latest checkpoint in ``out_dir`` (a fresh start when
        there is none). ``stop_after`` ends early after that optimizer step (tests use it to simulate a kill)."""
        if not resume and latest_checkpoint(self.ckpt_dir) is not None:
            raise ValueError(f"train.out_dir: {self.out_dir} already holds checkpoints; pass --resume to continue "
                             "or choose another out_dir")
        start = self._resume() if resume else 0
        self.out_dir.mkdir(parents=True, exist_ok=True)
        metrics_path = self.out_dir / "metrics.jsonl"
        if self.is_main:
            _truncate_metrics(metrics_path, start)
        writer = None
        if self.cfg.tensorboard and self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events a killed run logged after its last checkpoint, so curves do not double back.
            writer = SummaryWriter(str(self.out_dir / "tb"), purge_step=start + 1 if start else None)
        accum = self.optim_cfg.grad_accum
        batches: Iterator[Any] = iter(self.source.iterate(start * accum))
        end = self.cfg.steps if stop_after is None else min(self.cfg.steps, stop_after)
        bar = tqdm(total=self.cfg.steps, initial=start, desc="train", disable=not (self.cfg.progress and self.is_main),
                   dynamic_ncols=True)
        self.model.train()
        t0, data_time, samples = time.perf_counter(), 0.0, 0
        window: dict[str, list[float]] = {}
        history: list[dict[str, float]] = []
        last: dict[str, float] = {}
        done, time_limited = start, False
        limit_s = self.cfg.time_limit_minutes * 60.0
        for step in range(start, end):
            lr = self._set_lr(step)
            self.optimizer.zero_grad(set_to_none=True)
            terms: dict[str, float] = {}
            for j in range(accum):
                td = time.perf_counter()
                batch = next(batches)
                data_time += time.perf_counter() - td
                samples += _batch_len(batch)
                out = self._micro_step(batch, step * accum + j, sync=j == accum - 1)
                for k, v in out.items():
                    terms[k] = terms.get(k, 0.0) + v / accum
            if not math.isfinite(terms["loss"]):
                raise FloatingPointError(f"loss became {terms['loss']} at step {step + 1}; lower optim.lr?")
            if self.optim_cfg.grad_clip > 0:
                terms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], self.optim_cfg.grad_clip))
            self.optimizer.step()
            last = terms
            for k, v in terms.items():
                window.setdefault(k, []).append(v)
            done = step + 1
            if on_step is not None:
                on_step(done, terms)
            if done % self.cfg.log_every == 0 or done == end:
                row = {"step": done, "lr": lr, **{k: sum(v) / len(v) for k, v in window.items()}}
                window = {}
                history.append(row)
                if self.is_main:
                    with metrics_path.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    if writer is not None:
                        for k, v in row.items():
                            if k != "step":
                                writer.add_scalar(f"train/{k}", v, done)
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            # Every rank must take the same decision, or DDP would hang waiting for the ones that stopped.
            time_limited = limit_s > 0 and done < end and self._agree(time.perf_counter() - t0 > limit_s)
            if done % self.cfg.checkpoint_every == 0 or done == self.cfg.steps or time_limited:
                self._save(done)
            bar.update(1)
            if time_limited:
                tqdm.write(f"train.time_limit_minutes={self.cfg.time_limit_minutes} reached after step {done}")
                break
        bar.close()
        if writer is not None:
            writer.close()
        seconds = time.perf_counter() - t0
        return TrainResult(steps=done - start, final_loss=last.get("loss", float("nan")), seconds=seconds,
                           data_seconds=data_time, samples=samples, history=history, last_step=done,
                           time_limited=time_limited)

    def _agree(self, flag: bool) -> bool:
        """True on every rank when rank 0 says so (a no-op on one process)."""
        if self.world_size == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.broadcast(t, src=0)
        return bool(t.item())


def _batch_len(batch: Any) -> int:
    if hasattr(batch, "instructions"):
        return len(batch.instructions)
    if isinstance(batch, dict):
        first = next(iter(batch.values()))
        return len(first)
    return len(batch)


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep only metric rows up to ``step``: rows a killed run wrote past its last checkpoint are replayed."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if json.loads(r)["step"] <= step]
    path.write_text("".join(r + "\n" for r in kept))
