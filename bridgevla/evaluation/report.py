"""Success tables from episode records: Markdown, CSV, a grouped bar plot (PNG) and JSON.

A task's success rate is computed per evaluation seed (over that seed's episodes), then reported as mean ± std over
seeds (sample standard deviation, ddof=1; 0 with a single seed), as RLBench papers report their 5 runs. The "mean"
row averages the tasks within each seed first, then takes mean ± std over seeds.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MEAN = "mean"


@dataclass
class Cell:
    mean: float  # success rate in [0, 1]
    std: float
    per_seed: list[float]
    episodes: int
    errors: int  # episodes that ended with an error message (invalid keypose, planner failure, crash)

    def text(self) -> str:
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


def _stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, Cell]]:
    """``{agent: {task: Cell, ..., "mean": Cell}}`` in first-seen order of agents and tasks."""
    if not records:
        raise ValueError("records: no finished episodes to summarise")
    agents = list(dict.fromkeys(r["agent"] for r in records))
    tasks = list(dict.fromkeys(r["task"] for r in records))
    seeds = sorted({r["seed"] for r in records})
    out: dict[str, dict[str, Cell]] = {}
    for agent in agents:
        mine = [r for r in records if r["agent"] == agent]
        rates = np.full((len(tasks), len(seeds)), np.nan)
        row: dict[str, Cell] = {}
        for i, task in enumerate(tasks):
            tr = [r for r in mine if r["task"] == task]
            for j, seed in enumerate(seeds):
                s = [r["success"] for r in tr if r["seed"] == seed]
                if s:
                    rates[i, j] = float(np.mean(s))
            per_seed = [float(x) for x in rates[i] if not np.isnan(x)]
            if per_seed:
                m, sd = _stats(per_seed)
                row[task] = Cell(m, sd, per_seed, len(tr), sum(r["error"] is not None for r in tr))
        complete = ~np.isnan(rates).any(0)  # seeds that ran every task
        means = [float(x) for x in np.nanmean(rates[:, complete], axis=0)] if complete.any() else []
        if means:
            m, sd = _stats(means)
            row[MEAN] = Cell(m, sd, means, len(mine), sum(r["error"] is not None for r in mine))
        out[agent] = row
    return out


def _tasks(summary: dict[str, dict[str, Cell]]) -> list[str]:
    tasks = list(dict.fromkeys(t for row in summary.values() for t in row if t != MEAN))
    return tasks + [MEAN]


def markdown_table(summary: dict[str, dict[str, Cell]]) -> str:
    agents = list(summary)
    lines = ["| task | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for t in _tasks(summary):
        cells = [summary[a][t].text() if t in summary[a] else "–" for a in agents]
        name = f"**{t}**" if t == MEAN else t
        lines.append(f"| {name} | " + " | ".join(f"**{c}**" if t == MEAN else c for c in cells) + " |")
    return "\n".join(lines) + "\n"


def write_csv(summary: dict[str, dict[str, Cell]], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["agent", "task", "success_mean", "success_std", "seeds", "episodes", "errors", "per_seed"])
        for agent, row in summary.items():
            for t in _tasks(summary):
                if t in row:
                    c = row[t]
                    w.writerow([agent, t, f"{c.mean:.4f}", f"{c.std:.4f}", len(c.per_seed), c.episodes, c.errors,
                                " ".join(f"{x:.4f}" for x in c.per_seed)])


def plot(summary: dict[str, dict[str, Cell]], path: Path, title: str = "success rate") -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on CI or training machines
    import matplotlib.pyplot as plt

    tasks, agents = _tasks(summary), list(summary)
    x = np.arange(len(tasks))
    width = 0.8 / len(agents)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(tasks) + 2), 3.8))
    for k, agent in enumerate(agents):
        means = [100 * summary[agent][t].mean if t in summary[agent] else 0.0 for t in tasks]
        stds = [100 * summary[agent][t].std if t in summary[agent] else 0.0 for t in tasks]
        ax.bar(x + (k - (len(agents) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=agent)
    ax.set_xticks(x, tasks, rotation=30, ha="right")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def success_json(summary: dict[str, dict[str, Cell]], agent: str) -> dict[str, float]:
    """``{"task": success_rate, ..., "mean": ...}`` (rates in [0, 1], mean over seeds) for one agent."""
    if agent not in summary:
        raise ValueError(f"agent: {agent!r} has no results (have {list(summary)})")
    return {t: round(c.mean, 4) for t, c in summary[agent].items()}


def videos_markdown(records: list[dict[str, Any]], out_dir: str | Path) -> str:
    """A "Videos" section linking every episode video (``eval.videos``) relative to ``out_dir``; "" if none."""
    rows = [r for r in records if r.get("video")]
    if not rows:
        return ""
    lines = ["", "## Videos", "", "| agent | task | seed | episode | outcome | video |", "|---|---|---:|---:|---|---|"]
    for r in rows:
        rel = Path(os.path.relpath(r["video"], out_dir)).as_posix()
        outcome = "success" if r["success"] else f"failure: {r['error'] or 'not solved'}".replace("|", "/")
        lines.append(f"| {r['agent']} | {r['task']} | {r['seed']} | {r['episode']} | {outcome} | [{rel}]({rel}) |")
    return "\n".join(lines) + "\n"


def write_report(summary: dict[str, dict[str, Cell]], out_dir: str | Path, title: str = "success rate",
                 records: list[dict[str, Any]] | None = None) -> dict[str, Path]:
    """Write results.{md,csv,png,json} into ``out_dir``; returns their paths. With ``records``, results.md also
    links the episode videos."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"results.{k}" for k in ("md", "csv", "png", "json")}
    paths["md"].write_text(markdown_table(summary) + videos_markdown(records or [], out))
    write_csv(summary, paths["csv"])
    plot(summary, paths["png"], title)
    paths["json"].write_text(json.dumps({a: success_json(summary, a) for a in summary}, indent=1))
    return paths
