"""GemBench's task-variation lists per level (vlc-robot/robot-3dlotus @ c1da0da, ``assets/taskvars_*.json``).

L1 (novel placements) is the 31 training taskvars; L2 novel rigid objects (28), L3 novel articulated objects (21),
L4 long-horizon tasks (12). A taskvar is ``<RLBench task file>+<variation>``; the four lists are disjoint.
"""

from __future__ import annotations

LEVELS: dict[str, tuple[str, ...]] = {
    "L1": (
        "push_button+0", "push_button+3", "push_button+4", "close_fridge+0", "close_laptop_lid+0",
        "close_microwave+0", "open_door+0", "open_box+0", "open_drawer+0", "open_drawer+2", "pick_and_lift+0",
        "pick_and_lift+2", "pick_and_lift+7", "pick_up_cup+8", "pick_up_cup+9", "pick_up_cup+11",
        "stack_blocks+30", "stack_blocks+36", "stack_blocks+39", "put_groceries_in_cupboard+0",
        "put_groceries_in_cupboard+3", "put_money_in_safe+0", "put_money_in_safe+1",
        "slide_block_to_color_target_peract+0", "slide_block_to_color_target_peract+1",
        "reach_and_drag_peract+14", "reach_and_drag_peract+18", "close_jar_peract+15", "close_jar_peract+16",
        "light_bulb_in_peract+17", "light_bulb_in_peract+19",
    ),
    "L2": (
        "push_button+13", "push_button+15", "push_button+17", "pick_and_lift+14", "pick_and_lift+16",
        "pick_and_lift+18", "pick_up_cup+10", "pick_up_cup+12", "pick_up_cup+13", "stack_blocks+24",
        "stack_blocks+27", "stack_blocks+33", "slide_block_to_color_target_peract+2",
        "slide_block_to_color_target_peract+3", "reach_and_drag_peract+5", "reach_and_drag_peract+7",
        "put_cube_in_safe+0", "close_jar_peract+3", "close_jar_peract+4", "light_bulb_in_peract+1",
        "light_bulb_in_peract+2", "lamp_on+0", "pick_and_lift_cylinder+0", "pick_and_lift_star+0",
        "pick_and_lift_moon+0", "pick_and_lift_toy+0", "put_groceries_in_cupboard+7",
        "put_groceries_in_cupboard+8",
    ),
    "L3": (
        "open_drawer_long+0", "open_drawer_long+1", "open_drawer_long+2", "open_drawer_long+3",
        "close_fridge2+0", "close_laptop_lid2+0", "close_microwave2+0", "open_door2+0", "open_box2+0",
        "open_drawer2+0", "open_drawer3+0", "close_door+0", "close_box+0", "toilet_seat_up+0", "open_fridge+0",
        "open_laptop_lid+0", "open_microwave+0", "put_money_in_safe+2", "open_drawer+1", "close_drawer+0",
        "close_grill+0",
    ),
    "L4": (
        "push_buttons4+1", "push_buttons4+2", "push_buttons4+3", "take_shoes_out_of_box+0",
        "put_items_in_drawer+0", "put_items_in_drawer+2", "put_items_in_drawer+4", "tower4+1", "tower4+3",
        "stack_cups+0", "stack_cups+3", "put_all_groceries_in_cupboard+0",
    ),
}
LEVEL_OF: dict[str, str] = {tv: level for level, tvs in LEVELS.items() for tv in tvs}
TEST_SEEDS = (200, 300, 400, 500, 600)  # 20 episodes per taskvar and seed
EPISODES_PER_SEED = 20


def split_taskvar(taskvar: str) -> tuple[str, int]:
    """``"push_button+3"`` -> ``("push_button", 3)``."""
    task, sep, variation = taskvar.rpartition("+")
    if not sep or not task or not variation.isdigit():
        raise ValueError(f"taskvar {taskvar!r} is not '<task>+<variation>'")
    return task, int(variation)
