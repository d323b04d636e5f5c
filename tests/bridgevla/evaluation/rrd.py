"""Reading a rerun recording back through rerun's own reader (``rerun.chunk.RrdReader``), for the tests."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

CONTROL = {"rerun.controls.RowId", "log_time"}


def read_rrd(path: str | Path, timeline: str = "keypose") -> dict[str, list[tuple[int | None, dict[str, Any]]]]:
    """``{entity: [(time on timeline, or None for static rows, {column: pyarrow scalar}), ...]}``, each entity's
    rows in time order (static first), chunks merged."""
    from rerun.chunk import RrdReader

    out: dict[str, list[tuple[int | None, dict[str, Any]]]] = defaultdict(list)
    for chunk in RrdReader(str(path)).stream():
        batch = chunk.to_record_batch()
        names = [n for n in batch.schema.names if n not in CONTROL and n != timeline]
        times = batch.column(timeline).to_pylist() if timeline in batch.schema.names else [None] * batch.num_rows
        for i, t in enumerate(times):
            out[chunk.entity_path].append((t, {n: batch.column(n)[i] for n in names}))
    for rows in out.values():
        rows.sort(key=lambda r: -1 if r[0] is None else r[0])
    return dict(out)


def column(rows: list[tuple[int | None, dict[str, Any]]], name: str) -> dict[int | None, Any]:
    """``{time: python value}`` of the rows that carry ``name`` (a logged value, not null)."""
    out = {}
    for t, row in rows:
        if name in row and row[name].is_valid:
            out[t] = row[name].as_py()
    return out


def image(value: Any) -> np.ndarray:
    """An ``Image:buffer`` value and its ``Image:format`` → (H, W, C) uint8."""
    buf, fmt = value
    channels = len(buf[0]) // (fmt[0]["width"] * fmt[0]["height"])
    return np.frombuffer(bytes(buf[0]), np.uint8).reshape(fmt[0]["height"], fmt[0]["width"], channels)
