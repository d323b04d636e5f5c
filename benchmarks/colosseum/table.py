"""COLOSSEUM's published table: one row per method, the 14 perturbation columns (factors 1-14) and their average.

Per method, run and factor: each ``<task>_<factor>`` cell's rate is its share of successful episodes; the factor's
column is the mean over the tasks evaluated with it (tasks whose JSON disables a factor have no such cell: the
published scripts average over the cells that exist); the run's average is the plain mean of the 14 columns
(REFERENCE §3). Cells are mean ± std over runs (ddof=1; one run shows the mean alone). Factors outside the 14
(0 none, 15 RLBench+all, 16 friction, 17 mass) are shown after them and never averaged. A second table gives every
task x factor rate (the layout of BridgeVLA's ``cal_statics.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from benchmarks.colosseum.env import FACTORS, PUBLISHED_FACTORS, split_cell
from benchmarks.tables import Cell, Record, Table, check_records, mean_std, published_row, run_rates

STD_DDOF = 1
AVERAGE = "Avg. SR"
# REFERENCE §5 (only the columns the summary quotes; the rest are not reported there)
PUBLISHED = {
    "BridgeVLA (published)": {AVERAGE: 64.0, "All": 18.7, "Distractor": 51.8},
    "RVT-2 (published)": {AVERAGE: 56.7, "Distractor": 60.8},
}


def colosseum_tables(records: Iterable[Record], reference: bool = True, title: str = "COLOSSEUM") -> list[Table]:
    """The layout above; ``title`` names the tables (the embedded perturbation suite reuses the layout)."""
    recs = check_records(records)
    for r in recs:
        split_cell(r["task"])  # every task must be a COLOSSEUM cell name
    rates = run_rates(recs)  # agent -> cell -> run -> rate
    factors = sorted({split_cell(r["task"])[1] for r in recs})
    shown = [f for f in PUBLISHED_FACTORS if f in factors] + [f for f in factors if f not in PUBLISHED_FACTORS]
    rows, details, notes = {}, [], []
    for agent, by_cell in rates.items():
        runs = sorted({s for per_run in by_cell.values() for s in per_run})
        column = {}  # factor -> run -> mean over the tasks with that cell in that run
        for f in shown:
            cells = [c for c in by_cell if split_cell(c)[1] == f]
            column[f] = {s: float(np.mean([by_cell[c][s] for c in cells if s in by_cell[c]]))
                         for s in runs if any(s in by_cell[c] for c in cells)}
        row = {FACTORS[f]: mean_std(list(column[f].values()), STD_DDOF) for f in shown}
        averaged = [f for f in PUBLISHED_FACTORS if f in column]
        complete = [s for s in runs if all(s in column[f] for f in averaged)]
        row[AVERAGE] = mean_std([float(np.mean([column[f][s] for f in averaged])) for s in complete], STD_DDOF)
        rows[agent] = row
        if len(averaged) < len(PUBLISHED_FACTORS):
            notes.append(f"{agent}: the average covers {len(averaged)} of the 14 published columns")
        tasks = list(dict.fromkeys(split_cell(c)[0] for c in by_cell))
        detail = {t: {FACTORS[f]: mean_std(list(by_cell[f"{t}_{f}"].values()), STD_DDOF) for f in shown
                      if f"{t}_{f}" in by_cell} for t in tasks}
        detail["Average"] = {FACTORS[f]: Cell(float(np.mean([detail[t][FACTORS[f]].mean for t in tasks
                                                             if FACTORS[f] in detail[t]])))
                             for f in shown}
        details.append(Table(f"{title} per task: {agent}", [FACTORS[f] for f in shown], detail, row_header="task"))
    extra = [FACTORS[f] for f in shown if f not in PUBLISHED_FACTORS]
    notes.insert(0, f"success %, mean ± std (ddof={STD_DDOF}) over runs; {AVERAGE} = plain mean of the 14 "
                    f"perturbation columns (factors 1-14), per run" + (f"; not averaged: {extra}" if extra else ""))
    if reference:
        for name, values in PUBLISHED.items():
            rows[name] = published_row(values)
        notes.append("(published): numbers quoted in REFERENCE §5, not rerun here; '–' = not quoted there")
    headline = Table(title, [AVERAGE] + [FACTORS[f] for f in shown], rows, notes=notes)
    return [headline] + details
