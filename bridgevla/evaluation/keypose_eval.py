"""Offline keypose accuracy: a trained policy against the expert's keyposes of held-out demos, no simulator.

``bridgevla keypose-eval --checkpoint DIR --data DIR`` asks the policy for the next keypose from every keyframe start
of every episode (the states evaluation queries: the arm at rest at its previous keypose) and compares it with the
keypose the expert executed next. Per task it reports how often the position lands within a tolerance, how often
stage 1 lands close enough for the stage-2 zoom to see the target, position and rotation errors, and the gripper and
collision flags' accuracy.

Why it exists: a success rate needs a simulator and folds every error into one bit per episode; this needs only a
dataset (any benchmark's demos, RLBench's included once imported) and says *which* part of a keypose is wrong. It
is how the demo's recipe was chosen (docs/training.md). It is not a success rate: a policy can recover from a
wrong keypose in closed loop, and a keypose far from the expert's can still work.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bridgevla.data.batch import collate
from bridgevla.data.dataset import DataConfig, KeyframeDataset
from rendering import quaternion_angle


@dataclass
class KeyposeEvalConfig:
    checkpoint: str | None = None  # a save_pretrained directory (train.out_dir/policy)
    data: str | None = None  # a dataset folder (bridgevla generate) of episodes the policy never saw
    tasks: list[str] = field(default_factory=list)  # empty: every task folder under data
    episodes_per_task: int = 0  # the first N episodes of each task; 0: all
    batch_size: int = 16
    position_tolerance: float = 0.02  # metres
    stage1_tolerance: float = 0.05  # metres: the stage-2 training noise (±5 cm) is what stage 2 learned to recover
    rotation_tolerance: float = 10.0  # degrees, geodesic
    device: str = "auto"
    out: str | None = None  # JSON file for the results (printed either way)

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise ValueError("checkpoint must name a policy directory (train.out_dir/policy)")
        if not self.data:
            raise ValueError("data must name a dataset folder of held-out episodes")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("position_tolerance", "stage1_tolerance", "rotation_tolerance"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


def _task_metrics(err: np.ndarray, err1: np.ndarray, rot: np.ndarray, grip: np.ndarray, coll: np.ndarray,
                  cfg: KeyposeEvalConfig) -> dict[str, float]:
    return {
        "keyposes": int(len(err)),
        "position_within": float((err <= cfg.position_tolerance).mean()),
        "stage1_within": float((err1 <= cfg.stage1_tolerance).mean()),
        "median_position_error_cm": float(np.median(err) * 100),
        "rotation_within": float((rot <= cfg.rotation_tolerance).mean()),
        "median_rotation_error_deg": float(np.median(rot)),
        "gripper_accuracy": float(grip.mean()),
        "collision_accuracy": float(coll.mean()),
        "all_within": float(((err <= cfg.position_tolerance) & (rot <= cfg.rotation_tolerance) & grip & coll).mean()),
    }


@torch.no_grad()
def keypose_accuracy(policy: Any, cfg: KeyposeEvalConfig) -> dict[str, dict[str, float]]:
    """Per task metrics (see the module doc) plus ``"mean"`` (the unweighted mean over tasks). ``policy`` is a
    ``BridgeVLAPolicy`` (anything with ``config``, ``predict`` and the same ``Prediction`` fields)."""
    data = DataConfig(root=str(cfg.data), tasks=list(cfg.tasks), episodes_per_task=cfg.episodes_per_task,
                      augmentation_every=0, instruction="first", cache=False)
    # The seed only picks the point subset (max_points): fixed, so two runs score the same clouds.
    ds = KeyframeDataset(data, list(policy.config.bounds), seed=0, max_points=int(policy.config.max_points),
                         memory=policy.config.memory_markers(),
                         cameras=list(policy.config.cameras))
    results: dict[str, dict[str, float]] = {}
    for task, refs in zip(ds.tasks, ds.by_task):
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("err", "err1", "rot", "grip", "coll")}
        for k in range(0, len(refs), cfg.batch_size):
            chunk = refs[k:k + cfg.batch_size]
            batch = collate([ds.sample(r, np.random.default_rng([0, k, j])) for j, r in enumerate(chunk)])
            pred = policy.predict(batch)
            target = batch.target_position.float()
            cols["err"].append((pred.position.float().cpu() - target).norm(dim=-1).numpy())
            cols["err1"].append((pred.stage1_position.float().cpu() - target).norm(dim=-1).numpy())
            cols["rot"].append(quaternion_angle(pred.quaternion.float().cpu(), batch.target_quaternion.float()).numpy())
            cols["grip"].append((pred.gripper_open.cpu() == (batch.target_gripper_open > 0.5)).numpy())
            cols["coll"].append((pred.ignore_collisions.cpu() == (batch.target_ignore_collisions > 0.5)).numpy())
        c = {k: np.concatenate(v) for k, v in cols.items()}
        results[task] = _task_metrics(c["err"], c["err1"], c["rot"], c["grip"], c["coll"], cfg)
    keys = next(iter(results.values())).keys()
    results["mean"] = {k: float(np.mean([r[k] for r in results.values()])) for k in keys}
    results["mean"]["keyposes"] = int(sum(r["keyposes"] for t, r in results.items() if t != "mean"))
    return results


def markdown(results: dict[str, dict[str, float]], cfg: KeyposeEvalConfig) -> str:
    head = (f"| task | keyposes | position ≤ {cfg.position_tolerance * 100:g} cm | stage 1 ≤ "
            f"{cfg.stage1_tolerance * 100:g} cm | median error (cm) | rotation ≤ {cfg.rotation_tolerance:g}° | "
            "median rotation error (°) | gripper | collision | all four |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for task, r in results.items():
        name = f"**{task}**" if task == "mean" else task
        lines.append(f"| {name} | {r['keyposes']} | {r['position_within']:.2f} | {r['stage1_within']:.2f} | "
                     f"{r['median_position_error_cm']:.1f} | {r['rotation_within']:.2f} | "
                     f"{r['median_rotation_error_deg']:.1f} | {r['gripper_accuracy']:.2f} | "
                     f"{r['collision_accuracy']:.2f} | {r['all_within']:.2f} |")
    return "\n".join(lines)


def run(cfg: KeyposeEvalConfig) -> dict[str, dict[str, float]]:
    from bridgevla.model.policy import BridgeVLAPolicy
    from bridgevla.training.loop import resolve_device

    policy = BridgeVLAPolicy.from_pretrained(cfg.checkpoint, device=resolve_device(cfg.device))
    policy.eval()
    results = keypose_accuracy(policy, cfg)
    if cfg.out:
        Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.out).write_text(json.dumps(results, indent=1))
    return results
