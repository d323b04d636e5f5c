"""The one palette of colours and object sizes every embedded task draws from.

Colour names follow RLBench's variation colours. ``SEEN_COLOURS`` are the ones tasks use by default;
``UNSEEN_COLOURS`` are kept out of every default variation so that a later generalisation split can hold them out
(GemBench-style "novel colour" tests) without renaming anything.
"""

from __future__ import annotations

import numpy as np

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.1, 0.1),
    "green": (0.1, 0.65, 0.15),
    "blue": (0.1, 0.25, 0.85),
    "yellow": (0.95, 0.85, 0.1),
    "cyan": (0.1, 0.8, 0.85),
    "magenta": (0.85, 0.15, 0.8),
    "orange": (1.0, 0.5, 0.05),
    "purple": (0.45, 0.15, 0.65),
    "white": (0.95, 0.95, 0.95),
    "black": (0.08, 0.08, 0.08),
    "gray": (0.5, 0.5, 0.5),
    "teal": (0.0, 0.5, 0.5),
    "navy": (0.0, 0.0, 0.5),
    "maroon": (0.5, 0.0, 0.0),
}
SEEN_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "cyan", "magenta", "orange", "purple")
UNSEEN_COLOURS: tuple[str, ...] = ("teal", "navy", "maroon", "white", "black", "gray")

# Scene colours that are not task colours (kept apart so that no target is ever table-coloured).
TABLE_RGB = (0.72, 0.6, 0.45)
FLOOR_RGB = (0.35, 0.35, 0.38)
WOOD_RGB = (0.55, 0.38, 0.22)
METAL_RGB = (0.7, 0.7, 0.72)
PLATFORM_RGB = (0.93, 0.93, 0.88)  # the stacking platform

# Object sizes (metres): half-extents of the primitives the tasks are built from.
BLOCK_HALF = 0.025  # a 5 cm cube, graspable by the Panda's 8 cm opening
BUTTON_RADIUS = 0.03
TARGET_HALF = 0.06  # flat square target pads
PEG_RADIUS = 0.012


def rgba(name: str, alpha: float = 1.0) -> np.ndarray:
    """RGBA of a palette colour; unknown names are an error that lists the palette."""
    if name not in COLOURS:
        raise ValueError(f"colour {name!r} is not in the palette {sorted(COLOURS)}")
    return np.array([*COLOURS[name], alpha])
