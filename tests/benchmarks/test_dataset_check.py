"""One up-front dataset validation names every bad file (and nothing in a good dataset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.dataset import episode_dir, load_episode, save_episode
from benchmarks.dataset_check import check_dataset
from benchmarks.protocol import Keypose
from rendering import SceneBounds

from .test_dataset import record

BOUNDS = SceneBounds((-0.3, -0.5, 0.6), (0.7, 0.5, 1.6))


def dataset(root: Path, n: int = 6) -> list[Path]:
    ep = record()
    for k in ep.keyposes:  # FakeDemoEnv works around z = 0; lift it into the reference bounds
        k.position = k.position + np.array([0.0, 0.0, 1.0])
    return [save_episode(ep, episode_dir(root, "pick_fake", i)) for i in range(n)]


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x04
    path.write_bytes(bytes(data))


def test_a_clean_dataset_passes_with_every_file_counted(tmp_path):
    paths = dataset(tmp_path, 2)
    report = check_dataset(tmp_path, bounds=BOUNDS)
    assert report.ok and report.episodes == 2 and not report.notes, report.text()
    n_files = sum(1 for p in paths[0].rglob("*") if p.is_file())
    assert report.files >= 2 * (n_files - 1)  # every file but the manifest, hashed (and the PNGs decoded)


def test_every_kind_of_damage_is_named_at_once(tmp_path):
    eps = dataset(tmp_path)
    png = sorted((eps[0] / "front_rgb").glob("*.png"))[1]
    png.write_bytes(png.read_bytes()[: len(png.read_bytes()) // 2])  # truncated PNG
    flip_bit(eps[1] / "lowdim.npz", 300)  # one flipped bit in an npz
    (eps[2] / "episode.json").write_text('{"format": "bridgevla-episode", "task": ')  # garbled JSON
    missing = sorted((eps[3] / "front_depth").glob("*.png"))[0]
    missing.unlink()  # a missing file
    ep = load_episode(eps[4])
    ep.keyposes[1] = Keypose(ep.keyposes[1].position + [50.0, 0, 0], ep.keyposes[1].quaternion, True, True)
    save_episode(ep, eps[4], overwrite=True)  # a valid file with a keypose 50 m outside the bounds
    (tmp_path / "pick_fake" / "episode_00099").mkdir()  # a half-copied folder
    report = check_dataset(tmp_path, bounds=BOUNDS)
    text = report.text()
    assert set(report.bad_paths()) == {*eps[:5], tmp_path / "pick_fake" / "episode_00099"}, text
    assert f"front_rgb/{png.name} has" in text and "truncated" in text
    assert "lowdim.npz has sha256" in text
    assert "episode.json has sha256" in text or "episode.json is not valid" in text
    assert f"front_depth/{missing.name} is missing" in text
    assert "keyposes[1] at [50." in text and "m outside the scene bounds" in text
    assert "no episode.json" in text
    assert eps[5] not in report.bad_paths()


def test_without_manifests_the_decoders_still_name_damaged_files(tmp_path):
    """Episodes written before checksums: a note, and truncations/garbage are still caught by reading."""
    eps = dataset(tmp_path, 3)
    for e in eps:
        (e / "manifest.json").unlink()
    png = sorted((eps[0] / "front_rgb").glob("*.png"))[0]
    png.write_bytes(png.read_bytes()[:40])
    (eps[1] / "lowdim.npz").write_bytes((eps[1] / "lowdim.npz").read_bytes()[:100])
    report = check_dataset(tmp_path, bounds=BOUNDS)
    assert set(report.bad_paths()) == {eps[0], eps[1]}, report.text()
    assert "is not a readable PNG" in report.text() and "lowdim.npz is not a readable npz" in report.text()
    assert sum("no manifest.json" in m for _, m in report.notes) == 3


def test_a_keypose_just_outside_is_a_note_and_garbled_json_names_its_file(tmp_path):
    eps = dataset(tmp_path, 2)
    ep = load_episode(eps[0])
    ep.keyposes[0] = Keypose([0.71, 0.0, 1.0], ep.keyposes[0].quaternion, True, True)
    save_episode(ep, eps[0], overwrite=True)
    report = check_dataset(tmp_path, bounds=BOUNDS)
    assert report.ok and any("0.010 m outside" in m for _, m in report.notes)
    meta = json.loads((eps[1] / "episode.json").read_text())
    (eps[1] / "episode.json").write_text(json.dumps(meta)[:-20])
    with pytest.raises(ValueError, match=r"episode_00001/episode.json is not valid UTF-8 JSON"):
        load_episode(eps[1])
