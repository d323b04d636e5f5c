"""Real detection samples as training batches: images fitted to the model's square input, target maps, boxes.

A sample is one image, one expression and the boxes it refers to. The image is read with Pillow, converted to RGB and
fitted to ``S`` × ``S`` pixels — ``squash`` (resize, ignoring the aspect ratio: what PaliGemma's processor does, and
what the reference trained on; normalised boxes are unchanged) or ``center_crop`` (the largest centred square,
boxes clipped to it, boxes outside it dropped). The target is :func:`rendering.box_centre_targets`: a Gaussian at
every box centre, merged and re-normalised.

Sampling is keyed like the fine-tuning dataset's (``bridgevla.data.dataset``): slot ``j`` of micro-batch ``k`` is a
pure function of ``(seed, k, j)``: position ``p = k·G + j`` of an endless stream of epochs (``G`` the global batch,
every rank's slots), each epoch a permutation of the training split drawn from ``(seed, epoch)``. So a resumed run
reads exactly the samples the uninterrupted one would have, with any number of workers, and DDP ranks never read
the same sample. An image that cannot be read is replaced by another training sample drawn from
``(seed, k, j, attempt)`` — still a pure function of the key — and reported with the batch, so the job can count it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from bridgevla.data.dataset import StepKeys
from pretrain.index import GroundingIndex
from rendering import box_centre_targets

Fit = Literal["squash", "center_crop"]
MAX_ATTEMPTS = 32  # consecutive unreadable images before the job stops: the folder is wrong, not a few files


class ImageError(Exception):
    """An image that cannot be used (missing, unreadable, or no box left inside the crop); the message says why."""


@dataclass
class GroundingBatch:
    """B real samples. ``images`` (B, 3, S, S) uint8; ``goals`` (B, S, S) target maps summing to 1; ``boxes``
    (B, K, 4) normalised xyxy in the fitted image, ``valid`` (B, K) False on padding; ``bad`` the
    (image path, reason) of every image replaced while building this batch."""

    images: Tensor
    goals: Tensor
    boxes: Tensor
    valid: Tensor
    instructions: list[str]
    paths: list[str]
    bad: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> GroundingBatch:
        move = {k: getattr(self, k).to(device, non_blocking=non_blocking)
                for k in ("images", "goals", "boxes", "valid")}
        return GroundingBatch(**move, instructions=self.instructions, paths=self.paths, bad=self.bad)

    def float_images(self) -> Tensor:
        return self.images.float() / 255.0

    def select(self, rows: slice) -> GroundingBatch:
        return GroundingBatch(self.images[rows], self.goals[rows], self.boxes[rows], self.valid[rows],
                              self.instructions[rows], self.paths[rows])


def load_image(path: Path, boxes: np.ndarray, size: int, fit: Fit) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) uint8 RGB and the boxes (K', 4) normalised in it (see the module doc). Raises ImageError."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                # JPEG: decode at the smallest DCT scale that keeps both sides >= size (far cheaper than a full
                # decode and resize of a large photograph; normalised boxes do not change).
                im.draft("RGB", (size, size))
                im = im.convert("RGB")  # decodes fully: a truncated file fails here, not later
    except FileNotFoundError:
        raise ImageError("missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as e:
        raise ImageError(f"unreadable ({type(e).__name__})") from None
    w, h = im.size
    if w < 1 or h < 1:
        raise ImageError("empty image")
    if fit == "center_crop":
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        px = boxes * np.array([w, h, w, h], dtype=np.float64) - np.array([left, top, left, top], dtype=np.float64)
        overlaps = (px[:, 2] >= 0) & (px[:, 0] <= side) & (px[:, 3] >= 0) & (px[:, 1] <= side)
        boxes = np.clip(px[overlaps], 0.0, side) / side
        if len(boxes) == 0:
            raise ImageError("no box inside the centre crop")
    im = im.resize((size, size), Image.BICUBIC)  # PaliGemma's processor resamples bicubically
    return np.array(im, dtype=np.uint8), boxes  # a writable copy: torch.from_numpy shares it


def collate_grounding(samples: Sequence[dict[str, Any]]) -> GroundingBatch:
    k = max(len(s["boxes"]) for s in samples)
    boxes = torch.zeros(len(samples), k, 4)
    valid = torch.zeros(len(samples), k, dtype=torch.bool)
    for i, s in enumerate(samples):  # a few boxes per sample: padding, not per-pixel work
        boxes[i, : len(s["boxes"])] = torch.as_tensor(s["boxes"], dtype=torch.float32)
        valid[i, : len(s["boxes"])] = True
    return GroundingBatch(images=torch.stack([s["image"] for s in samples]),
                          goals=torch.stack([s["goal"] for s in samples]), boxes=boxes, valid=valid,
                          instructions=[s["instruction"] for s in samples], paths=[s["path"] for s in samples],
                          bad=[b for s in samples for b in s["bad"]])


@dataclass
class SampleSettings:
    """How a record becomes a sample (the job fills it from its config and the model)."""

    images: str  # folder the records' image paths are relative to
    image_size: int
    sigma: float
    cutoff: float
    fit: Fit = "squash"
    templates: list[str] = field(default_factory=lambda: ["{}"])  # "{}" = the record's expression


class GroundingSamples(Dataset):
    """Samples of an index's training ids, keyed by ``(micro_step, slot)`` (see the module doc)."""

    def __init__(self, index: GroundingIndex, ids: np.ndarray, settings: SampleSettings, seed: int,
                 global_batch: int) -> None:
        if len(ids) == 0:
            raise ValueError("no training samples")
        self.index, self.ids, self.settings, self.seed, self.global_batch = index, ids, settings, seed, global_batch
        self._perm: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch not in self._perm:
            if len(self._perm) >= 2:
                self._perm.pop(min(self._perm))
            self._perm[epoch] = np.random.default_rng([self.seed, epoch]).permutation(len(self.ids))
        return self._perm[epoch]

    def sample_id(self, step: int, slot: int) -> int:
        p = step * self.global_batch + slot
        epoch, i = divmod(p, len(self.ids))
        return int(self.ids[self._permutation(epoch)[i]])

    def make(self, sample: int, rng: np.random.Generator) -> dict[str, Any]:
        """One sample from an index id (raises ImageError)."""
        st = self.settings
        rec = self.index.record(sample)
        path = Path(st.images) / rec["image"]
        image, boxes = load_image(path, np.asarray(rec["boxes"], dtype=np.float64).reshape(-1, 4), st.image_size,
                                  st.fit)
        box_t = torch.as_tensor(boxes, dtype=torch.float32)
        # One sample at a time: K maps of S^2 each, never B·K of them.
        goal = box_centre_targets(box_t[None], torch.ones(1, len(box_t), dtype=torch.bool), st.image_size, st.sigma,
                                  st.cutoff)[0]
        template = st.templates[int(rng.integers(len(st.templates)))]
        return {"image": torch.from_numpy(image).permute(2, 0, 1).contiguous(), "goal": goal, "boxes": box_t,
                "instruction": template.format(rec["expression"]), "path": str(path), "bad": []}

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        step, slot = key
        sample, bad = self.sample_id(step, slot), []
        for attempt in range(MAX_ATTEMPTS):
            rng = np.random.default_rng([self.seed, step, slot, attempt])
            try:
                out = self.make(sample, rng)
                out["bad"] = bad
                return out
            except ImageError as e:
                bad.append((str(Path(self.settings.images) / self.index.record(sample)["image"]), str(e)))
                sample = int(self.ids[int(rng.integers(len(self.ids)))])
        raise RuntimeError(f"{MAX_ATTEMPTS} images in a row could not be used (last: {bad[-1][0]}: {bad[-1][1]}); "
                           f"check data.images={self.settings.images}")


