"""Readers of real detection data: RoboPoint's detection conversations and COCO-format instance annotations.

Both yield :class:`DetectionRecord` — an image path, a referring expression and the normalised boxes it refers to —
streamed from the annotation file (``pretrain.jsonstream``), so a corpus of millions of entries never sits in memory
as Python objects. A malformed entry is an :class:`AnnotationError` naming the file and the entry; entries that are
simply not detection data (RoboPoint's other conversation kinds) are counted in :class:`ReadStats` and skipped.

**RoboPoint** (github.com/wentaoyuan/RoboPoint, read at commit 9d54aac; its data on Hugging Face,
``wentao-yuan/robopoint-data``): a JSON list (or JSONL) of LLaVA-style entries
``{"id", "image": <path relative to the image folder>, "conversations": [{"from": "human", "value": ...},
{"from": "gpt", "value": ...}, ...]}``. Two question phrasings carry boxes, both normalised to [0, 1] with the origin
at the top-left corner; the expression is the question without its phrasing (and without ``<image>``):

* ``"<image>\\nPlease provide the bounding box coordinate of the region this sentence describes: <expression>"``,
  answered by one box ``"[x1, y1, x2, y2]"``;
* ``"<expression> Format the result as a list of tuples, i.e. [(x1, y1, w1, h1), ...], ..."``, answered by
  ``"[(cx, cy, w, h), ...]"`` — box centres and sizes, one tuple per instance.

Every other turn (free-space and object pointing, VQA, captions) is skipped and counted.

**COCO** (cocodataset.org "Data format", object detection): one JSON object with ``images`` (``id``, ``file_name``,
``width``, ``height``), ``annotations`` (``image_id``, ``category_id``, ``bbox`` = [x, y, width, height] in pixels,
``iscrowd``) and ``categories`` (``id``, ``name``). One record per (image, category) with every box of that
category in the image; the expression is the category name (a template is applied when batching).
"""

from __future__ import annotations

import ast
import json
import math
from array import array
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pretrain.jsonstream import iter_object, iter_records

Box = tuple[float, float, float, float]

# The two RoboPoint question phrasings that carry boxes (facts of the published data, see the module doc).
ROBOPOINT_XYXY_PREFIX = "Please provide the bounding box coordinate of the region this sentence describes: "
ROBOPOINT_CXCYWH_SUFFIX = (
    " Format the result as a list of tuples, i.e. [(x1, y1, w1, h1), (x2, y2, w2, h2), ...], where x and y are the "
    "normalized pixel locations of the object centers, and w and h are the normalized object widths and heights. "
    "All values of x, y, w, and h should be between 0 and 1."
)
IMAGE_TAG = "<image>"
# Normalised coordinates a little outside [0, 1] are rounding (clipped); further out, the entry is malformed.
BOX_TOLERANCE = 0.02


class AnnotationError(ValueError):
    """A malformed annotation; the message names the file and the entry."""


@dataclass(frozen=True)
class DetectionRecord:
    image: str  # path as written in the annotations (relative to the image folder)
    expression: str  # RoboPoint: the referring expression; COCO: the category name
    boxes: tuple[Box, ...]  # normalised (x1, y1, x2, y2), origin top-left, at least one
    entry: str  # where it came from, for reports ("entry 12 (id '...'), turn 2" / "image 139, category 'cup'")


@dataclass
class ReadStats:
    """What a reader skipped, by reason (counts), and how many records it produced."""

    records: int = 0
    skipped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"records": self.records, "skipped": dict(sorted(self.skipped.items()))}


def _finite_numbers(values: Any, n: int) -> list[float] | None:
    if not isinstance(values, (list, tuple)) or len(values) != n:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        return None
    return [float(v) for v in values]


def _normalised_box(x1: float, y1: float, x2: float, y2: float) -> Box | None:
    """Clip a normalised xyxy box into [0, 1] if it is only rounding away; None if it is not a box there."""
    lo, hi = -BOX_TOLERANCE, 1.0 + BOX_TOLERANCE
    if not (lo <= x1 <= x2 <= hi and lo <= y1 <= y2 <= hi):
        return None
    return (min(max(x1, 0.0), 1.0), min(max(y1, 0.0), 1.0), min(max(x2, 0.0), 1.0), min(max(y2, 0.0), 1.0))


_NOT_A_LITERAL = object()


def _literal(text: str) -> Any:
    """A Python literal of numbers, lists and tuples: as JSON with tuples written as lists first (10x faster than
    ``ast.literal_eval``, which parses the rest; literals only, it never evaluates code)."""
    text = text.strip()
    try:
        return json.loads(text.replace("(", "[").replace(")", "]"))
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return _NOT_A_LITERAL


