"""Speed of the real-data path, and a generated stand-in corpus: ``python -m pretrain.bench {corpus,speed} ...``.

No real detection corpus can be downloaded here, so ``corpus`` writes one in the real schemas — JPEG photographs
stand-ins (a noisy, shaded background with 2–4 coloured shapes) annotated in RoboPoint's conversation format and in
COCO's instances format, each shape a box and its colour + shape name the expression ("red disc"). Grounding on it
needs the prompt: every image holds several shapes. ``speed`` times what scales with a real corpus: the streamed
scan that builds the index (records/s) and the batch source at the model's input size (samples/s, by workers).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from pretrain.detection import ROBOPOINT_CXCYWH_SUFFIX, ROBOPOINT_XYXY_PREFIX

COLOURS = {"red": (210, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 210), "yellow": (230, 200, 40),
           "purple": (140, 60, 170), "orange": (240, 130, 30), "white": (240, 240, 240), "black": (25, 25, 25)}
SHAPES = ("block", "disc", "bar")


def make_corpus(out: Path, images: int, size: tuple[int, int] = (320, 240), seed: int = 0,
                pointing_share: float = 0.25) -> dict[str, Path]:
    """Write ``images`` JPEGs under ``out/images`` and their annotations as ``out/robopoint.json`` (one detection
    conversation per shape, one multi-box (cx, cy, w, h) question per image, and a share of pointing questions that
    the reader must skip) and ``out/instances.json`` (COCO; category = colour + shape)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    w, h = size
    names = list(COLOURS)
    cats = {f"{c} {s}": i + 1 for i, (c, s) in enumerate((c, s) for c in names for s in SHAPES)}
    entries, coco_images, anns = [], [], []
    yy, xx = np.mgrid[0:h, 0:w]
    for n in range(images):
        base = rng.uniform(60, 200, 3)
        shade = (0.75 + 0.25 * np.sin(xx / w * rng.uniform(1, 6) + yy / h * rng.uniform(1, 6)))[..., None]
        bg = np.clip(base * shade + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        im = Image.fromarray(bg)
        draw = ImageDraw.Draw(im)
        k = int(rng.integers(2, 5))
        colours = rng.choice(len(names), k, replace=False)
        cells = rng.choice(6, k, replace=False)  # a 3 x 2 layout, so shapes never overlap
        shapes = []
        for c, cell in zip(colours, cells):
            cw, ch = w / 3, h / 2
            bw, bh = rng.uniform(0.3, 0.8) * cw, rng.uniform(0.3, 0.8) * ch
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            if shape == "bar":
                bh = bh * 0.4
            x0 = (cell % 3) * cw + rng.uniform(0, cw - bw)
            y0 = (cell // 3) * ch + rng.uniform(0, ch - bh)
            box = [x0, y0, x0 + bw, y0 + bh]
            colour = COLOURS[names[int(c)]]
            (draw.ellipse if shape == "disc" else draw.rectangle)(box, fill=colour)
            shapes.append((f"{names[int(c)]} {shape}", box))
        file = f"images/{n:06d}.jpg"
        im.save(out / file, quality=90)
        turns = []
        for name, (x0, y0, x1, y1) in shapes:
            turns += [{"from": "human", "value": f"<image>\n{ROBOPOINT_XYXY_PREFIX}the {name}"},
                      {"from": "gpt", "value": f"[{x0 / w:.3f}, {y0 / h:.3f}, {x1 / w:.3f}, {y1 / h:.3f}]"}]
        kind = shapes[0][0].split()[1]  # every shape of one kind, as (cx, cy, w, h) tuples
        same = [b for name, b in shapes if name.endswith(kind)]
        tuples = ", ".join(f"({(x0 + x1) / 2 / w:.3f}, {(y0 + y1) / 2 / h:.3f}, {(x1 - x0) / w:.3f}, "
                           f"{(y1 - y0) / h:.3f})" for x0, y0, x1, y1 in same)
        turns += [{"from": "human", "value": f"<image>\nevery {kind}{ROBOPOINT_CXCYWH_SUFFIX}"},
                  {"from": "gpt", "value": f"[{tuples}]"}]
        if rng.random() < pointing_share:
            turns += [{"from": "human", "value": "<image>\nPoint at free space in the image."},
                      {"from": "gpt", "value": "[(0.5, 0.5)]"}]
        entries.append({"id": f"gen/{n}", "image": file, "conversations": turns})
        coco_images.append({"id": n + 1, "file_name": file, "width": w, "height": h})
        for name, (x0, y0, x1, y1) in shapes:
            anns.append({"id": len(anns) + 1, "image_id": n + 1, "category_id": cats[name], "iscrowd": 0,
                         "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                         "area": round((x1 - x0) * (y1 - y0), 2)})
    (out / "robopoint.json").write_text(json.dumps(entries))
    doc = {"images": coco_images, "annotations": anns,
           "categories": [{"id": i, "name": name, "supercategory": "shape"} for name, i in cats.items()]}
    (out / "instances.json").write_text(json.dumps(doc))
    return {"robopoint": out / "robopoint.json", "coco": out / "instances.json", "images": out}


def inflate_robopoint(src: Path, dst: Path, entries: int) -> Path:
    """A RoboPoint file of ``entries`` entries, cycling those of ``src`` (to time the scan at scale)."""
    base = json.loads(src.read_text())
    out = [{**base[i % len(base)], "id": f"gen/{i}"} for i in range(entries)]
    dst.write_text(json.dumps(out))
    return dst


def speed(workdir: Path, images: int, entries: int, image_size: int, batch: int, batches: int,
          workers: list[int]) -> dict[str, float]:
    from pretrain.grounding import GroundingBatches, GroundingSamples, SampleSettings
    from pretrain.index import build_index, index_dir

    paths = make_corpus(workdir, images, size=(640, 480))
    big = inflate_robopoint(paths["robopoint"], workdir / "robopoint_big.json", entries)
    result: dict[str, float] = {"entries": entries, "file_mb": round(big.stat().st_size / 1e6, 1)}
    t0 = time.perf_counter()
    d = build_index(index_dir(workdir / "idx", "robopoint", big, workdir, False), "robopoint", big, workdir,
                    progress=False)
    result["index_seconds"] = round(time.perf_counter() - t0, 2)
    from pretrain.index import GroundingIndex

    index = GroundingIndex(d)
    result["samples"] = len(index)
    result["index_records_per_second"] = round(index.meta["records"] / result["index_seconds"])
    settings = SampleSettings(images=str(workdir), image_size=image_size, sigma=2.0, cutoff=3.0)
    ds = GroundingSamples(index, np.arange(len(index)), settings, seed=0, global_batch=batch)
    for nw in workers:
        it = iter(GroundingBatches(ds, batch, num_workers=nw).iterate(0))
        next(it)  # worker start-up is not throughput
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        result[f"samples_per_second_{nw}_workers"] = round(batches * batch / (time.perf_counter() - t0), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pretrain.bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("corpus", help="write a generated corpus in the RoboPoint and COCO schemas")
    c.add_argument("--out", required=True)
    c.add_argument("--images", type=int, default=2000)
    c.add_argument("--width", type=int, default=320)
    c.add_argument("--height", type=int, default=240)
    s = sub.add_parser("speed", help="index scan and batch throughput on a generated corpus")
    s.add_argument("--images", type=int, default=200)
    s.add_argument("--entries", type=int, default=100_000)
    s.add_argument("--image-size", type=int, default=224)
    s.add_argument("--batch", type=int, default=48)
    s.add_argument("--batches", type=int, default=5)
    s.add_argument("--workers", default="0,2")
    args = p.parse_args(argv)
    if args.cmd == "corpus":
        paths = make_corpus(Path(args.out), args.images, (args.width, args.height))
        print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        res = speed(Path(tmp), args.images, args.entries, args.image_size, args.batch, args.batches,
                    [int(w) for w in args.workers.split(",")])
    res["cpu_count"] = os.cpu_count() or 0
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
