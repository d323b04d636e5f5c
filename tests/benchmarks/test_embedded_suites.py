"""The embedded suites' tables (COLOSSEUM and GemBench layouts) from known episode records, against hand-computed
numbers."""

from __future__ import annotations

import math

import pytest

from benchmarks.embedded.suites import excluded_cells, level_tables, perturbation_tables


def episodes(task: str, seed: int, outcomes: list[int], agent: str = "policy") -> list[dict]:
    return [{"agent": agent, "task": task, "seed": seed, "episode": e, "success": bool(o)}
            for e, o in enumerate(outcomes)]


def test_perturbation_columns_average_defined_cells_and_published_columns_only():
    recs = []
    # Two runs. lift_block has no MO_Color (excluded); slide_block has it.
    #   All:        run 0 mean(lift .5, slide 0) = .25    run 1 mean(1, .5) = .75
    #   MO_Color:   run 0 slide 1.0                        run 1 slide .5
    #   MO_Size:    run 0 mean(1, 1) = 1                   run 1 mean(.5, 0) = .25
    #   Friction (not averaged): run 0 lift 0, run 1 lift 1;  unperturbed (not averaged): lift 1, 1
    for seed, (la, sa, sc, lz, sz, lf) in {0: ([1, 0], [0, 0], [1, 1], [1, 1], [1, 1], [0, 0]),
                                           1: ([1, 1], [1, 0], [1, 0], [1, 0], [0, 0], [1, 1])}.items():
        recs += episodes("lift_block@all", seed, la) + episodes("slide_block@all", seed, sa)
        recs += episodes("slide_block@mo_colour", seed, sc)
        recs += episodes("lift_block@mo_size", seed, lz) + episodes("slide_block@mo_size", seed, sz)
        recs += episodes("lift_block@friction", seed, lf) + episodes("lift_block", seed, [1, 1])
    headline, per_task = perturbation_tables(recs)
    assert headline.columns[:4] == ["Avg. SR", "All", "MO_Color", "MO_Size"]
    assert headline.cell("policy", "All").per_run == pytest.approx((0.25, 0.75))
    assert headline.cell("policy", "MO_Color").per_run == pytest.approx((1.0, 0.5))
    assert headline.cell("policy", "MO_Size").per_run == pytest.approx((1.0, 0.25))
    # Average per run over the three averaged columns: (.25 + 1 + 1)/3 = .75, (.75 + .5 + .25)/3 = .5;
    # mean .625, sample std .1768.
    avg = headline.cell("policy", "Avg. SR")
    assert avg.per_run == pytest.approx((0.75, 0.5)) and avg.std == pytest.approx(math.sqrt(0.03125))
    assert headline.cell("policy", "Friction").per_run == pytest.approx((0.0, 1.0))
    assert headline.cell("policy", "No_Perturbation").mean == 1.0
    assert per_task.cell("lift_block", "MO_Color").text() == "–"  # excluded: no cell, no zero
    assert per_task.cell("slide_block", "MO_Size").text() == "50.0 ± 70.7"
    assert any("column 13" in n for n in headline.notes)
    with pytest.raises(ValueError, match="not a perturbation-suite task"):
        perturbation_tables(episodes("lift_cylinder@all", 0, [1]))


def test_levels_mean_over_tasks_then_population_std_over_seeds():
    recs = []
    # L1: lift_block (1, .5, .5), turn_tap (.5, .5, 0) -> per seed .75, .5, .25; L2: lift_cylinder (0, .5, 1).
    for seed, (lb, tt, lc) in enumerate([([1, 1], [1, 0], [0, 0]), ([1, 0], [0, 1], [1, 0]),
                                          ([0, 1], [0, 0], [1, 1])]):
        recs += episodes("lift_block", seed, lb) + episodes("turn_tap", seed, tt) + episodes("lift_cylinder", seed, lc)
    headline, per_task = level_tables(recs)
    assert headline.columns == ["Avg.", "L1", "L2"]
    l1 = headline.cell("policy", "L1")
    assert l1.per_run == pytest.approx((0.75, 0.5, 0.25)) and l1.std == pytest.approx(math.sqrt(1 / 24))  # ddof=0
    # Average per seed: (.75 + 0)/2, (.5 + .5)/2, (.25 + 1)/2.
    assert headline.cell("policy", "Avg.").per_run == pytest.approx((0.375, 0.5, 0.625))
    assert per_task.cell("L2 lift_cylinder", "policy").mean == pytest.approx(0.5)
    assert any("L2 without 10 of its 11" in n for n in headline.notes)  # only one L2 task evaluated
    with pytest.raises(ValueError, match="not .* taskvars"):
        level_tables(episodes("lift_block@all", 0, [1]))


def test_excluded_cells_are_the_undefined_ones():
    cells = excluded_cells()
    assert len(cells) == 18
    assert ("lift_block", "mo_colour", "the instruction names this object by its colour") in cells
    assert ("turn_tap", "ro_size", "the task has no receiver object") in cells
    assert not [c for c in cells if c[0] == "drag_stick"]
