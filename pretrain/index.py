"""The on-disk sample index of a real detection corpus: one scan of the annotations, then random access by number.

Training needs sample ``i`` for any ``i`` (batch ``k`` is a pure function of the seed and ``k``, so runs resume
exactly), but the annotation files are single large JSON documents. One streamed scan (``pretrain.detection``)
writes every record as a line of ``samples.jsonl`` and the byte offset of each line to ``index.npz``; afterwards a
sample is one seek and one ``json.loads``, from any process (DataLoader workers, DDP ranks), in constant memory.

The scan also checks that each image file exists (once per image): samples of missing images are left out and
counted in ``meta.json``, and if none exists the error names the image folder, the usual mistake. The index folder's
name is a digest of the inputs (annotation path, size and mtime, image folder, reader settings), so a changed
annotation file is re-scanned and an unchanged one is reused by the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from pretrain.detection import DetectionRecord, ReadStats, read_coco, read_robopoint

INDEX_VERSION = 1
Source = Literal["robopoint", "coco"]
MISSING_EXAMPLES = 20


def image_hash(path: str) -> int:
    """A stable 63-bit hash of an image path (the held-out split is drawn by image, not by sample)."""
    return int.from_bytes(hashlib.blake2b(path.encode(), digest_size=8).digest(), "little") >> 1


def index_dir(root: str | Path, source: Source, annotations: str | Path, images: str | Path,
              include_crowd: bool) -> Path:
    """The folder the index of these inputs lives in (see the module doc)."""
    ann = Path(annotations).resolve()
    st = ann.stat()
    key = json.dumps([INDEX_VERSION, source, str(ann), st.st_size, st.st_mtime_ns, str(Path(images).resolve()),
                      include_crowd])
    return Path(root) / f"{source}-{ann.stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def build_index(directory: Path, source: Source, annotations: str | Path, images: str | Path,
                include_crowd: bool = False, progress: bool = True) -> Path:
    """Scan ``annotations`` into ``directory`` (written to a temporary folder, then renamed: a killed scan leaves
    nothing half-written behind; the next run scans again)."""
    t0 = time.perf_counter()
    images = Path(images)
    stats = ReadStats()
    records = read_robopoint(annotations, stats) if source == "robopoint" else \
        read_coco(annotations, include_crowd, stats)
    tmp = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    offsets, hashes = [0], []
    exists: dict[str, bool] = {}
    missing: Counter = Counter()
    with (tmp / "samples.jsonl").open("wb") as out:
        for rec in tqdm(records, desc=f"indexing {Path(annotations).name}", unit=" records", disable=not progress,
                        dynamic_ncols=True):
            if rec.image not in exists:
                exists[rec.image] = (images / rec.image).is_file()
            if not exists[rec.image]:
                missing[rec.image] += 1
                continue
            out.write(_encode(rec))
            offsets.append(out.tell())
            hashes.append(image_hash(rec.image))
    n = len(hashes)
    if n == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        if missing:
            raise ValueError(f"data.images: none of the {len(missing)} images that {annotations} names exists under "
                             f"{images} (e.g. {images / next(iter(missing))}); is it the right folder?")
        raise ValueError(f"data.annotations: {annotations} holds no {source} detection samples "
                         f"({stats.to_dict()['skipped']})")
    np.savez(tmp / "index.npz", offsets=np.asarray(offsets, np.int64), image_hash=np.asarray(hashes, np.int64))
    meta = {
        "version": INDEX_VERSION, "source": source, "annotations": str(annotations), "images": str(images),
        "samples": n, "images_found": sum(exists.values()), **stats.to_dict(),
        "missing_images": len(missing), "samples_of_missing_images": sum(missing.values()),
        "missing_examples": [str(images / p) for p in list(missing)[:MISSING_EXAMPLES]],
        "scan_seconds": round(time.perf_counter() - t0, 2),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    try:
        os.replace(tmp, directory)
    except OSError:  # another process finished the same index first: theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _encode(rec: DetectionRecord) -> bytes:
    line = json.dumps({"image": rec.image, "expression": rec.expression, "boxes": [list(b) for b in rec.boxes],
                       "entry": rec.entry}, ensure_ascii=False)
    return (line + "\n").encode()


def open_index(root: str | Path, source: Source, annotations: str | Path, images: str | Path,
               include_crowd: bool = False, rank: int = 0, progress: bool = True,
               wait_seconds: float = 7200.0) -> GroundingIndex:
    """The index of these inputs: built by rank 0 when missing, waited for by the other ranks (the process group does
    not exist yet, so they poll for ``meta.json``)."""
    directory = index_dir(root, source, annotations, images, include_crowd)
    if not (directory / "meta.json").is_file():
        if rank == 0:
            build_index(directory, source, annotations, images, include_crowd, progress)
        else:
            t0 = time.monotonic()
            while not (directory / "meta.json").is_file():
                if time.monotonic() - t0 > wait_seconds:
                    raise TimeoutError(f"rank {rank}: rank 0 did not finish the index {directory} in {wait_seconds} s")
                time.sleep(1.0)
    return GroundingIndex(directory)


class GroundingIndex:
    """Random access to the samples of one index folder (see the module doc). Safe to use after ``fork``: each
    process opens its own file handle on first use."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.meta: dict[str, Any] = json.loads((self.directory / "meta.json").read_text())
        with np.load(self.directory / "index.npz") as z:
            self.offsets, self.image_hash = z["offsets"], z["image_hash"]
        self._file: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.image_hash)

    def record(self, i: int) -> dict[str, Any]:
        """Sample ``i``: ``{"image", "expression", "boxes": [[x1, y1, x2, y2], ...], "entry"}``."""
        if not 0 <= i < len(self):
            raise IndexError(f"sample {i} out of range [0, {len(self)})")
        if self._pid != os.getpid():
            self._file, self._pid = (self.directory / "samples.jsonl").open("rb"), os.getpid()
        self._file.seek(int(self.offsets[i]))
        return json.loads(self._file.read(int(self.offsets[i + 1] - self.offsets[i])))

    def split(self, eval_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """(train ids, held-out ids): whole images are held out — those with the smallest path hashes, until they
        hold ``eval_samples`` samples (at most half the corpus) — so no held-out image is ever trained on. The
        held-out ids are capped at ``eval_samples``; the rest of the last image's samples are unused."""
        n = len(self)
        if eval_samples <= 0:
            return np.arange(n), np.zeros(0, np.int64)
        want = min(eval_samples, n // 2)
        if want == 0:
            raise ValueError(f"data.eval_samples: {n} sample(s) are too few to hold any out; set data.eval_samples=0")
        order = np.argsort(self.image_hash, kind="stable")
        h = self.image_hash[order]
        # The hash of the image at which the held-out count reaches ``want``; every sample of it and of smaller
        # hashes is held out.
        threshold = h[want - 1]
        held = self.image_hash <= threshold
        if held.all():
            raise ValueError(f"data.eval_samples: the corpus has too few distinct images ({len(np.unique(h))}) to "
                             "hold any out and still train; lower data.eval_samples")
        eval_ids = np.flatnonzero(held)
        eval_ids = eval_ids[np.argsort(self.image_hash[eval_ids], kind="stable")][:want]
        return np.flatnonzero(~held), np.sort(eval_ids)
