"""Result tables in the layouts the benchmarks publish, as pure functions of per-episode records.

A record is one line of the evaluation runner's ``episodes.jsonl``: a mapping with at least ``agent``, ``task``,
``seed`` (the evaluation run) and ``success``. Each harness folder builds its published layout from them
(:mod:`benchmarks.rlbench.table`, :mod:`benchmarks.colosseum.table`, :mod:`benchmarks.gembench.table`); this module
holds what they share: the :class:`Table` value (success rates in [0, 1], shown in %), per-run rates, and the
writers (Markdown, CSV, JSON, a bar plot).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Cell:
    """A success rate in [0, 1] (None: not evaluated), its spread over ``runs`` runs, and the per-run values."""

    mean: float | None
    std: float = 0.0
    runs: int = 0
    per_run: tuple[float, ...] = ()

    def text(self) -> str:
        if self.mean is None:
            return "–"
        if self.runs <= 1:
            return f"{100 * self.mean:.1f}"
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f}"


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: dict[str, dict[str, Cell]]  # row label -> column -> cell (missing column: not evaluated)
    row_header: str = "method"
    notes: list[str] = field(default_factory=list)

    def cell(self, row: str, column: str) -> Cell:
        return self.rows[row].get(column, Cell(None))

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", f"| {self.row_header} | " + " | ".join(self.columns) + " |",
                 "|---|" + "---:|" * len(self.columns)]
        lines += [f"| {row} | " + " | ".join(self.cell(row, c).text() for c in self.columns) + " |"
                  for row in self.rows]
        lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "notes": self.notes,
                "rows": {r: {c: {"mean": v.mean, "std": v.std, "runs": v.runs, "per_run": list(v.per_run)}
                             for c, v in cols.items()} for r, cols in self.rows.items()}}

    def csv_rows(self) -> list[list[str]]:
        out = [["table", self.row_header, "column", "success_mean", "success_std", "runs", "per_run"]]
        for row, cols in self.rows.items():
            for c in self.columns:
                v = cols.get(c)
                if v is not None and v.mean is not None:
                    out.append([self.title, row, c, f"{v.mean:.4f}", f"{v.std:.4f}", str(v.runs),
                                " ".join(f"{x:.4f}" for x in v.per_run)])
        return out


def mean_std(values: Sequence[float], ddof: int) -> Cell:
    """Mean and standard deviation (``ddof`` as in numpy; 0 for a single value) of per-run rates."""
    if not values:
        return Cell(None)
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=ddof)) if len(arr) > ddof else 0.0
    return Cell(float(arr.mean()), std, len(arr), tuple(float(x) for x in arr))


def check_records(records: Iterable[Record]) -> list[Record]:
    out = list(records)
    if not out:
        raise ValueError("records: no finished episodes to tabulate")
    for r in out:
        missing = [k for k in ("agent", "task", "seed", "success") if k not in r]
        if missing:
            raise ValueError(f"records: an episode record lacks {missing}: {dict(r)}")
    return out


def run_rates(records: Iterable[Record], key: Callable[[Record], str] = lambda r: r["task"]
              ) -> dict[str, dict[str, dict[int, float]]]:
    """``{agent: {key(record): {run: success rate over that run's episodes}}}`` in first-seen order."""
    groups: dict[str, dict[str, dict[int, list[bool]]]] = {}
    for r in records:
        groups.setdefault(r["agent"], {}).setdefault(key(r), {}).setdefault(int(r["seed"]), []).append(
            bool(r["success"]))
    return {a: {k: {s: float(np.mean(v)) for s, v in sorted(runs.items())} for k, runs in by_key.items()}
            for a, by_key in groups.items()}


def published_row(values: Mapping[str, float | None]) -> dict[str, Cell]:
    """A reference row from a paper (percent values; None = not reported)."""
    return {c: Cell(None if v is None else v / 100.0) for c, v in values.items()}


def write_tables(tables: Sequence[Table], out_dir: str | Path, stem: str = "table") -> dict[str, Path]:
    """``<stem>.md`` (every table), ``<stem>.csv`` (long format), ``<stem>.json`` and ``<stem>.png`` (the first,
    headline table as grouped bars). Returns the paths."""
    if not tables:
        raise ValueError("tables: nothing to write")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{stem}.{k}" for k in ("md", "csv", "json", "png")}
    # Every file replaced atomically (benchmarks.fileio): a kill mid-write never leaves a truncated table.
    atomic_write_text(paths["md"], "\n".join(t.markdown() for t in tables))
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    for i, t in enumerate(tables):
        w.writerows(t.csv_rows()[0 if i == 0 else 1:])
    atomic_write_text(paths["csv"], buf.getvalue())
    atomic_write_json(paths["json"], [t.to_json() for t in tables])
    plot_table(tables[0], paths["png"])
    return paths


def plot_table(table: Table, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: evaluation machines have no display
    import matplotlib.pyplot as plt

    rows, cols = list(table.rows), table.columns
    x = np.arange(len(cols))
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(cols) + 3), 3.8))
    for k, row in enumerate(rows):
        cells = [table.cell(row, c) for c in cols]
        means = [100 * c.mean if c.mean is not None else np.nan for c in cells]
        stds = [100 * c.std if c.mean is not None else 0.0 for c in cells]
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=row)
    ax.set_xticks(x, cols, rotation=35, ha="right")
    ax.set_ylabel("success (%)")
    ax.set_ylim(0, 105)
    ax.set_title(table.title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, dpi=110, format="png")
    plt.close(fig)
    atomic_write_bytes(path, png.getvalue())
