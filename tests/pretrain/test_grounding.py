"""Real samples as batches: fitted images still framed by their boxes (checked through the pixels), keyed and
resumable sampling, DDP ranks disjoint, unreadable images replaced and reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.grounding import (
    GroundingBatches,
    GroundingSamples,
    ImageError,
    SampleSettings,
    heldout_batch,
    load_image,
    split_batch,
    steps_for_epochs,
)
from pretrain.index import open_index
from rendering import box_grounding
from tests.pretrain.fixtures import COLOURS, SCENES, norm_box, write_coco, write_robopoint


@pytest.mark.parametrize("fit", ["squash", "center_crop"])
@pytest.mark.parametrize("name", list(SCENES))
def test_fitted_images_keep_their_rectangles_inside_the_boxes(tmp_path, fit, name):
    write_robopoint(tmp_path)
    (w, h), objects = SCENES[name]
    boxes = np.array([norm_box(name, i) for i in range(len(objects))])
    s = 48
    try:
        img, out = load_image(tmp_path / "img" / name, boxes, s, fit)
    except ImageError as e:
        assert fit == "center_crop" and str(e) == "no box inside the centre crop"
        return
    assert img.shape == (s, s, 3) and img.dtype == np.uint8
    kept = [o for o in objects if fit == "squash" or _overlaps_crop(o[1], w, h)]
    assert len(out) == len(kept)
    for (colour, _), box in zip(kept, out):
        x0, y0, x1, y1 = box * s
        # The rectangle's colour fills the box's interior (1 px margin for resampling) in the fitted image.
        inner = img[int(np.ceil(y0)) + 1: int(y1) - 1, int(np.ceil(x0)) + 1: int(x1) - 1].reshape(-1, 3).astype(int)
        assert len(inner) and np.abs(inner - np.array(COLOURS[colour])).max() < 40


def _overlaps_crop(box, w, h):
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    x0, y0, x1, y1 = box
    return x1 >= left and x0 <= left + side and y1 >= top and y0 <= top + side


def test_unreadable_and_missing_images_raise_image_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageError, match="unreadable"):
        load_image(tmp_path / "bad.png", np.array([[0.1, 0.1, 0.2, 0.2]]), 32, "squash")
    with pytest.raises(ImageError, match="missing"):
        load_image(tmp_path / "nope.png", np.array([[0.1, 0.1, 0.2, 0.2]]), 32, "squash")


def _samples(tmp_path, source="robopoint", global_batch=4, **kw):
    path = write_robopoint(tmp_path) if source == "robopoint" else write_coco(tmp_path)
    index = open_index(tmp_path / "idx", source, path, tmp_path, progress=False)
    settings = SampleSettings(images=str(tmp_path), image_size=32, sigma=2.0, cutoff=3.0, **kw)
    return index, GroundingSamples(index, np.arange(len(index)), settings, seed=3, global_batch=global_batch)


def test_each_epoch_reads_every_training_sample_once_and_keys_replay_exactly(tmp_path):
    index, ds = _samples(tmp_path, global_batch=3)
    n = len(ds)
    for epoch in range(2):  # positions p = k*G + slot, consecutive over an epoch
        ids = [ds.sample_id(p // 3, p % 3) for p in range(epoch * n, (epoch + 1) * n)]
        assert sorted(ids) == list(range(n))
    a, b = ds[(5, 1)], ds[(5, 1)]
    assert torch.equal(a["image"], b["image"]) and a["instruction"] == b["instruction"]
    assert torch.equal(a["goal"], b["goal"]) and torch.equal(a["boxes"], b["boxes"])


def test_batches_resume_mid_stream_and_ranks_read_different_samples(tmp_path):
    index, ds = _samples(tmp_path, global_batch=4)
    full = [b for b, _ in zip(GroundingBatches(ds, 2, rank=0).iterate(0), range(4))]
    resumed = next(iter(GroundingBatches(ds, 2, rank=0).iterate(3)))
    assert torch.equal(resumed.images, full[3].images) and resumed.instructions == full[3].instructions
    other = next(iter(GroundingBatches(ds, 2, rank=1).iterate(0)))
    ids0, ids1 = [ds.sample_id(0, j) for j in (0, 1)], [ds.sample_id(0, j) for j in (2, 3)]
    assert not set(ids0) & set(ids1)  # rank 1 takes slots 2 and 3 of the global batch
    assert other.paths == [str(tmp_path / index.record(i)["image"]) for i in ids1]
    assert full[0].paths == [str(tmp_path / index.record(i)["image"]) for i in ids0]
    batch = full[0]
    assert batch.images.shape == (2, 3, 32, 32) and batch.images.dtype == torch.uint8
    assert torch.allclose(batch.goals.sum((1, 2)), torch.ones(2))
    # The targets peak inside a box of their own sample.
    assert bool(box_grounding(batch.goals, batch.boxes, batch.valid)["inside"].all())


def test_workers_give_the_same_batches_as_the_main_process(tmp_path):
    _, ds = _samples(tmp_path, global_batch=2)
    a = [b for b, _ in zip(GroundingBatches(ds, 2, num_workers=0).iterate(1), range(3))]
    b = [b for b, _ in zip(GroundingBatches(ds, 2, num_workers=2).iterate(1), range(3))]
    assert all(torch.equal(x.images, y.images) and x.instructions == y.instructions for x, y in zip(a, b))


def test_unreadable_images_are_replaced_deterministically_and_reported(tmp_path):
    index, ds = _samples(tmp_path, global_batch=4)
    (tmp_path / "img" / "d.png").write_bytes(b"garbage")  # corrupt after indexing
    (tmp_path / "img" / "e.png").unlink()  # and one deleted after indexing
    hit = [(k, j) for k in range(6) for j in range(4)
           if index.record(ds.sample_id(k, j))["image"] in ("img/d.png", "img/e.png")]
    assert hit
    k, j = hit[0]
    a, b = ds[(k, j)], ds[(k, j)]
    assert a["bad"] and a["bad"] == b["bad"] and torch.equal(a["image"], b["image"])
    assert {r for _, r in a["bad"]} <= {"unreadable (UnidentifiedImageError)", "missing"}
    batches = [b for b, _ in zip(GroundingBatches(ds, 4).iterate(0), range(6))]
    assert all(len(b) == 4 for b in batches)
    assert {p for b in batches for p, _ in b.bad} == {str(tmp_path / "img" / n) for n in ("d.png", "e.png")}


def test_every_image_unreadable_stops_with_the_folder_named(tmp_path):
    index, ds = _samples(tmp_path)
    for p in (tmp_path / "img").iterdir():
        p.write_bytes(b"x")
    with pytest.raises(RuntimeError, match=r"32 images in a row could not be used .* check data.images="):
        ds[(0, 0)]


def test_coco_templates_and_heldout_batch(tmp_path):
    index, ds = _samples(tmp_path, "coco", templates=["{}", "point at the {}"])
    texts = {ds[(k, 0)]["instruction"] for k in range(12)}
    assert any(t.startswith("point at the ") for t in texts) and any(t.endswith(" block") and
                                                                     not t.startswith("point") for t in texts)
    (tmp_path / "img" / "a.png").unlink()
    batch, bad = heldout_batch(index, np.arange(len(index)), ds.settings, seed=0)
    assert len(batch) == len(index) - 2 and len(bad) == 2  # a.png holds two COCO records
    assert bool(box_grounding(batch.goals, batch.boxes, batch.valid)["inside"].all())


def test_batch_split_and_epoch_steps():
    assert split_batch(8, 0.0) == (8, 0) and split_batch(8, 0.25) == (6, 2) and split_batch(4, 0.01) == (3, 1)
    with pytest.raises(ValueError, match="batch_size >= 2"):
        split_batch(1, 0.5)
    assert steps_for_epochs(8, 1000, 48, 1) == 167 and steps_for_epochs(0.5, 10, 4, 2) == 1
