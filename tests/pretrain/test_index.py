"""The sample index: random access equals the reader's records, missing images counted, reuse, the held-out split."""

from __future__ import annotations

import os

import numpy as np
import pytest

from pretrain.detection import read_coco, read_robopoint
from pretrain.index import GroundingIndex, build_index, image_hash, index_dir, open_index
from tests.pretrain.fixtures import write_coco, write_robopoint


def test_index_records_equal_the_readers_and_missing_images_are_counted(tmp_path):
    path = write_robopoint(tmp_path)
    (tmp_path / "img" / "f.png").unlink()  # one image gone: its one sample is left out and reported
    index = open_index(tmp_path / "idx", "robopoint", path, tmp_path, progress=False)
    expected = [r for r in read_robopoint(path) if r.image != "img/f.png"]
    assert len(index) == len(expected) == 8
    for i in (7, 0, 3):  # any order: one seek each
        rec = index.record(i)
        assert (rec["image"], rec["expression"]) == (expected[i].image, expected[i].expression)
        assert [tuple(b) for b in rec["boxes"]] == list(expected[i].boxes)
    assert index.meta["missing_images"] == 1 and index.meta["samples_of_missing_images"] == 1
    assert index.meta["missing_examples"] == [str(tmp_path / "img" / "f.png")]
    assert index.meta["skipped"] == {"entries without a detection question": 1,
                                     "turns that are not detection questions": 2}
    with pytest.raises(IndexError):
        index.record(8)


def test_coco_index_and_reuse_until_the_annotations_change(tmp_path):
    path = write_coco(tmp_path)
    index = open_index(tmp_path / "idx", "coco", path, tmp_path, progress=False)
    assert len(index) == len(list(read_coco(path))) == 10
    meta = index.directory / "meta.json"
    stamp = meta.stat().st_mtime_ns
    again = open_index(tmp_path / "idx", "coco", path, tmp_path, progress=False)
    assert again.directory == index.directory and meta.stat().st_mtime_ns == stamp  # reused, not rescanned
    assert index_dir(tmp_path / "idx", "coco", path, tmp_path, True) != index.directory  # settings are in the key
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert index_dir(tmp_path / "idx", "coco", path, tmp_path, False) != index.directory


def test_a_wrong_image_folder_is_named(tmp_path):
    path = write_robopoint(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(ValueError, match=r"none of the 6 images .* exists under .*elsewhere.*right folder"):
        build_index(tmp_path / "idx" / "x", "robopoint", path, tmp_path / "elsewhere", progress=False)
    assert not any((tmp_path / "idx").iterdir())  # nothing half-written left behind


def test_split_holds_out_whole_images_deterministically(tmp_path):
    path = write_robopoint(tmp_path)
    index = open_index(tmp_path / "idx", "robopoint", path, tmp_path, progress=False)
    train, held = index.split(2)
    assert len(held) == 2 and len(np.intersect1d(train, held)) == 0 and len(train) + len(held) <= len(index)
    images = {i: index.record(int(i))["image"] for i in range(len(index))}
    held_images = {images[int(i)] for i in held}
    assert not held_images & {images[int(i)] for i in train}  # no held-out image is ever trained on
    # The images with the smallest path hashes are the held-out ones: an independent recomputation.
    by_hash = sorted(set(images.values()), key=image_hash)
    assert held_images <= set(by_hash[:2])
    again = GroundingIndex(index.directory).split(2)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], held)
    assert len(index.split(0)[1]) == 0 and len(index.split(0)[0]) == len(index)
    with pytest.raises(ValueError, match="too few distinct images"):
        _one_image_index(tmp_path).split(1)  # one image: holding it out would leave nothing to train on


def _one_image_index(tmp_path):
    from tests.pretrain.fixtures import robopoint_entries

    entries = [e for e in robopoint_entries() if e.get("image") == "img/a.png"]
    sub = tmp_path / "one"
    path = write_robopoint(sub, entries)
    return open_index(sub / "idx", "robopoint", path, sub, progress=False)
