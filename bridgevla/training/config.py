"""Dataclass configs of the trainer (filled through ``bridgevla.configuration``: YAML + ``key=value`` overrides).

Every check lives in ``__post_init__`` so that a bad value fails when the config is built, with a message that
names the key, before any data is read or any model is built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule. Defaults are the reference's (Adam 8e-5, wd 1e-6, no schedule)."""

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 8e-5
    weight_decay: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    # constant: lr throughout; cosine/linear: decay from lr to lr*min_lr_ratio after the warm-up.
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    grad_clip: float = 0.0  # max global grad norm; 0 disables clipping
    grad_accum: int = 1  # micro-batches per optimizer step

    def __post_init__(self) -> None:
        _positive("optim.lr", self.lr)
        _positive("optim.weight_decay", self.weight_decay, allow_zero=True)
        _positive("optim.eps", self.eps)
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"optim.betas must lie in [0, 1), got {self.betas}")
        _positive("optim.warmup_steps", self.warmup_steps, allow_zero=True)
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"optim.min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        _positive("optim.grad_clip", self.grad_clip, allow_zero=True)
        if self.grad_accum < 1:
            raise ValueError(f"optim.grad_accum must be >= 1, got {self.grad_accum}")


@dataclass
class FreezeConfig:
    """Parameters excluded from training. The reference freezes the vision tower, token embeddings and lm_head."""

    vision_tower: bool = False
    embeddings: bool = False
    # Extra regular expressions matched (re.search) against parameter names.
    patterns: list[str] = field(default_factory=list)


@dataclass
class LoraConfig:
    """LoRA adapters through peft, injected into the named sub-modules; everything else but ``trainable`` frozen."""

    enabled: bool = False
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    # Regexes of parameters that stay fully trainable next to the adapters (the freshly initialised heads).
    trainable: list[str] = field(default_factory=lambda: ["head"])

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"lora.rank must be >= 1, got {self.rank}")
        _positive("lora.alpha", self.alpha)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"lora.dropout must lie in [0, 1), got {self.dropout}")
        if self.enabled and not self.target_modules:
            raise ValueError("lora.target_modules must name at least one module when lora.enabled")


@dataclass
class TrainConfig:
    """The loop: how long, how big, where to write, how often to log and checkpoint."""

    out_dir: str = "runs/train"
    steps: int = 1000  # optimizer steps
    batch_size: int = 4  # samples per micro-batch per process
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    # auto: bf16 autocast on CUDA, fp32 on CPU (CPU bf16 autocast is slower than fp32 on most CPUs).
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    num_workers: int = 0  # DataLoader worker processes; 0 loads in the main process
    log_every: int = 10
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    tensorboard: bool = True
    progress: bool = True
    ddp_find_unused_parameters: bool = False
    # Wall-clock budget: stop (with a checkpoint) after this many minutes; 0 = none. Makes a job's duration bounded
    # on a slow or shared machine at the price of a machine-dependent number of steps (the demo uses it as a cap).
    time_limit_minutes: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_workers", "keep_checkpoints", "seed", "time_limit_minutes"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not self.out_dir:
            raise ValueError("train.out_dir must not be empty")
        if self.device != "auto" and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"train.device must be auto, cpu or cuda[:N], got {self.device!r}")
