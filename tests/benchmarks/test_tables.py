"""The COLOSSEUM and GemBench table builders against hand-computed values."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import tables

# Two tasks, five factors, two evaluation seeds; task t2 has no factor b (an excluded cell).
_RATES = {
    ("t1", "none", 0): 1.0, ("t1", "all", 0): 0.2, ("t1", "a", 0): 0.6, ("t1", "b", 0): 0.4, ("t1", "fric", 0): 1.0,
    ("t2", "none", 0): 0.8, ("t2", "all", 0): 0.0, ("t2", "a", 0): 0.5, ("t2", "fric", 0): 0.5,
    ("t1", "none", 1): 1.0, ("t1", "all", 1): 0.4, ("t1", "a", 1): 0.8, ("t1", "b", 1): 0.6, ("t1", "fric", 1): 0.9,
    ("t2", "none", 1): 0.6, ("t2", "all", 1): 0.2, ("t2", "a", 1): 0.7, ("t2", "fric", 1): 0.7,
}
_SD2 = math.sqrt(0.02)  # sample std of two values 0.1 apart from their mean


def _colosseum():
    return tables.colosseum_table(_RATES, ["t1", "t2"], ["none", "all", "a", "b", "fric"], ["all", "a", "b"],
                                  {"a": "MO_Color"})


def test_colosseum_columns_average_over_defined_tasks_then_over_seeds():
    t = _colosseum()
    # all: seed 0 (0.2 + 0.0) / 2 = 0.1, seed 1 (0.4 + 0.2) / 2 = 0.3.
    assert t.columns["all"].mean == pytest.approx(0.2) and t.columns["all"].std == pytest.approx(_SD2)
    assert t.columns["a"].mean == pytest.approx(0.65) and t.columns["a"].std == pytest.approx(_SD2)
    # b is excluded for t2: the column is t1's alone (0.4, 0.6), not pulled down by a zero.
    assert t.columns["b"].mean == pytest.approx(0.5)
    assert t.columns["none"].mean == pytest.approx(0.85) and t.columns["none"].std == pytest.approx(math.sqrt(0.005))
    assert t.columns["fric"].mean == pytest.approx(0.775)
    assert ("t2", "b") not in t.cells and t.cells[("t1", "b")].mean == pytest.approx(0.5)


def test_colosseum_average_is_the_mean_of_the_averaged_columns():
    t = _colosseum()
    # Per seed: (0.1 + 0.55 + 0.4) / 3 = 0.35 and (0.3 + 0.75 + 0.6) / 3 = 0.55; none and fric are left out.
    assert t.average.mean == pytest.approx(0.45) and t.average.std == pytest.approx(_SD2) and t.average.n == 2
    # Rows average a task's own averaged cells: t1 (0.4, 0.6) -> 0.5; t2 (0.25, 0.45) -> 0.35. Their mean (0.425)
    # is not the published average, which weighs each column equally.
    assert t.rows["t1"].mean == pytest.approx(0.5) and t.rows["t2"].mean == pytest.approx(0.35)


def test_colosseum_outputs():
    t = _colosseum()
    md = tables.colosseum_markdown(t).splitlines()
    assert md[0] == "| task | none | all | MO_Color | b | fric | average |"
    assert md[3].startswith("| t2 | 70.0 ± 14.1 | 10.0 ± 14.1 | 60.0 ± 14.1 | – | 60.0 ± 14.1 |")
    assert md[-1].endswith("| **45.0 ± 14.1** |")
    csv = tables.colosseum_csv(t)
    assert "mean,average,45.00,14.14,2" in csv and "t1,b,50.00,14.14,2" in csv
    js = tables.colosseum_json(t)
    json.dumps(js)  # plain JSON
    assert js["average"] == pytest.approx(0.45) and js["excluded"] == {"t1": [], "t2": ["b"]}
    assert tables.colosseum_markdown(t, std=False).splitlines()[-1].endswith("| **45.0** |")


def test_colosseum_rejects_an_averaged_factor_it_does_not_have():
    with pytest.raises(ValueError, match="averaged factors"):
        tables.colosseum_table(_RATES, ["t1"], ["none"], ["all"])


def test_gembench_levels_mean_over_tasks_then_mean_std_over_seeds():
    rates = {("a", s): v for s, v in enumerate([1.0, 0.8, 0.9])}
    rates |= {("b", s): v for s, v in enumerate([0.6, 0.6, 0.3])}
    rates |= {("c", s): v for s, v in enumerate([0.5, 0.2, 0.2])}
    rates |= {("d", s): v for s, v in enumerate([0.0, 0.1, 0.2])}
    t = tables.gembench_table(rates, {"a": "L1", "b": "L1", "c": "L2", "d": "L4"})
    # L1 per seed: 0.8, 0.7, 0.6.
    assert t.per_level["L1"].mean == pytest.approx(0.7) and t.per_level["L1"].std == pytest.approx(0.1)
    assert t.per_level["L2"].mean == pytest.approx(0.3) and t.per_level["L2"].std == pytest.approx(math.sqrt(0.03))
    assert t.per_level["L3"].n == 0 and t.tasks["L3"] == []
    assert t.per_level["L4"].mean == pytest.approx(0.1) and t.per_level["L4"].std == pytest.approx(0.1)
    # Average per seed over the levels with data: 0.4333, 0.3333, 0.3333.
    assert t.average.mean == pytest.approx(1.1 / 3) and t.average.std == pytest.approx(math.sqrt(0.01 / 3))
    md = tables.gembench_markdown(t).splitlines()
    assert md[2] == "| 70.0 ± 10.0 | 30.0 ± 17.3 | – | 10.0 ± 10.0 | 36.7 ± 5.8 |"
    assert "| L1 | b | 50.0 ± 17.3 |" in md
    assert "L1,mean,70.00,10.00,3" in tables.gembench_csv(t)
    js = tables.gembench_json(t)
    assert js["levels"]["L3"] is None and js["average"] == pytest.approx(1.1 / 3)
    with pytest.raises(ValueError, match="no level"):
        tables.gembench_table({("x", 0): 1.0}, {})


def test_rates_by_groups_episodes():
    eps = [{"task": "a", "seed": 0, "success": True}, {"task": "a", "seed": 0, "success": False},
           {"task": "a", "seed": 1, "success": True}, {"task": "b", "seed": 0, "success": False}]
    assert tables.rates_by(eps, ["task", "seed"]) == {("a", 0): 0.5, ("a", 1): 1.0, ("b", 0): 0.0}
    assert tables.over_seeds([0.5]).std == 0.0 and tables.over_seeds([]).n == 0
