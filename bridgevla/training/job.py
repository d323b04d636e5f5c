"""``bridgevla train``: build the dataset, the policy and the trainer from one config, train, save the policy.

Outputs in ``train.out_dir``: ``config.yaml`` (the resolved job config), ``checkpoints/`` (resumable training
state), ``metrics.jsonl`` and ``tb/`` (losses), ``loss.png`` (curves), ``policy/`` (``save_pretrained``: what
``bridgevla eval --checkpoint`` loads) and ``summary.json`` (time, steps/s, data samples/s, final loss).
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import yaml

from benchmarks.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text, read_jsonl
from bridgevla.configuration import ConfigError, load_config, to_dict
from bridgevla.data.augment import AugmentConfig, augment_batch, step_generator
from bridgevla.data.batch import PolicyBatch
from bridgevla.data.dataset import DataConfig, KeyframeBatches, KeyframeDataset
from bridgevla.data.recolour import marker_colour_clash
from bridgevla.model.config import BridgeVLAConfig
from bridgevla.training.config import FreezeConfig, LoraConfig, OptimConfig, TrainConfig
from bridgevla.training.loop import Trainer, TrainResult, apply_freezing, apply_lora, resolve_device, trainer_rank
from rendering import SceneBounds


@dataclass
class InitConfig:
    """Start from saved weights instead of a random init: a ``save_pretrained`` directory (e.g. the heatmap
    pre-training output). Real PaliGemma weights are the model's own option, ``model.backbone_path``."""

    checkpoint: str | None = None
    prefixes: list[str] = field(default_factory=lambda: ["backbone.", "heatmap_head."])  # empty: every weight

    def __post_init__(self) -> None:
        if self.checkpoint is not None and not Path(self.checkpoint).is_dir():
            raise ValueError(f"init.checkpoint: {self.checkpoint} is not a directory")


@dataclass
class TrainJobConfig:
    model: BridgeVLAConfig = field(default_factory=lambda: BridgeVLAConfig(preset="small"))
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    freeze: FreezeConfig = field(default_factory=FreezeConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    init: InitConfig = field(default_factory=InitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.model.memory_keyposes > 0 and self.augment.enabled and self.augment.recolour.probability > 0:
            clash = marker_colour_clash(self.augment.recolour)
            if clash:
                raise ValueError(f"augment.recolour.colours {clash} would recolour the memory markers "
                                 f"(model.memory_keyposes={self.model.memory_keyposes}: cyan = open, magenta = "
                                 "closed) and change what they mean; leave those colours out of the permutation")


# Keys that may change between a run and its resume: extending a run or changing how it reports is fine.
_RESUME_MAY_CHANGE = {"train.steps", "train.time_limit_minutes", "train.progress", "train.num_workers",
                      "train.log_every", "train.checkpoint_every", "train.keep_checkpoints", "train.tensorboard",
                      "train.device"}


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_saved_config(path: Path) -> dict[str, Any]:
    """The resolved config a run saved (``config.yaml``), or :class:`ConfigError` naming the file if it is damaged."""
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"--resume: {path} is not readable YAML ({type(e).__name__}: {e}); restore it or remove "
                          "it to resume with the current settings") from e
    if not isinstance(saved, dict):
        raise ConfigError(f"--resume: {path} does not hold a config mapping")
    return saved


def check_resume_config(saved: dict[str, Any], current: dict[str, Any]) -> None:
    """A resume with another model, data or optimizer would not continue the same run: refuse it by name."""
    a, b = _flat(saved), _flat(current)
    changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in _RESUME_MAY_CHANGE)
    if changed:
        raise ValueError(f"--resume: the config differs from the run's saved config.yaml in {changed}; "
                         "resume with the same settings (only train.steps and logging may change)")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_policy(cfg: TrainJobConfig, device: torch.device) -> torch.nn.Module:
    from bridgevla.model.policy import BridgeVLAPolicy

    policy = BridgeVLAPolicy(cfg.model, device=device)
    if cfg.init.checkpoint:
        policy.load_weights(cfg.init.checkpoint, prefixes=list(cfg.init.prefixes) or None)
    apply_freezing(policy, cfg.freeze)
    if cfg.lora.enabled:
        policy = apply_lora(policy, cfg.lora)
    return policy


