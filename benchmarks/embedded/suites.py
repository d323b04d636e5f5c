"""The embedded benchmark's two evaluation suites as tables: episode records -> COLOSSEUM-style perturbation table
or GemBench-style level table (``benchmarks.tables``).

A record is one finished episode as the evaluation runner (or ``expert_report``) writes it: at least ``task`` (a
suite task name), ``seed`` (the evaluation seed: rates are computed per seed, then mean ± std over seeds) and
``success``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from benchmarks import tables
from benchmarks.embedded import perturbations as pert
from benchmarks.embedded.levels import LEVELS, level_of
from benchmarks.embedded.tasks import TASKS


def perturbation_table(records: Iterable[Mapping]) -> tables.ColosseumTable:
    """Tasks (catalogue order) × factors (COLOSSEUM's order and names), the average over COLOSSEUM's columns."""
    rates = {(*pert.split_name(t), s): r for (t, s), r in tables.rates_by(records, ["task", "seed"]).items()}
    present = {t for t, _, _ in rates}
    unknown = sorted(present - set(TASKS))
    if unknown:
        raise ValueError(f"records: tasks {unknown} are not perturbation-suite tasks")
    return tables.colosseum_table(rates, [t for t in TASKS if t in present], pert.SUITE_FACTORS, pert.AVERAGED,
                                  pert.COLOSSEUM_NAMES)


def level_table(records: Iterable[Mapping]) -> tables.GemBenchTable:
    """L1-L4 as GemBench reports them: per level the mean over its tasks, mean ± std over seeds."""
    rates = tables.rates_by(records, ["task", "seed"])
    return tables.gembench_table(rates, {t: level_of(t) for t, _ in rates}, tuple(LEVELS))


def excluded_cells() -> list[tuple[str, str, str]]:
    """(task, factor, why) of every cell the perturbation suite leaves out."""
    return [(t, f, why) for t, cls in TASKS.items() for f in pert.SUITE_FACTORS
            if (why := pert.excluded(cls, f)) is not None]
