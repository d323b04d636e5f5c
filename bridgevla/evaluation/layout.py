"""Success by layout: where in the scene each episode's task acts, next to where the demos acted.

A success rate per task hides *which* scenes fail. Ten random demos cover a task's layouts unevenly, and a policy that
never saw a layout does not generalise to it: every lift_block failure of run 21 had its block on the −y half of the
table, where none of the ten demos had one (docs/training.md, runs 21–24). This module tabulates episodes by two
features of the task's own plan for the episode's scene — the side of the plane y = ``plane_y`` its first keypose
lies on, and the dominant horizontal direction from its first keypose to its last (the way a push, a pull or a carry
moves things) — and counts the demos by the same features, so a layout that fails and a layout the demos never show
stand side by side.

The plan of a recorded test scene comes from resetting the environment with the episode's task, variation and seed
and asking its expert (``expert_keyposes()``: the embedded benchmark); the demos' plans are the keyposes their
``episode.json`` holds. Both go through :func:`plan_features`, so the two columns use one definition.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from benchmarks.fileio import atomic_write_json, atomic_write_text

FEATURES = ("side", "direction")
IN_PLACE = "in place"


class Planner(Protocol):
    """An environment that can rebuild a recorded scene and plan it (the embedded benchmark's ``EmbeddedEnv``)."""

    def reset(self, task: str, variation: int, seed: int) -> Any: ...
    def expert_keyposes(self) -> list[Any]: ...


def plan_features(positions: np.ndarray, plane_y: float = 0.0, min_travel: float = 0.05) -> dict[str, str]:
    """``{"side": "+y" | "-y", "direction": "+x" | "-x" | "+y" | "-y" | "in place"}`` of one plan's (K, 3) keypose
    positions (metres). The side is the first keypose's (the object the task acts on first; y = ``plane_y`` counts
    as +y); the direction is the sign and axis of the larger horizontal component of last − first, or "in place"
    when that travel is shorter than ``min_travel``."""
    p = np.asarray(positions, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] != 3:
        raise ValueError(f"plan_features: positions must be (K >= 1, 3), got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("plan_features: positions contain non-finite values")
    if min_travel < 0:
        raise ValueError(f"plan_features: min_travel must be >= 0, got {min_travel}")
    side = "+y" if p[0, 1] >= plane_y else "-y"
    travel = p[-1, :2] - p[0, :2]
    if np.hypot(*travel) < min_travel:
        return {"side": side, "direction": IN_PLACE}
    axis = int(np.argmax(np.abs(travel)))
    return {"side": side, "direction": ("+" if travel[axis] > 0 else "-") + "xy"[axis]}


def _scene_key(record: dict[str, Any]) -> tuple[str, int, int]:
    try:
        return str(record["task"]), int(record["variation"]), int(record["env_seed"])
    except KeyError as e:
        raise ValueError(f"layout: episode record without {e.args[0]!r} (need task, variation, env_seed): "
                         f"{ {k: record[k] for k in list(record)[:6]} }") from None


def episode_features(records: Iterable[dict[str, Any]], env: Planner, plane_y: float = 0.0,
                     min_travel: float = 0.05) -> dict[tuple[str, int, int], dict[str, str]]:
    """The features of every distinct scene (task, variation, env_seed) among ``records``: each is reset once and
    planned by the environment's expert (agents and training seeds evaluated on the same scenes share it)."""
    out: dict[tuple[str, int, int], dict[str, str]] = {}
    for key in sorted({_scene_key(r) for r in records}):
        env.reset(*key)
        plan = env.expert_keyposes()
        if not plan:
            raise ValueError(f"layout: the expert has no keyposes for {key}")
        out[key] = plan_features(np.array([k.position for k in plan]), plane_y, min_travel)
    return out


def demo_features(demo_root: str | Path, plane_y: float = 0.0,
                  min_travel: float = 0.05) -> list[dict[str, str]]:
    """``{"task", "side", "direction"}`` of every demo under ``demo_root`` (``<task>/episode_*/episode.json``, the
    format ``benchmarks.generate`` writes), from the keyposes each one recorded."""
    out = []
    for path in sorted(Path(demo_root).glob("*/episode_*/episode.json")):
        try:
            meta = json.loads(path.read_text())
            keyposes = meta.get("keyposes") or []
            positions = np.array([k["position"] for k in keyposes], dtype=np.float64)
            task = str(meta["task"])
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"layout: {path} is not a readable demo record ({type(e).__name__}: {e})") from None
        if not keyposes:
            raise ValueError(f"layout: {path} records no keyposes")
        out.append({"task": task, **plan_features(positions, plane_y, min_travel)})
    return out


def layout_counts(records: list[dict[str, Any]], features: dict[tuple[str, int, int], dict[str, str]],
                  demos: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """``{"agents": {agent: {task: {feature: {value: {"episodes", "failed"}}}}}, "demos": {task: {feature: {value:
    count}}}}``."""
    agents: dict[str, Any] = {}
    for r in records:
        f = features[_scene_key(r)]
        per_task = agents.setdefault(r["agent"], {}).setdefault(r["task"], {})
        for name in FEATURES:
            cell = per_task.setdefault(name, {}).setdefault(f[name], {"episodes": 0, "failed": 0})
            cell["episodes"] += 1
            cell["failed"] += int(not r.get("success"))
    shown: dict[str, Any] = {}
    for d in demos or []:
        for name in FEATURES:
            per = shown.setdefault(d["task"], {}).setdefault(name, {})
            per[d[name]] = per.get(d[name], 0) + 1
    return {"agents": agents, "demos": shown}


def layout_markdown(counts: dict[str, Any]) -> str:
    """Per agent with a failure, one table per feature: task × value, demos showing it, episodes, failed, success."""
    parts = []
    for agent, tasks in counts["agents"].items():
        if not any(c["failed"] for t in tasks.values() for c in t["side"].values()):
            parts.append(f"**{agent}**: no failed episodes.\n")
            continue
        for name in FEATURES:
            what = ("side of the mirror plane the task acts on (first keypose of its plan)" if name == "side"
                    else "horizontal direction from the plan's first keypose to its last")
            with_demos = bool(counts["demos"])  # no column of zeros when no demos were given
            lines = [f"**{agent}** by {what}", "",
                     f"| task | {name} | " + "demos | " * with_demos + "episodes | failed | success % |",
                     "|---|---|" + "---:|" * (3 + with_demos)]
            for task, feats in tasks.items():
                shown = counts["demos"].get(task, {}).get(name, {})
                for value in sorted(set(feats[name]) | set(shown)):
                    c = feats[name].get(value, {"episodes": 0, "failed": 0})
                    rate = f"{100 * (1 - c['failed'] / c['episodes']):.1f}" if c["episodes"] else "–"
                    lines.append(f"| {task} | {value} | " + f"{shown.get(value, 0)} | " * with_demos
                                 + f"{c['episodes']} | {c['failed']} | {rate} |")
            parts.append("\n".join(lines) + "\n")
    return "\n".join(parts) if parts else "No episodes.\n"


def write_layout(records: list[dict[str, Any]], env: Planner, out_dir: str | Path, demo_root: str | Path | None = None,
                 plane_y: float = 0.0, min_travel: float = 0.05) -> dict[str, Path]:
    """``layout.md`` and ``layout.json`` in ``out_dir`` (the evaluation's episodes by layout, the demos beside)."""
    features = episode_features(records, env, plane_y, min_travel)
    demos = demo_features(demo_root, plane_y, min_travel) if demo_root is not None else None
    counts = layout_counts(records, features, demos)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "layout.md", "json": out / "layout.json"}
    atomic_write_text(paths["md"], layout_markdown(counts))
    atomic_write_json(paths["json"], counts)
    return paths
