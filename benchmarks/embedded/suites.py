"""The embedded benchmark's two evaluation suites laid out as the published harnesses' tables: episode records of
the ``perturbations`` suite -> COLOSSEUM's layout (``benchmarks.colosseum.table``), of the ``levels`` suite ->
GemBench's (``benchmarks.gembench.table``). One layout each, shared with the real harnesses: the same columns,
the same averaging rules and the same standard deviations over evaluation seeds (runs).

A record is one finished episode as the evaluation runner writes it: ``agent``, ``task`` (a suite task name),
``seed`` (the evaluation run) and ``success``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from benchmarks.colosseum.env import cell_name as colosseum_cell
from benchmarks.colosseum.table import colosseum_tables
from benchmarks.embedded import perturbations as pert
from benchmarks.embedded.levels import LEVELS
from benchmarks.embedded.tasks import TASKS
from benchmarks.gembench.table import gembench_tables
from benchmarks.tables import Table

PERTURBATIONS_TITLE = "Embedded perturbations (COLOSSEUM layout)"
LEVELS_TITLE = "Embedded levels (GemBench layout)"


def perturbation_tables(records: Iterable[Mapping[str, Any]]) -> list[Table]:
    """Headline (a row per agent: the average, then one column per factor) and a task × factor table per agent.
    Each ``<task>@<factor>`` cell becomes COLOSSEUM's ``<task>_<index>``; excluded cells have no records, so they
    are left out of their columns."""
    recs = []
    for r in records:
        task, factor = pert.split_name(r["task"])
        if task not in TASKS:
            raise ValueError(f"records: {r['task']!r} is not a perturbation-suite task")
        recs.append({**r, "task": colosseum_cell(task, pert.COLOSSEUM_INDEX[factor])})
    tables = colosseum_tables(recs, reference=False, title=PERTURBATIONS_TITLE)
    tables[0].notes.append("COLOSSEUM column 13 (RLBench variations) has no embedded counterpart; excluded "
                           "(undefined) task x factor cells are left out of their column (docs/tasks.md)")
    return tables


def level_tables(records: Iterable[Mapping[str, Any]]) -> list[Table]:
    """Headline (a row per agent: the average, then L1-L4) and every task, as GemBench reports its levels."""
    return gembench_tables(records, reference=False, level_lists=LEVELS, title=LEVELS_TITLE)


def excluded_cells() -> list[tuple[str, str, str]]:
    """(task, factor, why) of every cell the perturbation suite leaves out."""
    return [(t, f, why) for t, cls in TASKS.items() for f in pert.SUITE_FACTORS
            if (why := pert.excluded(cls, f)) is not None]
