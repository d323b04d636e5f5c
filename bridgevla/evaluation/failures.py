"""Why episodes failed: each failed episode record gets one category, and a table counts them per agent and task.

A success rate says how often; this says why, so an experiment can tell a policy that aims at the wrong object
(it runs out of keyposes without an error) from one whose keyposes the planner cannot reach or execute. Categories
come from the ``error`` the runner records (the environment's own message, or the runner's for agent crashes and
invalid keyposes); rules are ordered and the first match wins. Harness adapters that phrase their planner errors
differently add a rule here, not a branch in the runner.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from benchmarks.fileio import atomic_write_json, atomic_write_text

# (category, pattern on the error message), first match wins. ``None`` errors are handled before the rules.
RULES: list[tuple[str, re.Pattern[str]]] = [
    ("agent error", re.compile(r"^agent:")),
    ("reset error", re.compile(r"^reset:")),
    # Before "invalid keypose": the workspace guard's refusals read "invalid keypose: keypose outside the workspace".
    ("outside the workspace", re.compile(r"outside (of )?(the )?workspace|outside the (scene )?bounds", re.I)),
    ("invalid keypose", re.compile(r"invalid keypose|non-finite|zero norm|quaternion")),
    ("unreachable (no IK solution)", re.compile(r"inverse.kinematics|\bIK\b|IKError|unreachable", re.I)),
    ("keypose in collision", re.compile(r"keypose itself is in collision", re.I)),
    ("no collision-free path", re.compile(r"path|planner|planning", re.I)),
    ("simulator error", re.compile(r"^env:|internal error|^simulator:|worker (process )?died", re.I)),
    # the RLBench/COLOSSEUM task's own failure condition (e.g. an object dropped or knocked over)
    ("task failure condition", re.compile(r"task failure condition")),
]
OUT_OF_KEYPOSES = "out of keyposes (no error: wrong target, order or precision)"
# An episode that ran out of keyposes without an error, split by what the environment saw happen to the scene
# (``diagnosis`` in the record, from an environment with ``diagnose()``), first match wins. The embedded benchmark
# knows its task's objects and tells right from wrong; the CoppeliaSim harnesses (RLBench, COLOSSEUM, GemBench) only
# see that some of the task's objects moved, so their episodes get a category that does not claim either.
DIAGNOSES: list[tuple[str, re.Pattern[str]]] = [
    ("wrong object (moved a distractor)", re.compile(r"^moved a distractor")),
    # Before the generic rule: tasks with a choice of place (``Task.placement``) say where the object went instead.
    ("right object, wrong place (nearer another of the task's places)",
     re.compile(r"^moved the task's objects to the wrong place")),
    ("right object, knocked away (further from the goal than at the start)",
     re.compile(r"^moved the task's objects away from the goal")),
    ("right object, goal not reached (place, order or precision)", re.compile(r"^moved the task's objects")),
    ("objects moved, goal not reached (right or wrong object unknown)",
     re.compile(r"^moved objects without reaching the goal")),
    ("nothing moved (missed every object)", re.compile(r"^no object moved")),
]
OTHER = "other error"
CATEGORIES = [*(c for c, _ in DIAGNOSES), OUT_OF_KEYPOSES, *(c for c, _ in RULES), OTHER]


def failure_category(record: dict[str, Any]) -> str | None:
    """The failure category of one episode record (``None`` for a success)."""
    if record.get("success"):
        return None
    error = record.get("error")
    if not error:
        diagnosis = str(record.get("diagnosis") or "")
        return next((c for c, pattern in DIAGNOSES if pattern.search(diagnosis)), OUT_OF_KEYPOSES)
    for category, pattern in RULES:
        if pattern.search(str(error)):
            return category
    return OTHER


def failure_counts(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """``{agent: {task: {category: episodes}}}`` over the failed episodes (categories with zero left out)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in records:
        category = failure_category(r)
        if category is None:
            continue
        cell = out.setdefault(r["agent"], {}).setdefault(r["task"], {})
        cell[category] = cell.get(category, 0) + 1
    return out


def failure_markdown(records: list[dict[str, Any]]) -> str:
    """One table per agent: tasks × categories, counts of failed episodes out of the task's episodes."""
    counts = failure_counts(records)
    if not counts:
        return "No failed episodes.\n"
    totals: dict[tuple[str, str], int] = {}
    for r in records:
        totals[(r["agent"], r["task"])] = totals.get((r["agent"], r["task"]), 0) + 1
    parts = []
    for agent, tasks in counts.items():
        used = [c for c in CATEGORIES if any(c in cell for cell in tasks.values())]
        lines = [f"**{agent}**: failed episodes by reason", "",
                 "| task | episodes | failed | " + " | ".join(used) + " |", "|---|---:|---:|" + "---:|" * len(used)]
        for task, cell in tasks.items():
            lines.append(f"| {task} | {totals[(agent, task)]} | {sum(cell.values())} | "
                         + " | ".join(str(cell.get(c, 0)) for c in used) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def write_failures(records: list[dict[str, Any]], out_dir: str | Path) -> dict[str, Path]:
    """``failures.md`` and ``failures.json`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "failures.md", "json": out / "failures.json"}
    atomic_write_text(paths["md"], failure_markdown(records))
    atomic_write_json(paths["json"], failure_counts(records))
    return paths
