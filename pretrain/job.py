"""Heatmap pre-training on synthetic scenes: ``python -m pretrain --config FILE [key=value ...] [--resume]``.

The policy's own backbone and heatmap head learn to put the stage-1 and stage-2 heatmaps on the object a prompt names
(``BridgeVLAPolicy.heatmap_terms``, the same losses fine-tuning uses, minus the action head). The loop is
``bridgevla.training.loop.Trainer``: checkpoints, exact resume, time limit, logs and progress as for fine-tuning.

Outputs in ``train.out_dir``: ``policy/`` (``save_pretrained``; fine-tuning starts from it with
``init.checkpoint=<out_dir>/policy``, which copies the backbone and heatmap head), ``metrics.jsonl``, ``loss.png``,
``checkpoints/`` and ``summary.json`` with the grounding accuracy on held-out scenes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import yaml
from torch import Tensor, nn

from bridgevla.configuration import load_config, to_dict
from bridgevla.model.config import BridgeVLAConfig
from bridgevla.model.heads import soft_cross_entropy
from bridgevla.training.config import OptimConfig, TrainConfig
from bridgevla.training.job import check_resume_config, plot_loss_curves, seed_everything
from bridgevla.training.loop import Trainer, TrainResult, resolve_device
from pretrain.scenes import SceneBatch, SceneConfig, generate_scenes
from rendering import fuse_heatmaps, gaussian_targets, project, zoom

EVAL_SEED_OFFSET = 1_000_003  # held-out scenes come from generator seeds no training batch uses


@dataclass
class PretrainJobConfig:
    model: BridgeVLAConfig = field(default_factory=lambda: BridgeVLAConfig(preset="small"))
    scenes: SceneConfig = field(default_factory=SceneConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4,
                                                                   schedule="cosine", warmup_steps=100,
                                                                   min_lr_ratio=0.05, grad_clip=1.0))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/pretrain", batch_size=8))
    # "single": one of the three views per sample, as its own image (the reference's 2D pre-training), and half the
    # samples seen at the stage-2 zoom. "policy": the policy's two-stage, three-view heatmap losses. Single views
    # give ~5x the grounding examples per second of compute (docs/pretraining.md).
    views: Literal["single", "policy"] = "single"
    zoom_fraction: float = 0.5  # "single": share of samples rendered at the stage-2 zoom around the target
    eval_scenes: int = 256  # held-out scenes scored after training (0 skips)

    def __post_init__(self) -> None:
        if self.views not in ("single", "policy"):
            raise ValueError(f"views must be 'single' or 'policy', got {self.views!r}")
        if not 0.0 <= self.zoom_fraction <= 1.0:
            raise ValueError(f"zoom_fraction must lie in [0, 1], got {self.zoom_fraction}")
        if self.eval_scenes < 0:
            raise ValueError(f"eval_scenes must be >= 0, got {self.eval_scenes}")


class SceneBatches:
    """Trainer batch source: micro-batch k is ``generate_scenes`` from a generator seeded by (seed, k) alone, so a
    resumed run replays the same batches. Generation is ~2 ms per scene, cheap next to a training step."""

    def __init__(self, cfg: SceneConfig, batch_size: int, seed: int) -> None:
        self.cfg, self.batch_size, self.seed = cfg, batch_size, seed

    def batch(self, k: int) -> SceneBatch:
        g = torch.Generator().manual_seed(self.seed * 1_000_000_007 + k)
        return generate_scenes(self.cfg, self.batch_size, g)

    def iterate(self, start: int) -> Iterator[SceneBatch]:
        k = start
        while True:
            yield self.batch(k)
            k += 1


def single_view_inputs(policy: Any, batch: SceneBatch, zoom_fraction: float) -> tuple[Tensor, Tensor, Tensor]:
    """One rendered view per scene (B, C, S, S), its Gaussian target map (B, S, S) and which view it is (B,): a random
    one of the three, at the stage-2 zoom for a ``zoom_fraction`` share of the scenes (torch's global generator draws
    both). The target is projected, not ray-cast: in a side view another object may hide it, as in the policy's."""
    cfg, b, dev = policy.config, len(batch), policy.device
    zoomed = torch.rand(b, device=dev) < zoom_fraction
    noise = (torch.rand(b, 3, device=dev) * 2 - 1) * cfg.stage1_noise
    # Unzoomed scenes stay where they are (centre 0, factor 1); zoomed ones are magnified around the target plus the
    # stage-1 noise, exactly as the policy's stage 2 sees them.
    center = torch.where(zoomed[:, None], batch.target + noise, torch.zeros_like(noise))
    factor = torch.where(zoomed, cfg.zoom_factor, 1.0)
    views = policy.render_views(zoom(batch.points, center, factor), batch.colors, batch.mask)
    pick = torch.randint(0, views.shape[1], (b,), device=dev)
    rows = torch.arange(b, device=dev)
    goals = gaussian_targets(zoom(batch.target, center, factor), policy.image_size, cfg.heatmap_sigma,
                             cfg.heatmap_cutoff)
    return views[rows, pick], goals[rows, pick], pick