class GroundingBatches:
    """The trainer's batch source over :class:`GroundingSamples` (a DataLoader with ``num_workers`` processes)."""

    def __init__(self, samples: GroundingSamples, batch_size: int, num_workers: int = 0, rank: int = 0) -> None:
        self.samples, self.batch_size, self.num_workers, self.rank = samples, batch_size, num_workers, rank

    def iterate(self, start: int) -> Iterator[GroundingBatch]:
        loader = DataLoader(self.samples, batch_sampler=StepKeys(start, self.batch_size, self.rank),
                            collate_fn=collate_grounding, num_workers=self.num_workers,
                            generator=torch.Generator(), persistent_workers=False,
                            pin_memory=torch.cuda.is_available())
        return iter(loader)


def heldout_batch(index: GroundingIndex, ids: np.ndarray, settings: SampleSettings, seed: int
                  ) -> tuple[GroundingBatch | None, list[tuple[str, str]]]:
    """Every usable held-out sample in one batch (images that cannot be used are left out and returned as bad)."""
    ds = GroundingSamples(index, ids if len(ids) else np.zeros(1, np.int64), settings, seed, 1)
    samples, bad = [], []
    for i, sample in enumerate(ids.tolist()):
        try:
            samples.append(ds.make(sample, np.random.default_rng([seed, 1 << 31, i])))
        except ImageError as e:
            bad.append((str(Path(settings.images) / index.record(sample)["image"]), str(e)))
    return (collate_grounding(samples) if samples else None), bad


@dataclass
class MixedBatch:
    """A micro-batch of real samples and synthetic scenes, trained in one forward pass."""

    real: GroundingBatch
    synthetic: Any  # pretrain.scenes.SceneBatch

    @property
    def instructions(self) -> list[str]:
        return [*self.real.instructions, *self.synthetic.instructions]

    def __len__(self) -> int:
        return len(self.real) + len(self.synthetic)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MixedBatch:
        return MixedBatch(self.real.to(device, non_blocking), self.synthetic.to(device, non_blocking))


class MixedBatches:
    """Zips a real and a synthetic batch source step by step (both keyed by the micro-step, so still resumable)."""

    def __init__(self, real: Any, synthetic: Any) -> None:
        self.real, self.synthetic = real, synthetic

    def iterate(self, start: int) -> Iterator[MixedBatch]:
        for r, s in zip(self.real.iterate(start), self.synthetic.iterate(start)):
            yield MixedBatch(r, s)


def split_batch(batch_size: int, synthetic_fraction: float) -> tuple[int, int]:
    """(real, synthetic) samples per micro-batch: at least one of each when mixing."""
    n_syn = min(batch_size - 1, max(1, round(batch_size * synthetic_fraction))) if synthetic_fraction > 0 else 0
    if synthetic_fraction > 0 and batch_size < 2:
        raise ValueError("data.synthetic_fraction > 0 needs train.batch_size >= 2 (one real and one synthetic sample)")
    return batch_size - n_syn, n_syn


def steps_for_epochs(epochs: float, train_samples: int, global_batch: int, grad_accum: int) -> int:
    """Optimizer steps that make ``epochs`` passes over the training split."""
    return max(1, math.ceil(epochs * train_samples / (global_batch * grad_accum)))