def parse_robopoint_turn(question: str, answer: str) -> tuple[str, tuple[Box, ...]] | None:
    """(expression, boxes) of one question/answer pair, None when the question is not a detection one. A detection
    question with a malformed answer raises ValueError (the caller adds the file and entry)."""
    text = question.replace(IMAGE_TAG + "\n", "").replace(IMAGE_TAG, "")
    if ROBOPOINT_XYXY_PREFIX in text:
        expression, form = text.replace(ROBOPOINT_XYXY_PREFIX, ""), "xyxy"
    elif ROBOPOINT_CXCYWH_SUFFIX in text:
        expression, form = text.replace(ROBOPOINT_CXCYWH_SUFFIX, ""), "cxcywh"
    else:
        return None
    expression = expression.strip()
    if not expression:
        raise ValueError("the question holds no referring expression")
    parsed = _literal(answer)
    if parsed is _NOT_A_LITERAL:
        raise ValueError(f"answer {answer[:80]!r} is not a Python/JSON literal")
    boxes: list[Box] = []
    if form == "xyxy":
        v = _finite_numbers(parsed, 4)
        box = _normalised_box(*v) if v else None
        if box is None:
            raise ValueError(f"answer {answer[:80]!r} is not one normalised box [x1, y1, x2, y2] with x1 <= x2, "
                             "y1 <= y2 inside [0, 1]")
        boxes.append(box)
    else:
        if not isinstance(parsed, (list, tuple)) or not parsed:
            raise ValueError(f"answer {answer[:80]!r} is not a non-empty list of (cx, cy, w, h) tuples")
        for i, item in enumerate(parsed):
            v = _finite_numbers(item, 4)
            box = None
            if v is not None and v[2] >= 0 and v[3] >= 0:
                cx, cy, w, h = v
                box = _normalised_box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
            if box is None:
                raise ValueError(f"answer {answer[:80]!r}: item {i} is not a normalised (cx, cy, w, h) box with "
                                 "w, h >= 0 inside [0, 1]")
            boxes.append(box)
    return expression, tuple(boxes)


def read_robopoint(path: str | Path, stats: ReadStats | None = None) -> Iterator[DetectionRecord]:
    """Detection records of a RoboPoint conversation file (JSON list or JSONL), streamed (see the module doc)."""
    stats = stats if stats is not None else ReadStats()
    for n, entry in enumerate(iter_records(path)):
        where = f"{path}: entry {n}" + (f" (id {entry.get('id')!r})" if isinstance(entry, dict) else "")
        if not isinstance(entry, dict):
            raise AnnotationError(f"{where}: expected an object with 'image' and 'conversations', got "
                                  f"{type(entry).__name__}")
        turns = entry.get("conversations")
        if not isinstance(turns, list) or not all(isinstance(t, dict) and isinstance(t.get("value"), str)
                                                  for t in turns):
            raise AnnotationError(f"{where}: 'conversations' must be a list of {{'from', 'value'}} objects")
        found = False
        for t in range(1, len(turns), 2):  # (question, answer) pairs: turns 0/1, 2/3, ...
            try:
                parsed = parse_robopoint_turn(turns[t - 1]["value"], turns[t]["value"])
            except ValueError as e:
                raise AnnotationError(f"{where}, turn {t}: {e}") from None
            if parsed is None:
                stats.skipped["turns that are not detection questions"] += 1
                continue
            image = entry.get("image")
            if not isinstance(image, str) or not image:
                raise AnnotationError(f"{where}, turn {t}: a detection question needs the entry's 'image' path")
            found = True
            stats.records += 1
            yield DetectionRecord(image=image, expression=parsed[0], boxes=parsed[1], entry=f"{where}, turn {t}")
        if not found:
            stats.skipped["entries without a detection question"] += 1


def _coco_int(item: dict[str, Any], key: str, where: str) -> int:
    v = item.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
        raise AnnotationError(f"{where}: '{key}' must be an integer, got {v!r}")
    return int(v)