class HeatmapPretrainer(nn.Module):
    """Wraps a policy so the trainer sees ``compute_loss(SceneBatch)`` (see ``PretrainJobConfig.views``).

    Random draws (view, zoom, zoom centre) use torch's global generator, as the policy's own losses do, so the
    trainer's seeding and checkpointed RNG state make runs and resumes reproducible."""

    def __init__(self, policy: nn.Module, views: str = "single", zoom_fraction: float = 0.5) -> None:
        super().__init__()
        self.policy, self.views, self.zoom_fraction = policy, views, zoom_fraction

    def compute_loss(self, batch: SceneBatch) -> dict[str, Tensor]:
        if not isinstance(batch, SceneBatch):
            raise ValueError(f"batch must be a SceneBatch, got {type(batch).__name__}")
        policy = self.policy
        batch = batch.to(policy.device)
        if self.views == "policy":
            terms, _, _ = policy.heatmap_terms(batch.points, batch.colors, batch.mask, batch.target,
                                               batch.instructions)
            return {"loss": sum(terms.values()), **terms}
        images, goals, _ = single_view_inputs(policy, batch, self.zoom_fraction)
        loss = soft_cross_entropy(policy.heatmap_logits_2d(images, batch.instructions), goals)
        return {"loss": loss, "heatmap": loss}

    def forward(self, batch: SceneBatch) -> dict[str, Tensor]:
        return self.compute_loss(batch)


@torch.no_grad()
def grounding_accuracy(policy: Any, batch: SceneBatch, views: str = "policy") -> dict[str, float]:
    """Does the heatmap land on the named object? ``accuracy``: the share of scenes whose predicted point lies nearest
    (in the table plane) to the named object's top centre among the objects present.

    ``views="policy"``: three views in one prompt, heatmaps fused into a 3D point (the policy's stage 1);
    ``median_error`` in cube units. ``views="single"``: the top view alone in a one-image prompt, its argmax pixel
    (what single-view pre-training trains); ``median_error_px`` in top-view pixels."""
    policy.eval()
    batch = batch.to(policy.device)
    rendered = policy.render_views(batch.points, batch.colors, batch.mask)
    s = policy.image_size
    if views == "single":
        flat = policy.heatmap_logits_2d(rendered[:, 0], batch.instructions).flatten(1).argmax(-1)
        uv = torch.stack([flat % s, flat // s], -1).float()
        objects = project(batch.centres, s)[..., 0, :2]  # (B, K, 2) top-view pixels
        d = (objects - uv[:, None]).norm(dim=-1)
        err, err_key = (project(batch.target, s)[:, 0, :2] - uv).norm(dim=-1), "median_error_px"
    else:
        ids, attn = policy.encode_instructions(batch.instructions)
        _, logits = policy.heatmap_logits(rendered, ids, attn)
        point = fuse_heatmaps(torch.softmax(logits.flatten(-2), -1).view_as(logits), s)
        d = (batch.centres[..., :2] - point[:, None, :2]).norm(dim=-1)
        err, err_key = (point - batch.target).norm(dim=-1), "median_error"
    hit = d.masked_fill(~batch.present, float("inf")).argmin(-1) == batch.target_index
    return {"accuracy": float(hit.float().mean()), err_key: float(err.median()), "scenes": len(batch), "views": views}


def run_pretraining(cfg: PretrainJobConfig, resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Pre-train (see module doc). ``resume`` continues the run in ``train.out_dir``."""
    from bridgevla.model.policy import BridgeVLAPolicy

    out = Path(cfg.train.out_dir)
    saved_path = out / "config.yaml"
    current = to_dict(cfg)
    if resume and saved_path.is_file():
        check_resume_config(yaml.safe_load(saved_path.read_text()), current)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    policy = BridgeVLAPolicy(cfg.model, device=device)
    out.mkdir(parents=True, exist_ok=True)
    saved_path.write_text(yaml.safe_dump(current, sort_keys=False))
    source = SceneBatches(cfg.scenes, cfg.train.batch_size, cfg.train.seed)
    module = HeatmapPretrainer(policy, cfg.views, cfg.zoom_fraction)
    trainer = Trainer(module, source, cfg.train, cfg.optim, job_config=current)
    result = trainer.fit(resume=resume, stop_after=stop_after)
    if trainer.is_main and stop_after is None:
        policy.save_pretrained(out / "policy")
        plot_loss_curves(out / "metrics.jsonl", out / "loss.png", title="heatmap pre-training loss")
        summary: dict[str, Any] = {
            "steps_this_session": result.steps, "last_step": result.last_step,
            "stopped_by_time_limit": result.time_limited, "seconds": round(result.seconds, 2),
            "train_steps_per_second": round(result.steps_per_second, 4), "final_loss": result.final_loss,
        }
        if cfg.eval_scenes:
            held_out = SceneBatches(cfg.scenes, cfg.eval_scenes, cfg.train.seed + EVAL_SEED_OFFSET).batch(0)
            summary["grounding"] = grounding_accuracy(policy, held_out, cfg.views)
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return result


def load_pretrain_config(path: str | None, overrides: list[str]) -> PretrainJobConfig:
    return load_config(PretrainJobConfig, path, overrides)
