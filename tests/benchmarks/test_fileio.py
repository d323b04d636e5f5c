"""Crash-safe files: atomic replacement, checksummed JSON lines repaired without losing a byte, manifests, temps."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.fileio import (
    CRC_KEY,
    REJECTED_SUFFIX,
    ManifestError,
    atomic_write_bytes,
    atomic_write_json,
    ensure_writable,
    jsonl_line,
    read_jsonl,
    remove_stale_temps,
    verify_manifest,
    write_manifest,
)


def test_atomic_write_replaces_the_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "r.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert sorted(x.name for x in p.parent.iterdir()) == ["r.json"]


def test_a_failing_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "r.txt"
    atomic_write_bytes(p, b"old")

    def boom(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="No space"):
        atomic_write_bytes(p, b"new content")
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["r.txt"]  # the temp file is gone too


def test_ensure_writable_names_the_path(tmp_path):
    ensure_writable(tmp_path / "new" / "out.json")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="file/out.json"):
        ensure_writable(blocker / "out.json")  # its parent is a file
    with pytest.raises(ValueError, match="is a directory"):
        ensure_writable(tmp_path)


def test_read_jsonl_keeps_unknown_valid_lines_and_quarantines_the_rest(tmp_path):
    p = tmp_path / "e.jsonl"
    good = [{"episode": i, "ok": True} for i in range(3)]
    text = (jsonl_line(good[0]) + '{"note": "from another tool"}\n' + "[1, 2]\n" + jsonl_line(good[1])
            + "garbage {\n" + jsonl_line(good[2]).replace('"ok": true', '"ok": fals') + '{"episode": 9, "ok"')
    p.write_text(text)
    got = read_jsonl(p)
    assert got.records == [good[0], {"note": "from another tool"}, good[1]]
    assert got.others == [[1, 2]]
    assert [n for n, _ in got.rejected] == [5, 6, 7]
    assert "checksum" not in got.rejected[0][1] and "not JSON" in got.rejected[2][1]
    assert got.repaired
    kept = p.read_text().splitlines()
    assert len(kept) == 4 and kept[1] == '{"note": "from another tool"}' and kept[2] == "[1, 2]"
    assert (tmp_path / ("e.jsonl" + REJECTED_SUFFIX)).read_text().splitlines() == text.splitlines()[4:]
    # A second read finds a clean file and changes nothing.
    before = p.read_bytes()
    again = read_jsonl(p)
    assert not again.rejected and not again.repaired and p.read_bytes() == before


def test_a_flipped_digit_that_still_parses_is_caught_by_the_checksum(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text(jsonl_line({"episode": 3, "success": True}).replace('"episode": 3', '"episode": 2'))
    got = read_jsonl(p)
    assert got.records == [] and "checksum" in got.rejected[0][1]


def test_a_complete_last_line_without_newline_is_kept(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text(jsonl_line({"a": 1}) + jsonl_line({"a": 2}).rstrip("\n"))
    assert read_jsonl(p).records == [{"a": 1}, {"a": 2}]
    assert p.read_text().endswith("\n") and len(p.read_text().splitlines()) == 2
    assert not (tmp_path / ("e.jsonl" + REJECTED_SUFFIX)).exists()


def test_keep_drops_superseded_records_without_quarantine(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text("".join(jsonl_line({"step": s}) for s in range(1, 6)))
    assert [r["step"] for r in read_jsonl(p, keep=lambda r: r["step"] <= 3).records] == [1, 2, 3]
    assert len(p.read_text().splitlines()) == 3
    assert not (tmp_path / ("m.jsonl" + REJECTED_SUFFIX)).exists()


_record = st.dictionaries(st.text(max_size=5).filter(lambda k: k != CRC_KEY),
                          st.one_of(st.integers(), st.booleans(), st.text(max_size=8), st.none()), max_size=4)


@settings(max_examples=60, deadline=None)
@given(st.lists(_record, max_size=8), st.data())
def test_no_valid_line_is_ever_lost(tmp_path_factory, records, data):
    """Property: after any corruption of any bytes, every line that was valid is in the file or in .rejected,
    the file holds only valid lines, and the records read are exactly the valid lines' records."""
    p = tmp_path_factory.mktemp("j") / "e.jsonl"
    raw = bytearray("".join(jsonl_line(r) for r in records).encode())
    for _ in range(data.draw(st.integers(0, 3))):
        if raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
    if raw and data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    p.write_bytes(bytes(raw))
    lines = [ln for ln in bytes(raw).split(b"\n") if ln.strip()]
    got = read_jsonl(p)
    after = [ln for ln in p.read_bytes().split(b"\n") if ln]
    rejected_path = p.with_name(p.name + REJECTED_SUFFIX)
    rejected = [ln for ln in rejected_path.read_bytes().split(b"\n") if ln] if rejected_path.exists() else []
    assert sorted(after + rejected) == sorted(lines)  # nothing lost, nothing invented
    assert len(got.records) + len(got.others) == len(after)
    assert all(r in records for r in got.records)  # a corrupted record never passes as valid


def test_manifest_catches_any_flipped_bit_truncation_and_unlisted_file(tmp_path):
    (tmp_path / "a.bin").write_bytes(bytes(range(200)))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b.json").write_text('{"x": 1}')
    write_manifest(tmp_path, "test-format")
    verify_manifest(tmp_path, "test-format", ["a.bin"])
    data = bytearray((tmp_path / "a.bin").read_bytes())
    for i in (0, 57, 199):
        flipped = bytearray(data)
        flipped[i] ^= 0x10
        (tmp_path / "a.bin").write_bytes(bytes(flipped))
        with pytest.raises(ManifestError, match="a.bin has sha256"):
            verify_manifest(tmp_path, "test-format")
    (tmp_path / "a.bin").write_bytes(bytes(data[:100]))
    with pytest.raises(ManifestError, match="a.bin has 100 bytes"):
        verify_manifest(tmp_path, "test-format")
    (tmp_path / "a.bin").write_bytes(bytes(data))
    (tmp_path / "evil.py").write_text("import os")
    with pytest.raises(ManifestError, match="not in the manifest"):
        verify_manifest(tmp_path, "test-format")
    with pytest.raises(ManifestError, match="not a other manifest"):
        verify_manifest(tmp_path, "other")


def test_stale_temps_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".tmp_step_0000003_{dead_pid}").mkdir()
    (tmp_path / f".tmp_step_0000004_{os.getpid()}").mkdir()  # ours: a writer still running
    (tmp_path / ".tmp_step_0000005_1").mkdir()  # pid 1 is alive (init)
    removed = remove_stale_temps(tmp_path, ".tmp_step_*")
    assert [p.name for p in removed] == [f".tmp_step_0000003_{dead_pid}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp_step_0000004_" + str(os.getpid()),
                                                          ".tmp_step_0000005_1"]
