"""The published result-table layouts of COLOSSEUM and GemBench, as pure functions of success rates.

They know nothing of models or simulators: the embedded suites (docs/tasks.md) and any harness adapter can feed
them. Rates are in [0, 1]; tables print percentages.

- COLOSSEUM: one column per perturbation factor, each the mean over the tasks for which the factor is defined
  (an excluded cell has no rate and is left out, not counted as a failure), and an average that is the plain mean
  of the columns COLOSSEUM averages (its indices 1-14). With several evaluation seeds, every number is computed
  per seed first, then reported as mean ± std over seeds.
- GemBench: per level, the mean over the level's tasks; reported as mean ± std over seeds, with the average over
  the levels computed per seed the same way.

Standard deviations are sample standard deviations (ddof=1; 0 for a single seed), as the evaluation report uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Stat:
    """A mean ± std over seeds (fractions); ``n`` seeds contributed."""

    mean: float
    std: float
    n: int

    def percent(self, std: bool = True) -> str:
        if self.n == 0:
            return "–"
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}" if std and self.n > 1 else f"{100 * self.mean:.1f}"


def over_seeds(values: Iterable[float]) -> Stat:
    """Mean ± sample std of per-seed values (NaN entries, seeds without data, are skipped)."""
    v = np.array([x for x in values if not math.isnan(x)], dtype=float)
    if v.size == 0:
        return Stat(math.nan, math.nan, 0)
    return Stat(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size))


def _mean(values: Iterable[float]) -> float:
    v = [x for x in values if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def rates_by(episodes: Iterable[Mapping], keys: Sequence[str]) -> dict[tuple, float]:
    """Success rate of the episodes grouped by ``keys`` (e.g. ("task", "seed")): {key tuple: rate}."""
    n: dict[tuple, int] = {}
    ok: dict[tuple, int] = {}
    for e in episodes:
        k = tuple(e[x] for x in keys)
        n[k] = n.get(k, 0) + 1
        ok[k] = ok.get(k, 0) + bool(e["success"])
    return {k: ok[k] / n[k] for k in n}


# ------------------------------------------------------------------------------------------------- COLOSSEUM
@dataclass
class ColosseumTable:
    tasks: list[str]
    factors: list[str]
    averaged: list[str]  # the factor columns the average takes
    cells: dict[tuple[str, str], Stat]  # (task, factor) -> over seeds; absent: excluded
    columns: dict[str, Stat]  # factor -> mean over its tasks, over seeds
    rows: dict[str, Stat]  # task -> mean over its averaged factors, over seeds
    average: Stat  # mean over the averaged columns, over seeds
    labels: dict[str, str] = field(default_factory=dict)  # column headers (e.g. COLOSSEUM's factor names)

    def markdown(self, std: bool = True) -> str:
        return colosseum_markdown(self, std)

    def csv(self) -> str:
        return colosseum_csv(self)

    def json(self) -> dict:
        return colosseum_json(self)

    def bars(self) -> dict[str, Stat]:
        """The summary row as published: every factor column, then the average."""
        return {**{self.labels.get(f, f): self.columns[f] for f in self.factors}, "average": self.average}


def colosseum_table(rates: Mapping[tuple[str, str, int], float], tasks: Sequence[str], factors: Sequence[str],
                    averaged: Sequence[str], labels: Mapping[str, str] | None = None) -> ColosseumTable:
    """``rates[(task, factor, seed)]``: success rate of that cell in that evaluation seed. A (task, factor) with no
    rate in any seed is an excluded cell. ``averaged`` must be a subset of ``factors``."""
    if not set(averaged) <= set(factors):
        raise ValueError(f"averaged factors {sorted(set(averaged) - set(factors))} are not among the factors")
    seeds = sorted({s for _, _, s in rates})
    def r(t: str, f: str, s: int) -> float:
        return rates.get((t, f, s), math.nan)
    cells = {(t, f): over_seeds(r(t, f, s) for s in seeds) for t in tasks for f in factors
             if any((t, f, s) in rates for s in seeds)}
    column_per_seed = {f: [_mean(r(t, f, s) for t in tasks) for s in seeds] for f in factors}
    columns = {f: over_seeds(v) for f, v in column_per_seed.items()}
    rows = {t: over_seeds(_mean(r(t, f, s) for f in averaged) for s in seeds) for t in tasks}
    average = over_seeds(_mean(column_per_seed[f][i] for f in averaged) for i in range(len(seeds)))
    return ColosseumTable(list(tasks), list(factors), list(averaged), cells, columns, rows, average,
                          dict(labels or {}))


def colosseum_markdown(t: ColosseumTable, std: bool = True) -> str:
    """Tasks as rows, factors as columns, the published average last; excluded cells show "–"."""
    head = [t.labels.get(f, f) for f in t.factors]
    lines = ["| task | " + " | ".join(head) + " | average |", "|---|" + "---:|" * (len(head) + 1)]
    for task in t.tasks:
        cells = [t.cells[(task, f)].percent(std) if (task, f) in t.cells else "–" for f in t.factors]
        lines.append(f"| {task} | " + " | ".join(cells) + f" | {t.rows[task].percent(std)} |")
    lines.append("| **mean** | " + " | ".join(f"**{t.columns[f].percent(std)}**" for f in t.factors)
                 + f" | **{t.average.percent(std)}** |")
    return "\n".join(lines)


def colosseum_csv(t: ColosseumTable) -> str:
    """One line per (task or 'mean', factor or 'average'): mean and std in percent, seeds."""
    lines = ["task,factor,mean,std,seeds"]
    def add(task: str, factor: str, s: Stat) -> None:
        lines.append(f"{task},{factor},{100 * s.mean:.2f},{100 * s.std:.2f},{s.n}")
    for (task, f), s in t.cells.items():
        add(task, f, s)
    for task, s in t.rows.items():
        add(task, "average", s)
    for f, s in t.columns.items():
        add("mean", f, s)
    add("mean", "average", t.average)
    return "\n".join(lines) + "\n"


def colosseum_json(t: ColosseumTable) -> dict:
    """{"columns": {factor: mean}, "average": mean, "cells": {task: {factor: mean}}, "std": {...}} in [0, 1]."""
    def nan_none(x: float) -> float | None:
        return None if math.isnan(x) else x
    return {
        "columns": {f: nan_none(s.mean) for f, s in t.columns.items()},
        "columns_std": {f: nan_none(s.std) for f, s in t.columns.items()},
        "average": nan_none(t.average.mean), "average_std": nan_none(t.average.std), "averaged": t.averaged,
        "cells": {task: {f: t.cells[(task, f)].mean for f in t.factors if (task, f) in t.cells} for task in t.tasks},
        "excluded": {task: [f for f in t.factors if (task, f) not in t.cells] for task in t.tasks},
    }


# --------------------------------------------------------------------------------------------------- GemBench
@dataclass
class GemBenchTable:
    levels: list[str]
    tasks: dict[str, list[str]]  # level -> its tasks (those with data)
    per_task: dict[str, Stat]  # task -> over seeds
    per_level: dict[str, Stat]  # level -> mean over its tasks, over seeds
    average: Stat  # mean over the levels, over seeds

    def markdown(self, std: bool = True) -> str:
        return gembench_markdown(self, std)

    def csv(self) -> str:
        return gembench_csv(self)

    def json(self) -> dict:
        return gembench_json(self)

    def bars(self) -> dict[str, Stat]:
        return {**{lv: self.per_level[lv] for lv in self.levels}, "average": self.average}


def gembench_table(rates: Mapping[tuple[str, int], float], level_of: Mapping[str, str],
                   levels: Sequence[str] = ("L1", "L2", "L3", "L4")) -> GemBenchTable:
    """``rates[(task, seed)]``; ``level_of[task]`` names its level. A level's score per seed is the mean over its
    tasks; the average is the mean over the levels that have data, per seed."""
    unknown = sorted({t for t, _ in rates} - set(level_of))
    if unknown:
        raise ValueError(f"tasks {unknown} have no level")
    seeds = sorted({s for _, s in rates})
    tasks = {lv: list(dict.fromkeys(t for t, _ in rates if level_of[t] == lv)) for lv in levels}  # as first seen
    per_task = {t: over_seeds(rates.get((t, s), math.nan) for s in seeds) for ts in tasks.values() for t in ts}
    level_per_seed = {lv: [_mean(rates.get((t, s), math.nan) for t in tasks[lv]) for s in seeds] for lv in levels}
    per_level = {lv: over_seeds(v) for lv, v in level_per_seed.items()}
    average = over_seeds(_mean(level_per_seed[lv][i] for lv in levels) for i in range(len(seeds)))
    return GemBenchTable(list(levels), tasks, per_task, per_level, average)


def gembench_markdown(t: GemBenchTable, std: bool = True) -> str:
    """The published layout (levels as columns, then the average), followed by the per-task breakdown."""
    head = "| " + " | ".join(t.levels) + " | average |"
    lines = [head, "|" + "---:|" * (len(t.levels) + 1),
             "| " + " | ".join(t.per_level[lv].percent(std) for lv in t.levels) + f" | {t.average.percent(std)} |",
             "", "| level | task | success |", "|---|---|---:|"]
    for lv in t.levels:
        lines += [f"| {lv} | {task} | {t.per_task[task].percent(std)} |" for task in t.tasks[lv]]
    return "\n".join(lines)


def gembench_csv(t: GemBenchTable) -> str:
    lines = ["level,task,mean,std,seeds"]
    for lv in t.levels:
        lines += [f"{lv},{task},{100 * t.per_task[task].mean:.2f},{100 * t.per_task[task].std:.2f},"
                  f"{t.per_task[task].n}" for task in t.tasks[lv]]
        s = t.per_level[lv]
        lines.append(f"{lv},mean,{100 * s.mean:.2f},{100 * s.std:.2f},{s.n}")
    lines.append(f"average,mean,{100 * t.average.mean:.2f},{100 * t.average.std:.2f},{t.average.n}")
    return "\n".join(lines) + "\n"


def gembench_json(t: GemBenchTable) -> dict:
    def nan_none(x: float) -> float | None:
        return None if math.isnan(x) else x
    return {"levels": {lv: nan_none(t.per_level[lv].mean) for lv in t.levels},
            "levels_std": {lv: nan_none(t.per_level[lv].std) for lv in t.levels},
            "average": nan_none(t.average.mean), "average_std": nan_none(t.average.std),
            "tasks": {task: s.mean for task, s in t.per_task.items()}}
