"""RoboPoint and COCO readers on fixtures in the real schemas: records, skips, and malformed entries named."""

from __future__ import annotations

import copy
import json

import pytest

from pretrain.detection import (
    ROBOPOINT_CXCYWH_SUFFIX,
    ROBOPOINT_XYXY_PREFIX,
    AnnotationError,
    ReadStats,
    parse_robopoint_turn,
    read_coco,
    read_robopoint,
)
from tests.pretrain.fixtures import coco_document, norm_box, robopoint_entries, write_coco, write_robopoint


def _close(boxes, expected, tol=1e-3):
    return len(boxes) == len(expected) and all(abs(a - b) <= tol for box, e in zip(boxes, expected)
                                               for a, b in zip(box, e))


def test_robopoint_records_expressions_boxes_and_skips(tmp_path):
    path = write_robopoint(tmp_path)
    stats = ReadStats()
    recs = list(read_robopoint(path, stats))
    assert [(r.image, r.expression) for r in recs] == [
        ("img/a.png", "the red block"), ("img/a.png", "blue block"), ("img/b.jpg", "green cube"),
        ("img/c.png", "yellow box"), ("img/d.png", "red square"), ("img/e.png", "blue square"),
        ("img/e.png", "the yellow block"), ("img/f.png", "green box"), ("img/b.jpg", "red block")]
    # xyxy answers as written; (cx, cy, w, h) answers converted to corners (4-decimal rounding in the fixture).
    assert _close(recs[0].boxes, [norm_box("a.png", 0)])
    assert _close(recs[1].boxes, [norm_box("a.png", 1)])
    assert _close(recs[2].boxes, [norm_box("b.jpg", 0), norm_box("b.jpg", 1)])
    assert stats.records == 9
    assert stats.skipped == {"turns that are not detection questions": 2, "entries without a detection question": 1}
    assert "entry 2 (id 'ref/c'), turn 3" in recs[3].entry


def test_robopoint_jsonl_reads_the_same_records(tmp_path):
    write_robopoint(tmp_path)
    lines = tmp_path / "d.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in robopoint_entries()))
    a = [(r.image, r.expression, r.boxes) for r in read_robopoint(tmp_path / "detection_data.json")]
    assert a == [(r.image, r.expression, r.boxes) for r in read_robopoint(lines)]


def test_parse_turn_clips_rounding_and_ignores_other_questions():
    q = f"<image>\n{ROBOPOINT_XYXY_PREFIX}cup"
    assert parse_robopoint_turn(q, "[-0.005, 0.1, 1.004, 0.5]") == ("cup", ((0.0, 0.1, 1.0, 0.5),))
    assert parse_robopoint_turn("What is in the image?", "[0.1, 0.2, 0.3, 0.4]") is None
    assert parse_robopoint_turn(f"mug{ROBOPOINT_CXCYWH_SUFFIX}", "[(0.5, 0.5, 0.2, 0.4)]") == \
        ("mug", ((0.4, 0.3, 0.6, 0.7),))


def _answer(e, i, answer):
    """Entry i's first question with another answer."""
    return _broken(e, i, conversations=[e[i]["conversations"][0], {"from": "gpt", "value": answer}])


