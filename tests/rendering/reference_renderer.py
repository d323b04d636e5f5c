"""A slow, obviously-correct renderer in plain Python loops, written from the spec in docs/geometry.md.

Depths are compared at float32 precision, as the spec says.

It shares no code with rendering.render: projection is recomputed here from the view table by hand.
"""

from __future__ import annotations

import math

import numpy as np

# (a, b, depth) per view, straight from the table in docs/geometry.md.
VIEWS = {
    0: lambda x, y, z: (x, y, 1 - z),  # top
    1: lambda x, y, z: (y, z, 1 - x),  # front
    2: lambda x, y, z: (-x, z, 1 - y),  # side
}


def reference_render(points, features, size, radius):
    """points: list of (x, y, z); features: list of tuples. Returns per view dict (row, col) -> (point index, depth)."""
    out = []
    r_px = radius * size / 2
    for k in range(3):
        proj = []
        zbuf = {}
        for i, (x, y, z) in enumerate(points):
            if not all(math.isfinite(c) and -1 <= c <= 1 for c in (x, y, z)):
                proj.append(None)
                continue
            a, b, d = VIEWS[k](x, y, z)
            u = (a + 1) * size / 2 - 0.5
            v = (1 - b) * size / 2 - 0.5
            col = min(max(math.floor(u + 0.5), 0), size - 1)
            row = min(max(math.floor(v + 0.5), 0), size - 1)
            d32 = float(np.float32(d))
            proj.append((u, v, d32))
            d = d32
            best = zbuf.get((row, col))
            if best is None or (d, i) < (best[1], best[0]):
                zbuf[(row, col)] = (i, d)
        if radius <= 0:
            out.append(zbuf)
            continue
        final = {}
        for row in range(size):
            for col in range(size):
                cands = []
                if (row, col) in zbuf:
                    i, d = zbuf[(row, col)]
                    cands.append((d, i))
                for (r2, c2), (i, d) in zbuf.items():
                    if (r2, c2) == (row, col):
                        continue
                    u, v, _ = proj[i]
                    if (u - col) ** 2 + (v - row) ** 2 <= r_px * r_px:
                        cands.append((d, i))
                if cands:
                    d, i = min(cands)
                    final[(row, col)] = (i, d)
        out.append(final)
    return out