def make_prepare(bounds: SceneBounds, augment: AugmentConfig, seed: int):
    """Move a batch to the device and augment it there, with a generator that depends only on (seed, step)."""

    def prepare(batch, micro_step: int, device: torch.device):
        batch = batch.to(device, non_blocking=True)
        return augment_batch(batch, bounds, augment, step_generator(seed, micro_step, device))

    return prepare


def plot_loss_curves(metrics_path: Path, png_path: Path, title: str = "training loss") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in read_jsonl(metrics_path, repair=False).records if isinstance(r.get("step"), int)]
    if not rows:
        raise ValueError(f"metrics: {metrics_path} holds no rows to plot")
    steps = [r["step"] for r in rows]
    terms = [k for k in rows[0] if k not in ("step", "lr", "grad_norm")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].plot(steps, [r["loss"] for r in rows], color="black")
    axes[0].set_title(f"{title}: total")
    for k in terms:
        if k != "loss":
            axes[1].plot(steps, [r[k] for r in rows], label=k)
    axes[1].set_title("terms")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("optimizer step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format="png")
    plt.close(fig)
    atomic_write_bytes(png_path, buf.getvalue())


class AuxiliaryTask(Protocol):
    """A second objective trained alongside the demos (co-training): ``pretrain.cotrain.SyntheticGrounding`` keeps
    the heatmap pre-training's synthetic grounding scenes in every batch, so fitting ten demos per task does not
    erase what pre-training taught (docs/training.md measures the erosion). ``batch(k)`` must depend only on ``k``
    (resumes replay it); ``loss`` returns named terms whose ``"loss"`` (already weighted) is added to the policy's;
    ``describe()`` is recorded in ``config.yaml`` under ``auxiliary`` so that a resume with another task is refused.
    Optionally, ``heatmap_samples(batch)`` returns the batch as ``bridgevla.model.policy.HeatmapSamples`` (or
    ``None``) to ride in the demos' backbone pass, and ``heatmap_loss(terms)`` weights their translation terms."""

    name: str

    def batch(self, k: int) -> Any: ...

    def loss(self, policy: torch.nn.Module, batch: Any) -> dict[str, torch.Tensor]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class CoBatch:
    """Micro-batch k of the demos and of the auxiliary task."""

    demos: PolicyBatch
    extra: Any

    @property
    def instructions(self) -> list[str]:  # what the trainer counts as samples: the demos'
        return self.demos.instructions


class _CoTrained(torch.nn.Module):
    """The policy's loss plus the auxiliary task's, as one ``compute_loss`` for the trainer. Auxiliary terms are
    logged as ``<name>_<term>``."""

    def __init__(self, policy: torch.nn.Module, task: AuxiliaryTask) -> None:
        super().__init__()
        self.policy, self.task = policy, task

    def compute_loss(self, batch: CoBatch) -> dict[str, torch.Tensor]:
        # A task whose samples are heatmap-only (co-training's scenes) may ride in the demos' backbone pass.
        joint = getattr(self.task, "heatmap_samples", None)
        samples = joint(batch.extra) if joint is not None else None
        if samples is not None:
            terms = self.policy.compute_loss(batch.demos, extra=samples)
            extra = self.task.heatmap_loss({k.removeprefix("extra_"): terms.pop(k)
                                            for k in [k for k in terms if k.startswith("extra_")]})
        else:
            terms = self.policy.compute_loss(batch.demos)
            extra = self.task.loss(self.policy, batch.extra)
        if "loss" not in extra:
            raise ValueError(f"auxiliary task {self.task.name!r}: loss() must return a dict with key 'loss'")
        named = {f"{self.task.name}_{k}": v for k, v in extra.items() if k != "loss"}
        return {**terms, **named, "loss": terms["loss"] + extra["loss"]}

    def forward(self, batch: CoBatch) -> dict[str, torch.Tensor]:
        return self.compute_loss(batch)


class _CoBatches:
    def __init__(self, source: KeyframeBatches, task: AuxiliaryTask) -> None:
        self.source, self.task = source, task

    def iterate(self, start: int):
        for k, demos in enumerate(self.source.iterate(start), start):
            yield CoBatch(demos, self.task.batch(k))


def run_training(cfg: TrainJobConfig, resume: bool = False, stop_after: int | None = None,
                 auxiliary: AuxiliaryTask | None = None) -> TrainResult:
    """The whole job (see module doc). ``resume`` continues the run in ``train.out_dir``; ``stop_after`` ends it
    after that step without the final save (what a kill does; the resume tests use it). ``auxiliary`` co-trains a
    second objective (:class:`AuxiliaryTask`) in every micro-batch."""
    out = Path(cfg.train.out_dir)
    saved_path = out / "config.yaml"
    current = to_dict(cfg)
    if auxiliary is not None:
        current["auxiliary"] = {"name": auxiliary.name, **auxiliary.describe()}
    rank = trainer_rank()
    if resume and saved_path.is_file():
        check_resume_config(read_saved_config(saved_path), current)
    # Validate the data before spending minutes on a model: a missing dataset is the commonest mistake, and a
    # damaged file must be named now, not at the step that first reads it (KeyframeDataset checks every file).
    dataset = KeyframeDataset(cfg.data, cfg.model.bounds, seed=cfg.train.seed, max_points=cfg.model.max_points,
                              cameras=cfg.model.cameras, memory=cfg.model.memory_markers(),
                              progress=cfg.train.progress and rank == 0)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    policy = build_policy(cfg, device)
    if rank == 0:
        atomic_write_text(saved_path, yaml.safe_dump(current, sort_keys=False))
    source: Any = KeyframeBatches(dataset, cfg.train.batch_size, cfg.train.num_workers, rank=rank)
    prepare = make_prepare(SceneBounds.from_list(cfg.model.bounds), cfg.augment, cfg.train.seed)
    module: torch.nn.Module = policy
    if auxiliary is not None:
        module, source, demo_prepare = _CoTrained(policy, auxiliary), _CoBatches(source, auxiliary), prepare

        def prepare(batch: CoBatch, micro_step: int, device: torch.device) -> CoBatch:
            extra = batch.extra.to(device) if hasattr(batch.extra, "to") else batch.extra
            return CoBatch(demo_prepare(batch.demos, micro_step, device), extra)

    trainer = Trainer(module, source, cfg.train, cfg.optim, prepare=prepare, job_config=current)
    result = trainer.fit(resume=resume, stop_after=stop_after)
    if trainer.is_main and stop_after is None:
        policy.save_pretrained(out / "policy")
        plot_loss_curves(out / "metrics.jsonl", out / "loss.png")
        summary = {
            "steps_this_session": result.steps, "last_step": result.last_step, "steps_planned": cfg.train.steps,
            "stopped_by_time_limit": result.time_limited, "seconds": round(result.seconds, 2),
            "train_steps_per_second": round(result.steps_per_second, 4),
            "train_samples_per_second": round(result.samples / max(result.seconds, 1e-9), 3),
            "data_wait_seconds": round(result.data_seconds, 2),
            "data_samples_per_second_while_waiting": round(result.data_samples_per_second, 2),
            "final_loss": result.final_loss, "samples_per_task": dataset.samples_per_task(),
        }
        atomic_write_json(out / "summary.json", summary)
    return result


def load_job_config(path: str | None, overrides: list[str]) -> TrainJobConfig:
    return load_config(TrainJobConfig, path, overrides)

