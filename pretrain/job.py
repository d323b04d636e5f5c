"""Heatmap pre-training: ``python -m pretrain --config FILE [key=value ...] [--resume]`` (docs/pretraining.md).

The policy's own backbone and heatmap head learn to put a 2D heatmap on what a prompt names, on one of three data
sources (``data.source``): synthetic referring-expression scenes (``pretrain.scenes``, the default, no download),
RoboPoint's detection conversations or a COCO-format instances file (``pretrain.detection``, indexed once by
``pretrain.index``, batched by ``pretrain.grounding``); a real source can be mixed with synthetic scenes
(``data.synthetic_fraction``). The loop is ``bridgevla.training.loop.Trainer``: checkpoints, exact resume, time
limit, DDP under ``torchrun``, logs and progress as for fine-tuning.

Outputs in ``train.out_dir``: ``policy/`` (``save_pretrained``; fine-tuning starts from it with
``init.checkpoint=<out_dir>/policy``, which copies the backbone and heatmap head), ``metrics.jsonl``, ``loss.png``,
``checkpoints/``, ``grounding.jsonl`` (held-out grounding every ``eval_every`` steps), ``predictions.png`` (a grid of
held-out predictions), ``data_report.json`` (real sources: what was indexed, skipped, missing or unreadable) and
``summary.json`` with the final held-out grounding.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from torch import Tensor, nn
from tqdm import tqdm

from benchmarks.fileio import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl
from bridgevla.configuration import load_config, to_dict
from bridgevla.model.config import BridgeVLAConfig
from bridgevla.model.heads import heatmap_probs, soft_cross_entropy
from bridgevla.training.config import FreezeConfig, OptimConfig, TrainConfig
from bridgevla.training.job import check_resume_config, plot_loss_curves, read_saved_config, seed_everything
from bridgevla.training.loop import Trainer, TrainResult, apply_freezing, resolve_device
from pretrain.grounding import (
    GroundingBatch,
    GroundingBatches,
    GroundingSamples,
    MixedBatch,
    MixedBatches,
    SampleSettings,
    heldout_batch,
    split_batch,
    steps_for_epochs,
)
from pretrain.index import GroundingIndex, open_index
from pretrain.report import save_prediction_grid
from pretrain.scenes import SceneBatch, SceneConfig, generate_scenes
from rendering import box_grounding, fuse_heatmaps, gaussian_targets, project, zoom

EVAL_SEED_OFFSET = 1_000_003  # held-out scenes come from generator seeds no training batch uses


@dataclass
class GroundingDataConfig:
    """Which data pre-training reads (``data.*``). Real sources are indexed once (``pretrain.index``)."""

    source: Literal["synthetic", "robopoint", "coco"] = "synthetic"
    annotations: str = ""  # robopoint: the conversations JSON/JSONL; coco: an instances_*.json
    images: str = ""  # the folder the annotations' image paths are relative to (default: the annotations' folder)
    # Prompt templates, one drawn per sample, "{}" = the expression (the reference prompts with the expression only;
    # COCO's expressions are bare category names, so e.g. ["{}", "the {}", "point at the {}"] may suit them).
    templates: list[str] = field(default_factory=lambda: ["{}"])
    include_crowd: bool = False  # coco: also train on crowd boxes (iscrowd=1)
    fit: Literal["squash", "center_crop"] = "squash"  # squash = resize, as PaliGemma's processor and the reference
    synthetic_fraction: float = 0.0  # real sources: this share of every micro-batch is synthetic scenes
    eval_samples: int = 256  # real sources: held-out samples (whole images are held out); 0: none
    epochs: float = 0.0  # real sources: > 0 sets train.steps to this many passes over the training split
    index_dir: str = ""  # where indexes live (default: <train.out_dir>/data_index); share it between runs

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "robopoint", "coco"):
            raise ValueError(f"data.source must be synthetic, robopoint or coco, got {self.source!r}")
        if not self.templates or any(t.count("{}") != 1 for t in self.templates):
            raise ValueError(f"data.templates must be non-empty strings with exactly one '{{}}' each, got "
                             f"{self.templates}")
        if not 0.0 <= self.synthetic_fraction < 1.0:
            raise ValueError(f"data.synthetic_fraction must lie in [0, 1), got {self.synthetic_fraction}")
        if self.eval_samples < 0 or self.epochs < 0:
            raise ValueError(f"data.eval_samples and data.epochs must be >= 0, got {self.eval_samples}, "
                             f"{self.epochs}")
        if self.source == "synthetic":
            if self.synthetic_fraction or self.epochs or self.annotations:
                raise ValueError("data.synthetic_fraction, data.epochs and data.annotations apply to "
                                 "data.source=robopoint|coco only")
            return
        if not self.annotations:
            raise ValueError(f"data.annotations: data.source={self.source} needs the annotation file "
                             f"({'the conversations JSON' if self.source == 'robopoint' else 'instances_*.json'})")
        if not Path(self.annotations).is_file():
            raise ValueError(f"data.annotations: {self.annotations} is not a file")
        if not self.images:
            self.images = str(Path(self.annotations).parent)
        if not Path(self.images).is_dir():
            raise ValueError(f"data.images: {self.images} is not a folder")

    @property
    def real(self) -> bool:
        return self.source != "synthetic"


@dataclass
class PretrainJobConfig:
    model: BridgeVLAConfig = field(default_factory=lambda: BridgeVLAConfig(preset="small"))
    data: GroundingDataConfig = field(default_factory=GroundingDataConfig)
    scenes: SceneConfig = field(default_factory=SceneConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4,
                                                                   schedule="cosine", warmup_steps=100,
                                                                   min_lr_ratio=0.05, grad_clip=1.0))
    freeze: FreezeConfig = field(default_factory=FreezeConfig)  # the reference freezes the vision tower
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/pretrain", batch_size=8))
    # "single": one of the three views per sample, as its own image (the reference's 2D pre-training), and half the
    # samples seen at the stage-2 zoom. "policy": the policy's two-stage, three-view heatmap losses. Single views
    # give ~5x the grounding examples per second of compute (docs/pretraining.md). Real images are single views.
    views: Literal["single", "policy"] = "single"
    zoom_fraction: float = 0.5  # "single": share of samples rendered at the stage-2 zoom around the target
    eval_scenes: int = 256  # synthetic scenes held out and scored (synthetic and mixed runs; 0 skips)
    eval_every: int = 0  # score the held-out split every this many steps (grounding.jsonl); 0: at the end only
    predictions: int = 16  # held-out predictions drawn in predictions.png; 0: none

    def __post_init__(self) -> None:
        if self.views not in ("single", "policy"):
            raise ValueError(f"views must be 'single' or 'policy', got {self.views!r}")
        if not 0.0 <= self.zoom_fraction <= 1.0:
            raise ValueError(f"zoom_fraction must lie in [0, 1], got {self.zoom_fraction}")
        if self.eval_scenes < 0 or self.eval_every < 0 or self.predictions < 0:
            raise ValueError(f"eval_scenes, eval_every and predictions must be >= 0, got {self.eval_scenes}, "
                             f"{self.eval_every}, {self.predictions}")
        if self.data.real and self.views != "single":
            raise ValueError(f"views: data.source={self.data.source} trains single images; views=policy needs "
                             "data.source=synthetic")
        if self.data.real and self.model.extra_channels:
            raise ValueError(f"model.extra_channels: photographs have RGB only, {self.model.extra_channels} cannot "
                             f"be trained on data.source={self.data.source}")


class SceneBatches:
    """Trainer batch source: micro-batch k is ``generate_scenes`` from a generator seeded by (seed, k, rank) alone, so
    a resumed run replays the same batches and DDP ranks draw different scenes. Generation is ~2 ms per scene, cheap
    next to a training step."""

    def __init__(self, cfg: SceneConfig, batch_size: int, seed: int, rank: int = 0) -> None:
        self.cfg, self.batch_size, self.seed, self.rank = cfg, batch_size, seed, rank

    def batch(self, k: int) -> SceneBatch:
        g = torch.Generator().manual_seed(self.seed * 1_000_000_007 + k + (self.rank << 40))
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
    """Wraps a policy so the trainer sees ``compute_loss(batch)`` for a SceneBatch (synthetic scenes, see
    ``PretrainJobConfig.views``), a GroundingBatch (real images) or a MixedBatch (both, in one forward pass).

    Random draws (view, zoom, zoom centre) use torch's global generator, as the policy's own losses do, so the
    trainer's seeding and checkpointed RNG state make runs and resumes reproducible."""

    def __init__(self, policy: nn.Module, views: str = "single", zoom_fraction: float = 0.5) -> None:
        super().__init__()
        self.policy, self.views, self.zoom_fraction = policy, views, zoom_fraction

    def compute_loss(self, batch: SceneBatch | GroundingBatch | MixedBatch) -> dict[str, Tensor]:
        if not isinstance(batch, (SceneBatch, GroundingBatch, MixedBatch)):
            raise ValueError(f"batch must be a SceneBatch, GroundingBatch or MixedBatch, got {type(batch).__name__}")
        policy = self.policy
        batch = batch.to(policy.device)
        if isinstance(batch, GroundingBatch):
            loss = soft_cross_entropy(policy.heatmap_logits_2d(batch.float_images(), batch.instructions), batch.goals)
            return {"loss": loss, "heatmap": loss}
        if isinstance(batch, MixedBatch):
            images, goals, _ = single_view_inputs(policy, batch.synthetic, self.zoom_fraction)
            n = len(batch.real)
            logits = policy.heatmap_logits_2d(torch.cat([batch.real.float_images(), images]), batch.instructions)
            real = soft_cross_entropy(logits[:n], batch.real.goals)
            synthetic = soft_cross_entropy(logits[n:], goals.to(batch.real.goals.dtype))
            loss = (n * real + len(images) * synthetic) / (n + len(images))  # the mean over every sample
            return {"loss": loss, "heatmap_real": real, "heatmap_synthetic": synthetic}
        if self.views == "policy":
            terms, _, _ = policy.heatmap_terms(batch.points, batch.colors, batch.mask, batch.target,
                                               batch.instructions)
            return {"loss": sum(terms.values()), **terms}
        images, goals, _ = single_view_inputs(policy, batch, self.zoom_fraction)
        loss = soft_cross_entropy(policy.heatmap_logits_2d(images, batch.instructions), goals)
        return {"loss": loss, "heatmap": loss}

    def forward(self, batch: SceneBatch | GroundingBatch | MixedBatch) -> dict[str, Tensor]:
        return self.compute_loss(batch)


