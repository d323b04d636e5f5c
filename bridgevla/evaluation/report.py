"""Success tables from episode records: Markdown, CSV, a grouped bar plot (PNG) and JSON.

A task's success rate is computed per evaluation seed (over that seed's episodes), then reported as mean ± std over
seeds (sample standard deviation, ddof=1; 0 with a single seed), as RLBench papers report their 5 runs. The "mean"
row averages the tasks within each seed first, then takes mean ± std over seeds.
"""

from __future__ import annotations

import csv
import json
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


def write_report(summary: dict[str, dict[str, Cell]], out_dir: str | Path, title: str = "success rate"
                 ) -> dict[str, Path]:
    """Write results.{md,csv,png,json} into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"results.{k}" for k in ("md", "csv", "png", "json")}
    paths["md"].write_text(markdown_table(summary))
    write_csv(summary, paths["csv"])
    plot(summary, paths["png"], title)
    paths["json"].write_text(json.dumps({a: success_json(summary, a) for a in summary}, indent=1))
    return paths


# ---------------------------------------------------------------------------------------------------- suites
def suite_tables(records: list[dict[str, Any]], benchmark: str, suite: str) -> dict[str, Any]:
    """``{agent: table}``: the suite's published table (evaluation/envs.py SUITES) of each agent's episodes."""
    from bridgevla.evaluation.envs import suite_table

    if not records:
        raise ValueError("records: no finished episodes to summarise")
    agents = list(dict.fromkeys(r["agent"] for r in records))
    return {a: suite_table(benchmark, suite, [r for r in records if r["agent"] == a]) for a in agents}


def plot_suite(tables: dict[str, Any], path: Path, title: str) -> None:
    """Grouped bars of each agent's summary row (factor columns or levels, then the average), ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agents = list(tables)
    labels = list(dict.fromkeys(k for t in tables.values() for k in t.bars()))
    x = np.arange(len(labels))
    width = 0.8 / len(agents)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(labels) + 2), 3.8))
    for k, agent in enumerate(agents):
        bars = tables[agent].bars()
        means = [100 * bars[c].mean if c in bars and bars[c].n else 0.0 for c in labels]
        stds = [100 * bars[c].std if c in bars and bars[c].n else 0.0 for c in labels]
        ax.bar(x + (k - (len(agents) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=agent)
    ax.set_xticks(x, labels, rotation=35, ha="right")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_suite_report(records: list[dict[str, Any]], benchmark: str, suite: str, out_dir: str | Path,
                       title: str = "") -> tuple[dict[str, Any], dict[str, Path]]:
    """Write ``suite.{md,csv,json,png}`` (one table per agent) into ``out_dir``; returns the tables and paths."""
    tables = suite_tables(records, benchmark, suite)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"suite.{k}" for k in ("md", "csv", "png", "json")}
    paths["md"].write_text("".join(f"## {a}\n\n{t.markdown()}\n\n" for a, t in tables.items()))
    lines = []
    for i, (agent, t) in enumerate(tables.items()):
        head, *body = t.csv().splitlines()
        lines += (["agent," + head] if i == 0 else []) + [f"{agent},{line}" for line in body]
    paths["csv"].write_text("\n".join(lines) + "\n")
    paths["json"].write_text(json.dumps({a: t.json() for a, t in tables.items()}, indent=1))
    plot_suite(tables, paths["png"], title or f"{benchmark} {suite}")
    return tables, paths
