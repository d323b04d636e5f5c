"""RLBench-18's published table: one row per method, the average then the 18 tasks, success % as mean ± std over
runs (BridgeVLA/RVT-2/3D Diffuser Actor report 5 runs of 25 episodes per task).

Per method and run: a task's rate is its share of successful episodes in that run; the run's average is the plain
mean over tasks (runs missing a task do not count toward the average). Cells are mean ± std over runs; the std is
the sample std (ddof=1): the papers do not say which they use, and this is the runner's report's convention too.
Tasks outside the 18 (e.g. the embedded benchmark's) are shown after them under their own names.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from benchmarks.tables import Record, Table, check_records, mean_std, published_row, run_rates

STD_DDOF = 1
# Column order and short names of the published table (BridgeVLA Table 1).
TASK_COLUMNS: dict[str, str] = {
    "close_jar": "Close Jar", "reach_and_drag": "Drag Stick", "insert_onto_square_peg": "Insert Peg",
    "meat_off_grill": "Meat off Grill", "open_drawer": "Open Drawer", "place_cups": "Place Cups",
    "place_wine_at_rack_location": "Place Wine", "push_buttons": "Push Buttons",
    "put_groceries_in_cupboard": "Put in Cupboard", "put_item_in_drawer": "Put in Drawer",
    "put_money_in_safe": "Put in Safe", "light_bulb_in": "Screw Bulb", "slide_block_to_color_target": "Slide Block",
    "place_shape_in_shape_sorter": "Sort Shape", "stack_blocks": "Stack Blocks", "stack_cups": "Stack Cups",
    "sweep_to_dustpan_of_size": "Sweep to Dustpan", "turn_tap": "Turn Tap",
}
AVERAGE = "Avg. SR"
# REFERENCE §5: BridgeVLA's published per-task success (%), in TASK_COLUMNS order.
BRIDGEVLA_PUBLISHED = dict(zip(TASK_COLUMNS.values(), (
    100.0, 100.0, 88.0, 100.0, 100.0, 58.4, 88.0, 98.4, 73.6, 99.2, 99.2, 87.2, 96.0, 60.8, 76.8, 81.6, 87.2, 92.8))) \
    | {AVERAGE: 88.2}


def rlbench_tables(records: Iterable[Record], reference: bool = True) -> list[Table]:
    recs = check_records(records)
    rates = run_rates(recs)
    seen = list(dict.fromkeys(r["task"] for r in recs))
    tasks = [t for t in TASK_COLUMNS if t in seen] + [t for t in seen if t not in TASK_COLUMNS]
    label = {t: TASK_COLUMNS.get(t, t) for t in tasks}
    rows = {}
    for agent, by_task in rates.items():
        row = {label[t]: mean_std(list(by_task[t].values()), STD_DDOF) for t in tasks if t in by_task}
        runs = sorted({s for t in tasks for s in by_task.get(t, {})})
        complete = [s for s in runs if all(s in by_task.get(t, {}) for t in tasks)]
        row[AVERAGE] = mean_std([float(np.mean([by_task[t][s] for t in tasks])) for s in complete], STD_DDOF)
        rows[agent] = row
    episodes = sorted({sum(1 for r in recs if r["agent"] == a and r["task"] == t and r["seed"] == s)
                       for a, by_task in rates.items() for t in by_task for s in by_task[t]})
    notes = [f"success %, mean ± std (ddof={STD_DDOF}) over runs; {'/'.join(map(str, episodes))} episodes per task "
             f"and run; the average is over the {len(tasks)} tasks shown, per run"]
    if reference and set(tasks) <= set(TASK_COLUMNS):
        rows["BridgeVLA (published)"] = published_row({k: v for k, v in BRIDGEVLA_PUBLISHED.items()
                                                       if k == AVERAGE or k in label.values()})
        notes.append("BridgeVLA (published): the paper's numbers (REFERENCE §5), 5 runs x 25 episodes, not rerun here")
    return [Table("RLBench-18", [AVERAGE] + [label[t] for t in tasks], rows, notes=notes)]