def read_coco(path: str | Path, include_crowd: bool = False, stats: ReadStats | None = None
              ) -> Iterator[DetectionRecord]:
    """One record per (image, category) of a COCO instances file, streamed (see the module doc). Boxes are kept as
    numbers in compact arrays while the file streams (COCO lists categories last), then grouped with one sort."""
    stats = stats if stats is not None else ReadStats()
    images: dict[int, tuple[str, float, float, int]] = {}  # id -> (file_name, width, height, order)
    categories: dict[int, str] = {}
    cols = {k: array("d") for k in ("image", "category", "x", "y", "w", "h")}
    ann_where: list[int] = []  # annotation index per kept row, for errors found after streaming
    n_ann = 0
    for key, item in iter_object(path, {"images", "annotations", "categories"}):
        if key == "images":
            where = f"{path}: images[{len(images)}]"
            if not isinstance(item, dict):
                raise AnnotationError(f"{where}: expected an object, got {type(item).__name__}")
            iid = _coco_int(item, "id", where)
            name, w, h = item.get("file_name"), item.get("width"), item.get("height")
            if not isinstance(name, str) or not name:
                raise AnnotationError(f"{where} (id {iid}): 'file_name' must be a non-empty string")
            if _finite_numbers([w, h], 2) is None or w <= 0 or h <= 0:
                raise AnnotationError(f"{where} (id {iid}): 'width' and 'height' must be positive numbers, got "
                                      f"{w!r}, {h!r}")
            if iid in images:
                raise AnnotationError(f"{where}: image id {iid} appears twice")
            images[iid] = (name, float(w), float(h), len(images))
        elif key == "categories":
            where = f"{path}: categories[{len(categories)}]"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
                raise AnnotationError(f"{where}: expected an object with 'id' and a non-empty 'name'")
            categories[_coco_int(item, "id", where)] = item["name"].strip()
        elif key == "annotations":
            where = f"{path}: annotations[{n_ann}]"
            n_ann += 1
            if not isinstance(item, dict):
                raise AnnotationError(f"{where}: expected an object, got {type(item).__name__}")
            box = _finite_numbers(item.get("bbox"), 4)
            if box is None or box[2] < 0 or box[3] < 0:
                raise AnnotationError(f"{where} (id {item.get('id')!r}): 'bbox' must be [x, y, width, height] in "
                                      f"pixels with width, height >= 0, got {item.get('bbox')!r}")
            if item.get("iscrowd", 0) and not include_crowd:
                stats.skipped["crowd annotations"] += 1
                continue
            for k, v in zip(("image", "category"), (_coco_int(item, "image_id", where),
                                                    _coco_int(item, "category_id", where))):
                cols[k].append(v)
            for k, v in zip(("x", "y", "w", "h"), box):
                cols[k].append(v)
            ann_where.append(n_ann - 1)
    if not images or not categories:
        raise AnnotationError(f"{path}: a COCO instances file needs non-empty 'images' and 'categories' lists")
    yield from _coco_groups(path, cols, ann_where, images, categories, stats)


def _coco_groups(path: str | Path, cols: dict[str, array], ann_where: list[int],
                 images: dict[int, tuple[str, float, float, int]], categories: dict[int, str],
                 stats: ReadStats) -> Iterator[DetectionRecord]:
    col = {k: np.frombuffer(v, dtype=np.float64) if len(v) else np.zeros(0) for k, v in cols.items()}
    image_ids, cat_ids = col["image"].astype(np.int64), col["category"].astype(np.int64)
    known_image = np.isin(image_ids, np.fromiter(images, np.int64, len(images)))
    known_cat = np.isin(cat_ids, np.fromiter(categories, np.int64, len(categories)))
    for mask, what, ids in ((known_image, "image_id", image_ids), (known_cat, "category_id", cat_ids)):
        if not mask.all():
            i = int(np.argmin(mask))
            raise AnnotationError(f"{path}: annotations[{ann_where[i]}]: {what} {int(ids[i])} is not in the file's "
                                  f"{'images' if what == 'image_id' else 'categories'}")
    # Normalise by each box's image size; a box well outside its image is malformed, a pixel over is rounding.
    table_ids = np.fromiter(images, np.int64, len(images))
    table = np.array([(w, h, o) for _, w, h, o in images.values()], dtype=np.float64).reshape(-1, 3)
    sort = np.argsort(table_ids)
    row = sort[np.searchsorted(table_ids[sort], image_ids)]
    wh, order = table[row, :2], table[row, 2].astype(np.int64)
    x1, y1 = col["x"] / wh[:, 0], col["y"] / wh[:, 1]
    x2, y2 = (col["x"] + col["w"]) / wh[:, 0], (col["y"] + col["h"]) / wh[:, 1]
    tol = BOX_TOLERANCE + 1.0 / wh.min(1)
    bad = (x1 < -tol) | (y1 < -tol) | (x2 > 1 + tol) | (y2 > 1 + tol)
    if bad.any():
        i = int(np.argmax(bad))
        raise AnnotationError(f"{path}: annotations[{ann_where[i]}]: bbox {[col[k][i] for k in 'xywh']} lies outside "
                              f"its {wh[i, 0]:g} x {wh[i, 1]:g} image")
    xyxy = np.clip(np.stack([x1, y1, x2, y2], -1), 0.0, 1.0)
    # Group rows by (image in file order, category id): one sort, then runs of equal keys.
    rank = np.lexsort((cat_ids, order))
    key_img, key_cat = order[rank], cat_ids[rank]
    starts = np.flatnonzero(np.r_[True, (key_img[1:] != key_img[:-1]) | (key_cat[1:] != key_cat[:-1])])
    ends = np.r_[starts[1:], len(rank)]
    by_order = {o: iid for iid, (_, _, _, o) in images.items()}
    for s, e in zip(starts.tolist(), ends.tolist()):
        iid, cid = by_order[int(key_img[s])], int(key_cat[s])
        boxes = tuple(tuple(float(v) for v in row) for row in xyxy[rank[s:e]])
        stats.records += 1
        yield DetectionRecord(image=images[iid][0], expression=categories[cid], boxes=boxes,  # type: ignore[arg-type]
                              entry=f"{path}: image id {iid}, category {categories[cid]!r}")
    with_boxes = len(np.unique(image_ids))
    if with_boxes < len(images):
        stats.skipped["images without annotations"] += len(images) - with_boxes
