"""Offline keypose accuracy: a trained policy against the expert's keyposes of held-out demos, no simulator.

``bridgevla keypose-eval --checkpoint DIR --data DIR`` asks the policy for the next keypose from every keyframe start
of every episode (the states evaluation queries: the arm at rest at its previous keypose) and compares it with the
keypose the expert executed next. Per task it reports how often the position lands within a tolerance, how often
stage 1 lands close enough for the stage-2 zoom to see the target, position and rotation errors, and the gripper and
collision flags' accuracy; then the same per keypose index (the first keypose of a plan, the second, ...), with the
share of stage-1 points within ``xy_tolerance`` in the table plane. That one isolates the *decision* of a
keypose — which object, which side of it — from its precision: for the first keypose of a task that names one object
among several, it is the share of fresh scenes in which the policy went for the right one (docs/training.md uses it
to follow grounding through training). Of the keyposes that should take the arm elsewhere in the table plane (target
beyond ``xy_tolerance`` of where the arm is at the query), the table also counts those the policy kept under the arm
(prediction within ``xy_tolerance`` of it): the signature of a policy that cannot tell from the scene what it already
did — e.g. it has lifted a ring and goes down onto it again instead of carrying it to the peg.

Why it exists: a success rate needs a simulator and folds every error into one bit per episode; this needs only a
dataset (any benchmark's demos, RLBench's included once imported) and says *which* part of a keypose is wrong. It
is how the demo's recipe was chosen (docs/training.md). It is not a success rate: a policy can recover from a
wrong keypose in closed loop, and a keypose far from the expert's can still work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from benchmarks.fileio import atomic_write_json, ensure_writable
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
    xy_tolerance: float = 0.04  # metres, stage 1 in the table plane: about a block's size, so "on the right object"
    device: str = "auto"
    out: str | None = None  # JSON file for the results (printed either way)

    def __post_init__(self) -> None:
        if not self.checkpoint:
            raise ValueError("checkpoint must name a policy directory (train.out_dir/policy)")
        if not self.data:
            raise ValueError("data must name a dataset folder of held-out episodes")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        for name in ("position_tolerance", "stage1_tolerance", "rotation_tolerance", "xy_tolerance"):
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


def _by_keypose(index: np.ndarray, err: np.ndarray, err1_xy: np.ndarray, rot: np.ndarray, moves: np.ndarray,
                stayed: np.ndarray, cfg: KeyposeEvalConfig) -> list[dict[str, Any]]:
    """One row per keypose index of the plans (0 = the first keypose from the episode's first frame). ``moves``: the
    target lies beyond ``xy_tolerance`` of the arm in the table plane; ``stayed``: the prediction does not."""
    rows = []
    for j in np.unique(index):
        m = index == j
        n_moves = int(moves[m].sum())
        rows.append({"index": int(j), "keyposes": int(m.sum()),
                     "stage1_xy_within": float((err1_xy[m] <= cfg.xy_tolerance).mean()),
                     "position_within": float((err[m] <= cfg.position_tolerance).mean()),
                     "median_position_error_cm": float(np.median(err[m]) * 100),
                     "rotation_within": float((rot[m] <= cfg.rotation_tolerance).mean()),
                     "moves": n_moves,
                     # None, not 0, where no keypose of this index leaves the arm's place: nothing to count.
                     "stayed_under_arm": float((stayed[m] & moves[m]).sum() / n_moves) if n_moves else None})
    return rows


@torch.no_grad()
def keypose_accuracy(policy: Any, cfg: KeyposeEvalConfig) -> dict[str, dict[str, Any]]:
    """Per task metrics (see the module doc) plus ``"mean"`` (the unweighted mean over tasks); each task's also
    holds ``"by_keypose"``, one row per keypose index. ``policy`` is a ``BridgeVLAPolicy`` (anything with
    ``config``, ``predict`` and the same ``Prediction`` fields)."""
    data = DataConfig(root=str(cfg.data), tasks=list(cfg.tasks), episodes_per_task=cfg.episodes_per_task,
                      augmentation_every=0, instruction="first", cache=False)
    # The seed only picks the point subset (max_points): fixed, so two runs score the same clouds.
    ds = KeyframeDataset(data, list(policy.config.bounds), seed=0, max_points=int(policy.config.max_points),
                         memory=policy.config.memory_markers(),
                         cameras=list(policy.config.cameras))
    results: dict[str, dict[str, Any]] = {}
    for task, refs in zip(ds.tasks, ds.by_task):
        cols: dict[str, list[np.ndarray]] = {k: [] for k in ("err", "err1", "err1_xy", "rot", "grip", "coll",
                                                             "moves", "stayed")}
        for k in range(0, len(refs), cfg.batch_size):
            chunk = refs[k:k + cfg.batch_size]
            batch = collate([ds.sample(r, np.random.default_rng([0, k, j])) for j, r in enumerate(chunk)])
            pred = policy.predict(batch)
            target = batch.target_position.float()
            cols["err"].append((pred.position.float().cpu() - target).norm(dim=-1).numpy())
            cols["err1"].append((pred.stage1_position.float().cpu() - target).norm(dim=-1).numpy())
            cols["err1_xy"].append((pred.stage1_position.float().cpu() - target)[:, :2].norm(dim=-1).numpy())
            cols["rot"].append(quaternion_angle(pred.quaternion.float().cpu(), batch.target_quaternion.float()).numpy())
            cols["grip"].append((pred.gripper_open.cpu() == (batch.target_gripper_open > 0.5)).numpy())
            cols["coll"].append((pred.ignore_collisions.cpu() == (batch.target_ignore_collisions > 0.5)).numpy())
            # Where the arm is at the query: the recorded gripper position of the start frame.
            arm = np.stack([ds.episodes[r.episode].gripper_pose[r.start, :2] for r in chunk]).astype(np.float32)
            cols["moves"].append(np.linalg.norm(target[:, :2].numpy() - arm, axis=-1) > cfg.xy_tolerance)
            cols["stayed"].append(np.linalg.norm(pred.position.float().cpu()[:, :2].numpy() - arm, axis=-1)
                                  <= cfg.xy_tolerance)
        c = {k: np.concatenate(v) for k, v in cols.items()}
        results[task] = _task_metrics(c["err"], c["err1"], c["rot"], c["grip"], c["coll"], cfg)
        index = np.array([r.target for r in refs])
        results[task]["by_keypose"] = _by_keypose(index, c["err"], c["err1_xy"], c["rot"], c["moves"], c["stayed"],
                                                  cfg)
    keys = [k for k in next(iter(results.values())) if k != "by_keypose"]
    results["mean"] = {k: float(np.mean([r[k] for r in results.values()])) for k in keys}
    results["mean"]["keyposes"] = int(sum(r["keyposes"] for t, r in results.items() if t != "mean"))
    return results


def markdown(results: dict[str, dict[str, Any]], cfg: KeyposeEvalConfig) -> str:
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
    lines += ["", f"Per keypose index (stage 1 within {cfg.xy_tolerance * 100:g} cm in the table plane: the right "
              "object / side):", "",
              f"| task | keypose | count | stage 1 xy ≤ {cfg.xy_tolerance * 100:g} cm | "
              f"position ≤ {cfg.position_tolerance * 100:g} cm | median error (cm) | "
              f"rotation ≤ {cfg.rotation_tolerance:g}° | moves the arm | stayed under the arm |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for task, r in results.items():
        for row in r.get("by_keypose", []):
            stayed = "–" if row["stayed_under_arm"] is None else f"{row['stayed_under_arm']:.2f}"
            lines.append(f"| {task} | {row['index']} | {row['keyposes']} | {row['stage1_xy_within']:.2f} | "
                         f"{row['position_within']:.2f} | {row['median_position_error_cm']:.1f} | "
                         f"{row['rotation_within']:.2f} | {row['moves']} | {stayed} |")
    return "\n".join(lines)


def evaluate_checkpoint(cfg: KeyposeEvalConfig) -> dict[str, dict[str, Any]]:
    """Load ``cfg.checkpoint`` and score it (nothing written). ``cfg.out`` is checked for writability first, so a
    long evaluation never ends with results it cannot save."""
    from bridgevla.model.policy import BridgeVLAPolicy
    from bridgevla.training.loop import resolve_device

    if cfg.out:
        ensure_writable(cfg.out)
    policy = BridgeVLAPolicy.from_pretrained(cfg.checkpoint, device=resolve_device(cfg.device))
    policy.eval()
    return keypose_accuracy(policy, cfg)


def write_results(cfg: KeyposeEvalConfig, results: dict[str, dict[str, Any]]) -> None:
    if cfg.out:
        atomic_write_json(cfg.out, results)


def run(cfg: KeyposeEvalConfig) -> dict[str, dict[str, Any]]:
    results = evaluate_checkpoint(cfg)
    write_results(cfg, results)
    return results