def _nearest_is_right(d: Tensor, batch: SceneBatch, same: float = 0.05) -> Tensor:
    """(B,) bool: is the prediction (its distance ``d`` (B, K) to each answer) nearest to the right answer? Answers
    within ``same`` cube units of the right one are the same place, not a wrong choice: two objects in one line with
    the named one have the same far side (plain scenes' answers, object centres, are never that close)."""
    rows = torch.arange(len(batch), device=d.device)
    right = batch.answers[rows, batch.answer_index]
    distinct = (batch.answers[..., :2] - right[:, None, :2]).norm(dim=-1) > same
    wrong = batch.present & distinct
    return d[rows, batch.answer_index] <= d.masked_fill(~wrong, float("inf")).min(-1).values


@torch.no_grad()
def grounding_accuracy(policy: Any, batch: SceneBatch, views: str = "policy") -> dict[str, float]:
    """Does the heatmap land on the named object? ``accuracy``: the share of scenes whose predicted point lies nearest
    (in the table plane) to the named object's top centre among the objects present (for a relational prompt: to the
    far side of the named object from the right one among the far sides from each object, ``SceneBatch.answers``).

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
        objects = project(batch.answers, s)[..., 0, :2]  # (B, K, 2) top-view pixels
        d = (objects - uv[:, None]).norm(dim=-1)
        err, err_key = (project(batch.target, s)[:, 0, :2] - uv).norm(dim=-1), "median_error_px"
    else:
        ids, attn = policy.encode_instructions(batch.instructions)
        _, logits = policy.heatmap_logits(rendered, ids, attn)
        point = fuse_heatmaps(torch.softmax(logits.flatten(-2), -1).view_as(logits), s)
        d = (batch.answers[..., :2] - point[:, None, :2]).norm(dim=-1)
        err, err_key = (point - batch.target).norm(dim=-1), "median_error"
    hit = _nearest_is_right(d, batch)
    return {"accuracy": float(hit.float().mean()), err_key: float(err.median()), "scenes": len(batch), "views": views}


@torch.no_grad()
def box_grounding_scores(policy: Any, batch: GroundingBatch, chunk: int = 32, keep: int = 0,
                         autocast: bool = False) -> tuple[dict[str, Any], Tensor]:
    """Score held-out real samples: the arg-max pixel of each predicted heatmap against the sample's boxes
    (:func:`rendering.box_grounding`). ``peak_in_box``: the share whose peak lies inside a box of the expression;
    distances are from the peak to the nearest box centre, in pixels of the model's image (and, ``median_distance``,
    as a fraction of its side). Returns the metrics and the probability maps of the first ``keep`` samples."""
    policy.eval()
    s = policy.image_size
    inside, dist, losses, kept = [], [], [], []
    amp = torch.autocast(policy.device.type, dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    for i in range(0, len(batch), chunk):
        part = batch.select(slice(i, i + chunk)).to(policy.device)
        with amp:
            logits = policy.heatmap_logits_2d(part.float_images(), part.instructions).float()
        score = box_grounding(logits, part.boxes, part.valid)
        inside.append(score["inside"].cpu())
        dist.append(score["distance_px"].cpu())
        lp = torch.log_softmax(logits.flatten(1), -1)
        losses.append(-(part.goals.flatten(1) * lp).sum(-1).cpu())
        if i < keep:
            kept.append(heatmap_probs(logits[: keep - i]).cpu())
    d = torch.cat(dist)
    metrics = {"samples": len(batch), "peak_in_box": float(torch.cat(inside).float().mean()),
               "median_distance_px": float(d.median()), "mean_distance_px": float(d.mean()),
               "median_distance": float(d.median()) / s, "image_size": s, "loss": float(torch.cat(losses).mean())}
    return metrics, (torch.cat(kept) if kept else torch.zeros(0, s, s))


@torch.no_grad()
def scene_top_view_predictions(policy: Any, batch: SceneBatch, views: str) -> dict[str, Tensor]:
    """For the picture: each scene's top view, its heatmap (from a one-image prompt for ``views=single``, from the
    three-view prompt otherwise), the peak pixel, the target's pixel and whether the peak is nearest the target."""
    policy.eval()
    batch = batch.to(policy.device)
    rendered = policy.render_views(batch.points, batch.colors, batch.mask)
    s = policy.image_size
    if views == "single":
        logits = policy.heatmap_logits_2d(rendered[:, 0], batch.instructions)
    else:
        ids, attn = policy.encode_instructions(batch.instructions)
        logits = policy.heatmap_logits(rendered, ids, attn)[1][:, 0]
    flat = logits.flatten(1).argmax(-1)
    peak = torch.stack([flat % s, flat // s], -1)
    d = (project(batch.answers, s)[..., 0, :2] - peak[:, None].float()).norm(dim=-1)
    hit = _nearest_is_right(d, batch)
    return {"images": rendered[:, 0, :3].cpu(), "probs": heatmap_probs(logits).cpu(), "peaks": peak.cpu(),
            "hits": hit.cpu(), "targets": project(batch.target, s)[:, 0, :2].cpu()}


class DataReport:
    """Real sources: the index's account (indexed, skipped, missing images) and every image that failed to load
    during training, by path — a set, so a resumed run that replays steps counts nothing twice. ``data_report.json``
    is rewritten whenever it changes."""

    MAX_LISTED = 1000

    def __init__(self, path: Path, index: GroundingIndex, train: int, heldout: int, resume: bool) -> None:
        self.path = path
        self.bad: dict[str, str] = {}
        if resume and path.is_file():
            self.bad = dict(json.loads(path.read_text()).get("unreadable_images", {}))
        meta = index.meta
        self.base = {"index": str(index.directory), "samples": meta["samples"], "train_samples": train,
                     "heldout_samples": heldout, "annotation_records": meta["records"], "skipped": meta["skipped"],
                     "missing_images": meta["missing_images"],
                     "samples_of_missing_images": meta["samples_of_missing_images"],
                     "missing_examples": meta["missing_examples"]}
        self.heldout_bad: list[tuple[str, str]] = []
        self._dirty = True

    def add(self, bad: list[tuple[str, str]]) -> None:
        for path, reason in bad:
            if path not in self.bad:
                self.bad[path] = reason
                self._dirty = True
                if len(self.bad) <= 20:
                    tqdm.write(f"pretrain: skipped image {path}: {reason}")

    def to_dict(self) -> dict[str, Any]:
        listed = dict(list(self.bad.items())[: self.MAX_LISTED])
        return {**self.base, "unreadable_during_training": len(self.bad),
                "unreadable_heldout": len(self.heldout_bad), "unreadable_images": listed,
                "unreadable_heldout_images": dict(self.heldout_bad[: self.MAX_LISTED])}

    def write(self, force: bool = False) -> None:
        if self._dirty or force:
            atomic_write_json(self.path, self.to_dict())
            self._dirty = False


class _Counting:
    """Batch source wrapper that hands every batch's replaced images to the report."""

    def __init__(self, source: Any, report: DataReport) -> None:
        self.source, self.report = source, report

    def iterate(self, start: int) -> Iterator[Any]:
        for batch in self.source.iterate(start):
            self.report.add(batch.real.bad if isinstance(batch, MixedBatch) else batch.bad)
            yield batch


class Evaluator:
    """Held-out grounding during and after training (rank 0 only). Inside a forked RNG and with the policy's
    training mode restored, so evaluating never changes what training does next (exact resume holds)."""

    def __init__(self, cfg: PretrainJobConfig, policy: Any, heldout: GroundingBatch | None, autocast: bool,
                 out: Path) -> None:
        self.cfg, self.policy, self.heldout, self.autocast, self.out = cfg, policy, heldout, autocast, out
        self.scenes = None
        if (not cfg.data.real or cfg.data.synthetic_fraction > 0) and cfg.eval_scenes:
            self.scenes = SceneBatches(cfg.scenes, cfg.eval_scenes, cfg.train.seed + EVAL_SEED_OFFSET).batch(0)
        self._log_started = False

    @contextlib.contextmanager
    def _isolated(self) -> Iterator[None]:
        was_training = self.policy.training
        devices = [self.policy.device.index or 0] if self.policy.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                yield
        finally:
            self.policy.train(was_training)

    def evaluate(self, keep: int = 0) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """({"grounding": real or synthetic metrics, "grounding_synthetic": ... when mixed}, picture data)."""
        out: dict[str, Any] = {}
        picture = None
        with self._isolated():
            if self.heldout is not None:
                metrics, probs = box_grounding_scores(self.policy, self.heldout, self.cfg.train.batch_size, keep,
                                                      self.autocast)
                out["grounding"] = {**metrics, "source": self.cfg.data.source}
                if keep:
                    part = self.heldout.select(slice(0, keep))
                    score = box_grounding(probs, part.boxes, part.valid)
                    picture = {"images": part.images, "probs": probs, "peaks": score["peak"], "hits": score["inside"],
                               "boxes": part.boxes, "valid": part.valid, "captions": part.instructions}
            if self.scenes is not None:
                amp = torch.autocast(self.policy.device.type, dtype=torch.bfloat16) if self.autocast else \
                    contextlib.nullcontext()
                with amp:
                    scenes = grounding_accuracy(self.policy, self.scenes, self.cfg.views)
                    if keep and picture is None:
                        p = scene_top_view_predictions(self.policy, self.scenes.head(keep), self.cfg.views)
                        picture = {**p, "captions": self.scenes.instructions[:keep]}
                out["grounding_synthetic" if "grounding" in out else "grounding"] = scenes
        return out, picture

    def log(self, step: int) -> None:
        """Append the held-out scores at ``step`` to grounding.jsonl (rows a killed run wrote past its last
        checkpoint are dropped on the first call of a resumed run)."""
        self.log_row(step, self.evaluate()[0])

    def log_row(self, step: int, scores: dict[str, Any]) -> None:
        path = self.out / "grounding.jsonl"
        if not self._log_started:
            # One lossless, atomic pass (benchmarks.fileio): torn lines are quarantined, rows past the resume
            # point dropped; never a rewrite in place that a kill could truncate.
            read_jsonl(path, keep=lambda r: not isinstance(r, dict) or int(r.get("step", 0)) < step)
        self._log_started = True
        row = {"step": step, **{f"{k}.{m}": v for k, d in scores.items() for m, v in d.items()
                                if isinstance(v, (int, float)) and m not in ("samples", "scenes", "image_size")}}
        with path.open("a") as f:
            append_jsonl(f, row)
        tqdm.write(f"step {step}: " + describe_grounding(scores.get("grounding")))


def describe_grounding(g: dict[str, Any] | None) -> str:
    """One line for a ``grounding`` entry of summary.json (real or synthetic)."""
    if not g:
        return "no held-out grounding"
    if "peak_in_box" in g:
        return (f"grounding on {g['samples']} held-out {g['source']} samples: peak inside a box {g['peak_in_box']:.1%},"
                f" median distance to the nearest box centre {g['median_distance_px']:.1f} px of "
                f"{g['image_size']} ({g['median_distance']:.1%} of the side)")
    error = (f"{g['median_error_px']:.2f} top-view pixels" if "median_error_px" in g
             else f"{g['median_error']:.3f} cube units")
    return (f"grounding on {g['scenes']} held-out scenes ({g['views']} views): {g['accuracy']:.1%} nearest the "
            f"named object, median error {error}")


def _open_real_data(cfg: PretrainJobConfig, rank: int) -> tuple[GroundingIndex, np.ndarray, np.ndarray]:
    """The index of ``cfg.data`` (built by rank 0 on first use) and its (train ids, held-out ids)."""
    d = cfg.data
    root = d.index_dir or str(Path(cfg.train.out_dir) / "data_index")
    index = open_index(root, d.source, d.annotations, d.images, d.include_crowd, rank=rank,  # type: ignore[arg-type]
                       progress=cfg.train.progress)
    train_ids, eval_ids = index.split(d.eval_samples)
    return index, train_ids, eval_ids


def run_pretraining(cfg: PretrainJobConfig, resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Pre-train (see module doc). ``resume`` continues the run in ``train.out_dir``; ``stop_after`` ends it after
    that step without the final outputs (what a kill does; the resume tests use it)."""
    from bridgevla.model.policy import BridgeVLAPolicy

    out = Path(cfg.train.out_dir)
    saved_path = out / "config.yaml"
    if resume and saved_path.is_file():
        check_resume_config(read_saved_config(saved_path), to_dict(cfg))
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    real_batch, syn_batch = split_batch(cfg.train.batch_size, cfg.data.synthetic_fraction)
    index = None
    if cfg.data.real:
        # The data before the model: a wrong path should fail in seconds, not after building 3B parameters.
        index, train_ids, eval_ids = _open_real_data(cfg, rank)
        if cfg.data.epochs:
            cfg.train.steps = steps_for_epochs(cfg.data.epochs, len(train_ids), real_batch * world,
                                               cfg.optim.grad_accum)
    seed_everything(cfg.train.seed)
    device = resolve_device(cfg.train.device)
    policy = BridgeVLAPolicy(cfg.model, device=device)
    apply_freezing(policy, cfg.freeze)
    # No pre-training loss reaches the action head: frozen, it stays out of the optimizer and out of DDP's gradient
    # reduction (which would otherwise wait forever for its gradients, or need find_unused_parameters).
    policy.action_head.requires_grad_(False)
    out.mkdir(parents=True, exist_ok=True)
    current = to_dict(cfg)
    if rank == 0:
        atomic_write_text(saved_path, yaml.safe_dump(current, sort_keys=False))
    scenes = SceneBatches(cfg.scenes, syn_batch if cfg.data.real else cfg.train.batch_size, cfg.train.seed, rank)
    report = heldout = None
    source: Any = scenes
    if index is not None:
        # The image size comes from the built policy: with model.backbone_path it is the checkpoint's.
        settings = SampleSettings(images=cfg.data.images, image_size=policy.image_size,
                                  sigma=policy.config.heatmap_sigma, cutoff=policy.config.heatmap_cutoff,
                                  fit=cfg.data.fit, templates=list(cfg.data.templates))
        samples = GroundingSamples(index, train_ids, settings, cfg.train.seed, real_batch * world)
        real = GroundingBatches(samples, real_batch, cfg.train.num_workers, rank)
        source = MixedBatches(real, scenes) if syn_batch else real
        if rank == 0:
            report = DataReport(out / "data_report.json", index, len(samples), len(eval_ids), resume)
            heldout, report.heldout_bad = heldout_batch(index, eval_ids, settings, cfg.train.seed)
            source = _Counting(source, report)
            report.write(force=True)
    module = HeatmapPretrainer(policy, cfg.views, cfg.zoom_fraction)
    trainer = Trainer(module, source, cfg.train, cfg.optim, job_config=current)
    evaluator = Evaluator(cfg, policy, heldout, trainer.autocast, out)

    def on_step(step: int, terms: dict[str, float]) -> None:
        if not trainer.is_main:
            return
        if report is not None:
            report.write()
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.train.steps:
            evaluator.log(step)

    result = trainer.fit(resume=resume, stop_after=stop_after, on_step=on_step)
    if trainer.is_main and stop_after is None:
        policy.save_pretrained(out / "policy")
        plot_loss_curves(out / "metrics.jsonl", out / "loss.png", title="heatmap pre-training loss")
        summary: dict[str, Any] = {
            "data_source": cfg.data.source,
            "steps_this_session": result.steps, "last_step": result.last_step, "steps_planned": cfg.train.steps,
            "stopped_by_time_limit": result.time_limited, "seconds": round(result.seconds, 2),
            "train_steps_per_second": round(result.steps_per_second, 4),
            "train_samples_per_second": round(result.samples / max(result.seconds, 1e-9), 3),
            "data_wait_seconds": round(result.data_seconds, 2), "final_loss": result.final_loss,
        }
        scores, picture = evaluator.evaluate(keep=cfg.predictions)
        summary.update(scores)
        if cfg.eval_every and "grounding" in scores:
            evaluator.log_row(result.last_step, scores)
        if picture is not None:
            save_prediction_grid(out / "predictions.png", picture["images"], picture["probs"], picture["captions"],
                                 picture["peaks"], picture["hits"], boxes=picture.get("boxes"),
                                 valid=picture.get("valid"), targets=picture.get("targets"))
        if report is not None:
            report.write(force=True)
            summary["data"] = {k: v for k, v in report.to_dict().items()
                               if not isinstance(v, (dict, list)) or k == "skipped"}
        atomic_write_json(out / "summary.json", summary)
    return result


def load_pretrain_config(path: str | None, overrides: list[str]) -> PretrainJobConfig:
    return load_config(PretrainJobConfig, path, overrides)
