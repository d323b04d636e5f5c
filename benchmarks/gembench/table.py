"""GemBench's published table: one row per method, the average then L1-L4, success % as mean ± std over seeds.

As robot-3dlotus's ``scripts/summarize_tst_results.py`` @ c1da0da computes it: per seed, a taskvar's rate is its
share of successful episodes (20 per seed); a level's score for that seed is the mean over the level's taskvars;
the cell is the mean and the **population** std (``np.std``, ddof=0) over seeds. The average is the mean of the four
levels per seed (BridgeVLA: 50.0 = mean(91.1, 65.0, 43.8, 0.0)). A level counts a seed only when all of its
evaluated taskvars ran in that seed; a level with taskvars not evaluated at all is flagged. A second table lists
every taskvar.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from benchmarks.gembench.levels import LEVELS as GEMBENCH_LEVELS
from benchmarks.tables import Record, Table, check_records, mean_std, published_row, run_rates

STD_DDOF = 0
AVERAGE = "Avg."
PUBLISHED = {  # REFERENCE §5
    "BridgeVLA (published)": {AVERAGE: 50.0, "L1": 91.1, "L2": 65.0, "L3": 43.8, "L4": 0.0},
    "3D-LOTUS++ (published)": {AVERAGE: 48.0, "L1": 68.7, "L2": 64.5, "L3": 41.5, "L4": 17.4},
    "RVT-2 (published)": {AVERAGE: 44.0, "L1": 89.1, "L2": 51.0, "L3": 36.0, "L4": 0.0},
}


def gembench_tables(records: Iterable[Record], reference: bool = True,
                    level_lists: Mapping[str, Sequence[str]] | None = None, title: str = "GemBench") -> list[Table]:
    """The layout above. ``level_lists`` (default: GemBench's taskvars per level) lets another benchmark's
    generalisation levels use the same layout (the embedded benchmark's, benchmarks/embedded/suites.py)."""
    lists = GEMBENCH_LEVELS if level_lists is None else level_lists
    level_of = {tv: lvl for lvl, tvs in lists.items() for tv in tvs}
    recs = check_records(records)
    unknown = sorted({r["task"] for r in recs if r["task"] not in level_of})
    if unknown:
        raise ValueError(f"records: {unknown} are not {title} taskvars")
    rates = run_rates(recs)  # agent -> taskvar -> seed -> rate
    levels = [lvl for lvl in lists if any(level_of[r["task"]] == lvl for r in recs)]
    rows, per_taskvar, notes = {}, {}, []
    for agent, by_tv in rates.items():
        seeds = sorted({s for per_seed in by_tv.values() for s in per_seed})
        score = {}  # level -> seed -> mean over the level's taskvars
        for lvl in levels:
            tvs = [tv for tv in lists[lvl] if tv in by_tv]
            score[lvl] = {s: float(np.mean([by_tv[tv][s] for tv in tvs])) for s in seeds
                          if tvs and all(s in by_tv[tv] for tv in tvs)}
            missing = len(lists[lvl]) - len(tvs)
            if missing:
                notes.append(f"{agent}: {lvl} without {missing} of its {len(lists[lvl])} taskvars")
        row = {lvl: mean_std(list(score[lvl].values()), STD_DDOF) for lvl in levels}
        complete = [s for s in seeds if all(s in score[lvl] for lvl in levels)]
        row[AVERAGE] = mean_std([float(np.mean([score[lvl][s] for lvl in levels])) for s in complete], STD_DDOF)
        rows[agent] = row
        for tv in [tv for lvl in levels for tv in lists[lvl] if tv in by_tv]:
            per_taskvar.setdefault(f"{level_of[tv]} {tv}", {})[agent] = mean_std(list(by_tv[tv].values()), STD_DDOF)
    notes.insert(0, f"success %, mean ± std (np.std, ddof={STD_DDOF}) over seeds; level = mean over its taskvars "
                    f"per seed; {AVERAGE} = mean of the levels per seed")
    if reference:
        for name, values in PUBLISHED.items():
            rows[name] = published_row(values)
        notes.append("(published): numbers quoted in REFERENCE §5, not rerun here")
    headline = Table(title, [AVERAGE] + levels, rows, notes=notes)
    return [headline, Table(f"{title} per taskvar", list(rates), per_taskvar, row_header="taskvar")]