def _broken(entries, i, **change):
    out = copy.deepcopy(entries)
    out[i].update(change)
    return out


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda e: _broken(e, 4, conversations=[{"from": "human", "value": e[4]["conversations"][0]["value"]},
                                            {"from": "gpt", "value": "[0.1, 0.2, 0.3]"}]),
     r"entry 4 \(id 'det/d'\), turn 1: answer '\[0.1, 0.2, 0.3\]' is not one normalised box"),
    (lambda e: _answer(e, 0, "[0.5, 0.2, 0.3, 0.4]"),
     r"entry 0 \(id 'det/a'\), turn 1: .* x1 <= x2"),
    (lambda e: _answer(e, 1, "[(0.5, 0.5, 1.5, 0.1)]"),
     r"entry 1 \(id 'det/b'\), turn 1: .* item 0 is not a normalised \(cx, cy, w, h\) box"),
    (lambda e: _answer(e, 6, "the box is left"),
     r"entry 6 \(id 'det/f'\), turn 1: answer 'the box is left' is not a Python/JSON literal"),
    (lambda e: _broken(e, 5, image=None), r"entry 5 \(id 'det/e'\), turn 1: a detection question needs"),
    (lambda e: _broken(e, 3, conversations="hello"), r"entry 3 \(id 'llava/1'\): 'conversations' must be a list"),
    (lambda e: [*e[:2], ["not", "an", "object"]], r"entry 2: expected an object"),
    (lambda e: _broken(e, 6, conversations=[{"from": "human", "value": f"<image>\n{ROBOPOINT_XYXY_PREFIX}  "},
                                            {"from": "gpt", "value": "[0.1, 0.1, 0.2, 0.2]"}]),
     r"entry 6 \(id 'det/f'\), turn 1: the question holds no referring expression"),
])
def test_malformed_robopoint_entries_name_the_file_entry_and_turn(tmp_path, mutate, match):
    path = write_robopoint(tmp_path, mutate(robopoint_entries()), name="broken.json")
    with pytest.raises(AnnotationError, match=r"broken\.json: " + match):
        list(read_robopoint(path))


def test_coco_one_record_per_image_and_category_in_file_order(tmp_path):
    path = write_coco(tmp_path)
    stats = ReadStats()
    recs = list(read_coco(path, stats=stats))
    assert [(r.image, r.expression) for r in recs] == [
        ("img/a.png", "red block"), ("img/a.png", "blue block"), ("img/b.jpg", "red block"),
        ("img/b.jpg", "green block"), ("img/c.png", "blue block"), ("img/c.png", "yellow block"),
        ("img/d.png", "red block"), ("img/e.png", "blue block"), ("img/e.png", "yellow block"),
        ("img/f.png", "green block")]
    # Pixel [x, y, w, h] normalised by the image's width and height; both green boxes of b.jpg in one record.
    assert _close(recs[0].boxes, [norm_box("a.png", 0)], 1e-9)
    assert _close(recs[3].boxes, [norm_box("b.jpg", 0), norm_box("b.jpg", 1)], 1e-9)
    assert stats.skipped == {"crowd annotations": 1} and stats.records == 10
    with_crowd = list(read_coco(path, include_crowd=True))
    assert len(with_crowd) == 11 and with_crowd[1].expression == "green block"
    assert _close(with_crowd[1].boxes, [[0.0, 0.0, 1.0, 8 / 60]], 1e-9)


def _coco_broken(change):
    doc = coco_document()
    change(doc)
    return doc


@pytest.mark.parametrize(("change", "match"), [
    (lambda d: d["annotations"][3].update(bbox=[1, 2, 3]), r"annotations\[3\] \(id 4\): 'bbox' must be"),
    (lambda d: d["annotations"][2].update(bbox=[1, 2, -3, 4]), r"annotations\[2\] \(id 3\): 'bbox' must be"),
    (lambda d: d["annotations"][5].update(image_id=999), r"annotations\[5\]: image_id 999 is not in the file's images"),
    (lambda d: d["annotations"][0].update(category_id=2), r"annotations\[0\]: category_id 2 is not in the file's cat"),
    (lambda d: d["annotations"][1].update(bbox=[70, 40, 60, 30]), r"annotations\[1\]: bbox .* outside its 80 x 60"),
    (lambda d: d["images"][2].pop("width"), r"images\[2\] \(id 102\): 'width' and 'height' must be positive"),
    (lambda d: d["images"][1].update(file_name=""), r"images\[1\] \(id 101\): 'file_name' must be"),
    (lambda d: d.update(categories=[]), r"a COCO instances file needs non-empty 'images' and 'categories'"),
])
def test_malformed_coco_annotations_name_the_file_and_entry(tmp_path, change, match):
    path = write_coco(tmp_path, _coco_broken(change), name="bad.json")
    with pytest.raises(AnnotationError, match=r"bad\.json: " + match):
        list(read_coco(path))
