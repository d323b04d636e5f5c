"""Small detection corpora written by the tests, in the real schemas (see pretrain/detection.py for the sources).

Every image is a flat background with coloured rectangles at known pixel boxes, so a test can check through the
pixels (not through our own geometry) that a box still frames its rectangle after the image was fitted.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from pretrain.detection import ROBOPOINT_CXCYWH_SUFFIX, ROBOPOINT_XYXY_PREFIX

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220), "yellow": (230, 210, 30)}
BACKGROUND = (128, 128, 128)
# name -> (size (w, h), [(colour, pixel box x0, y0, x1, y1 exclusive), ...])
SCENES: dict[str, tuple[tuple[int, int], list[tuple[str, tuple[int, int, int, int]]]]] = {
    "a.png": ((80, 60), [("red", (8, 10, 24, 30)), ("blue", (50, 30, 74, 54))]),
    "b.jpg": ((64, 96), [("green", (10, 10, 30, 40)), ("green", (36, 60, 58, 90)), ("red", (40, 12, 60, 30))]),
    "c.png": ((100, 50), [("yellow", (70, 5, 96, 25)), ("blue", (4, 20, 30, 46))]),
    "d.png": ((60, 60), [("red", (20, 20, 40, 40))]),
    "e.png": ((90, 70), [("blue", (6, 6, 30, 30)), ("yellow", (50, 30, 84, 64))]),
    "f.png": ((70, 90), [("green", (30, 50, 60, 80))]),
}


def write_images(folder: Path) -> dict[str, tuple[tuple[int, int], list]]:
    (folder / "img").mkdir(parents=True, exist_ok=True)
    for name, (size, objects) in SCENES.items():
        im = Image.new("RGB", size, BACKGROUND)
        draw = ImageDraw.Draw(im)
        for colour, (x0, y0, x1, y1) in objects:
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=COLOURS[colour])
        im.save(folder / "img" / name, quality=95)
    return SCENES


def norm_box(name: str, i: int) -> list[float]:
    (w, h), objects = SCENES[name]
    x0, y0, x1, y1 = objects[i][1]
    return [x0 / w, y0 / h, x1 / w, y1 / h]


def _cxcywh(name: str, idx: list[int]) -> str:
    items = []
    for i in idx:
        x0, y0, x1, y1 = norm_box(name, i)
        items.append(f"({(x0 + x1) / 2:.4f}, {(y0 + y1) / 2:.4f}, {x1 - x0:.4f}, {y1 - y0:.4f})")
    return "[" + ", ".join(items) + "]"


def _xyxy(name: str, i: int) -> str:
    return "[" + ", ".join(f"{v:.4f}" for v in norm_box(name, i)) + "]"


def robopoint_entries() -> list[dict]:
    """RoboPoint-format entries: both detection phrasings, a multi-box answer, a pointing (non-detection) turn, and
    a text-only entry, as in the published mix."""
    def q_xyxy(expr: str) -> str:
        return f"<image>\n{ROBOPOINT_XYXY_PREFIX}{expr}"

    def q_cxcywh(expr: str) -> str:
        return f"<image>\n{expr}{ROBOPOINT_CXCYWH_SUFFIX}"

    def turns(*pairs: tuple[str, str]) -> list[dict]:
        return [t for q, a in pairs for t in ({"from": "human", "value": q}, {"from": "gpt", "value": a})]

    return [
        {"id": "det/a", "image": "img/a.png", "conversations": turns(
            (q_xyxy("the red block"), _xyxy("a.png", 0)),
            (q_cxcywh("blue block"), _cxcywh("a.png", [1])))},
        {"id": "det/b", "image": "img/b.jpg",
         "conversations": turns((q_cxcywh("green cube"), _cxcywh("b.jpg", [0, 1])))},
        {"id": "ref/c", "image": "img/c.png", "conversations": turns(
            ("<image>\nPoint at free space left of the yellow box. Answer as a list of tuples.",
             "[(0.2, 0.3), (0.25, 0.35)]"),
            (q_xyxy("yellow box"), _xyxy("c.png", 0)))},
        {"id": "llava/1", "conversations": turns(("Describe a robot.", "It has an arm."))},
        {"id": "det/d", "image": "img/d.png", "conversations": turns((q_xyxy("red square"), _xyxy("d.png", 0)))},
        {"id": "det/e", "image": "img/e.png", "conversations": turns(
            (q_cxcywh("blue square"), _cxcywh("e.png", [0])), (q_xyxy("the yellow block"), _xyxy("e.png", 1)))},
        {"id": "det/f", "image": "img/f.png", "conversations": turns((q_xyxy("green box"), _xyxy("f.png", 0)))},
        {"id": "det/b2", "image": "img/b.jpg", "conversations": turns((q_xyxy("red block"), _xyxy("b.jpg", 2)))},
    ]


def write_robopoint(folder: Path, entries: list[dict] | None = None, name: str = "detection_data.json") -> Path:
    write_images(folder)
    path = folder / name
    path.write_text(json.dumps(robopoint_entries() if entries is None else entries, indent=1))
    return path


def coco_document() -> dict:
    """A COCO instances document: images, annotations in pixels (a crowd one too), categories last, as COCO lists
    them. Category ids are not contiguous, as in COCO."""
    names = list(SCENES)
    cat_ids = {"red": 1, "green": 3, "blue": 7, "yellow": 11}
    images = [{"id": 100 + i, "file_name": f"img/{n}", "width": SCENES[n][0][0], "height": SCENES[n][0][1],
               "license": 1} for i, n in enumerate(names)]
    anns = []
    for i, n in enumerate(names):
        for colour, (x0, y0, x1, y1) in SCENES[n][1]:
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": cat_ids[colour],
                         "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
                         "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]})
    anns.append({"id": len(anns) + 1, "image_id": 100, "category_id": 3, "bbox": [0, 0, 80, 8], "area": 640,
                 "iscrowd": 1, "segmentation": {"counts": [0, 640], "size": [60, 80]}})
    return {"info": {"description": "test"}, "licenses": [{"id": 1, "name": "x"}], "images": images,
            "annotations": anns,
            "categories": [{"id": v, "name": f"{k} block", "supercategory": "block"} for k, v in cat_ids.items()]}


def write_coco(folder: Path, doc: dict | None = None, name: str = "instances_test.json") -> Path:
    write_images(folder)
    (folder / "annotations").mkdir(exist_ok=True)
    path = folder / "annotations" / name
    path.write_text(json.dumps(coco_document() if doc is None else doc))
    return path
