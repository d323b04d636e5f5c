"""The published table layouts, fed known per-episode results and checked against hand-computed numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.colosseum.table import colosseum_tables
from benchmarks.gembench.table import gembench_tables
from benchmarks.rlbench.table import BRIDGEVLA_PUBLISHED, rlbench_tables
from benchmarks.tables import Cell, mean_std, write_tables


def episodes(agent, task, seed, outcomes):
    return [{"agent": agent, "task": task, "seed": seed, "episode": e, "success": bool(o)}
            for e, o in enumerate(outcomes)]


def test_rlbench_mean_std_over_runs_hand_computed(tmp_path):
    recs = []
    # close_jar runs: 3/4, 2/4, 4/4 -> mean .75, sample std .25; open_drawer: 2/4, 1/4, 0/4 -> .25 ± .25
    for seed, jar, drawer in ((0, [1, 1, 1, 0], [1, 1, 0, 0]), (1, [1, 1, 0, 0], [1, 0, 0, 0]),
                              (2, [1, 1, 1, 1], [0, 0, 0, 0])):
        recs += episodes("policy", "open_drawer", seed, drawer) + episodes("policy", "close_jar", seed, jar)
    recs += episodes("random", "close_jar", 0, [0, 0, 0, 1]) + episodes("random", "open_drawer", 0, [0] * 4)
    recs += episodes("random", "close_jar", 1, [1] * 4)  # run 1 lacks open_drawer: not averaged
    (table,) = rlbench_tables(recs)
    assert table.columns == ["Avg. SR", "Close Jar", "Open Drawer"]  # published order, published names
    assert table.cell("policy", "Close Jar").text() == "75.0 ± 25.0"
    assert table.cell("policy", "Open Drawer").text() == "25.0 ± 25.0"
    # per-run averages .625, .375, .5 -> .5, sample std .125
    avg = table.cell("policy", "Avg. SR")
    assert avg.per_run == pytest.approx((0.625, 0.375, 0.5)) and avg.text() == "50.0 ± 12.5"
    assert table.cell("random", "Close Jar").text() == "62.5 ± 53.0"  # (.25, 1.0): std .530
    assert table.cell("random", "Avg. SR").text() == "12.5" and table.cell("random", "Avg. SR").runs == 1
    assert table.cell("BridgeVLA (published)", "Close Jar").text() == "100.0"
    assert table.cell("BridgeVLA (published)", "Avg. SR").text() == "88.2"
    md = table.markdown()
    assert "| policy | 50.0 ± 12.5 | 75.0 ± 25.0 | 25.0 ± 25.0 |" in md and "ddof=1" in md
    # the published per-task numbers average to the published 88.2
    tasks = [v for k, v in BRIDGEVLA_PUBLISHED.items() if k != "Avg. SR"]
    assert len(tasks) == 18 and np.mean(tasks) == pytest.approx(88.2, abs=0.05)
    (own,) = rlbench_tables(episodes("policy", "lift_block", 0, [1, 0]))
    assert own.columns == ["Avg. SR", "lift_block"] and "BridgeVLA (published)" not in own.rows


def test_colosseum_14_columns_and_plain_average_hand_computed():
    recs = []
    # run 0: Table_Color (9) = mean(.5, .25) = .375; Distractor (11) = mean(1, .5) = .75; RO_Color (3, close_box only) 0
    # run 1: Table_Color = mean(1, .75) = .875; Distractor = mean(.5, .5) = .5; RO_Color = .25
    runs = {0: ([1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]),
            1: ([1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0])}
    for seed, (b9, d9, b11, d11, b3) in runs.items():
        recs += episodes("policy", "close_box_9", seed, b9) + episodes("policy", "open_drawer_9", seed, d9)
        recs += episodes("policy", "close_box_11", seed, b11) + episodes("policy", "open_drawer_11", seed, d11)
        recs += episodes("policy", "close_box_3", seed, b3)
    recs += episodes("policy", "close_box_0", 0, [1, 1])  # unperturbed: shown, never averaged
    headline, per_task = colosseum_tables(recs)
    assert headline.columns == ["Avg. SR", "RO_Color", "Table_Color", "Distractor", "No_Perturbation"]
    tc = headline.cell("policy", "Table_Color")
    assert tc.per_run == pytest.approx((0.375, 0.875)) and tc.std == pytest.approx(0.5 / np.sqrt(2))
    assert headline.cell("policy", "Distractor").per_run == pytest.approx((0.75, 0.5))
    assert headline.cell("policy", "RO_Color").per_run == pytest.approx((0.0, 0.25))
    # averages per run: (0 + .375 + .75)/3 = .375 and (.25 + .875 + .5)/3 = .541667
    avg = headline.cell("policy", "Avg. SR")
    assert avg.per_run == pytest.approx((0.375, 1.625 / 3)) and avg.mean == pytest.approx((0.375 + 1.625 / 3) / 2)
    assert headline.cell("policy", "No_Perturbation").text() == "100.0"
    notes = " ".join(headline.notes)
    assert "covers 3 of the 14" in notes and "not averaged: ['No_Perturbation']" in notes
    assert headline.cell("BridgeVLA (published)", "Avg. SR").text() == "64.0"
    assert headline.cell("BridgeVLA (published)", "Table_Color").text() == "–"
    assert per_task.cell("close_box", "Table_Color").per_run == pytest.approx((0.5, 1.0))
    assert per_task.cell("open_drawer", "RO_Color").mean is None  # open_drawer has no receiver object
    assert per_task.cell("Average", "Table_Color").mean == pytest.approx(np.mean([0.75, 0.5]))  # task means
    with pytest.raises(ValueError, match="factor"):
        colosseum_tables(episodes("policy", "close_jar", 0, [1]))


def test_colosseum_full_published_columns_average_plainly():
    # 14 columns with rates k/14 for k = 1..14 (one task, one episode bin each): the average is their plain mean
    recs = []
    for f in range(1, 15):
        recs += episodes("policy", f"close_box_{f}", 0, [1] * f + [0] * (14 - f))
    headline, _ = colosseum_tables(recs, reference=False)
    assert len(headline.columns) == 15 and headline.cell("policy", "Avg. SR").mean == pytest.approx(7.5 / 14)
    assert not any("covers" in n for n in headline.notes) and list(headline.rows) == ["policy"]


def test_gembench_levels_with_population_std_over_seeds_hand_computed():
    recs = []
    for seed, pb, cf, tw in ((200, [1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]),
                             (300, [1, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0])):
        recs += episodes("policy", "push_button+0", seed, pb) + episodes("policy", "close_fridge+0", seed, cf)
        recs += episodes("policy", "tower4+1", seed, tw)
    recs += episodes("policy", "push_button+0", 400, [1, 1])  # seed 400 lacks close_fridge+0 and tower4+1
    headline, per_tv = gembench_tables(recs)
    assert headline.columns == ["Avg.", "L1", "L4"]
    # L1 per seed: mean(.5, 1) = .75, mean(.25, .75) = .5 -> .625 ± .125 (np.std); L4: 0, .25 -> .125 ± .125
    assert headline.cell("policy", "L1").text() == "62.5 ± 12.5"
    assert headline.cell("policy", "L4").text() == "12.5 ± 12.5"
    assert headline.cell("policy", "Avg.").per_run == pytest.approx((0.375, 0.375))
    assert headline.cell("policy", "Avg.").text() == "37.5 ± 0.0"
    assert any("L1 without 29 of its 31" in n for n in headline.notes)
    assert per_tv.cell("L1 push_button+0", "policy").per_run == pytest.approx((0.5, 0.25, 1.0))
    published = headline.rows["BridgeVLA (published)"]
    assert np.mean([published[k].mean for k in ("L1", "L2", "L3", "L4")]) == pytest.approx(0.50, abs=5e-4)
    with pytest.raises(ValueError, match="taskvars"):
        gembench_tables(episodes("policy", "push_button+99", 200, [1]))


def test_writers_and_cells(tmp_path):
    recs = episodes("policy", "close_jar", 0, [1, 0]) + episodes("policy", "close_jar", 1, [1, 1])
    paths = write_tables(rlbench_tables(recs), tmp_path)
    assert sorted(p.name for p in paths.values()) == ["table.csv", "table.json", "table.md", "table.png"]
    assert paths["png"].stat().st_size > 1000
    data = json.loads(paths["json"].read_text())
    assert data[0]["rows"]["policy"]["Close Jar"]["per_run"] == [0.5, 1.0]
    lines = paths["csv"].read_text().splitlines()
    assert lines[0].startswith("table,method,column") and "RLBench-18,policy,Close Jar,0.7500,0.3536,2" in lines[2]
    assert Cell(None).text() == "–" and mean_std([], 1).mean is None and mean_std([0.5], 1).std == 0.0
    with pytest.raises(ValueError, match="lacks"):
        rlbench_tables([{"agent": "a", "task": "close_jar", "success": True}])
    with pytest.raises(ValueError, match="no finished"):
        rlbench_tables([])
