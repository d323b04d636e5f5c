"""Crash-safe files: atomic writes, JSON-lines with per-line checksums and lossless repair, stale temp cleanup.

Every file the project rewrites goes through :func:`atomic_write_bytes` (or its text/JSON forms): the new content is
written to a temporary sibling, flushed and fsync'd, renamed over the old file (``os.replace``, atomic on one
filesystem) and the directory entry is fsync'd. A process killed at any instant, or a power cut, leaves either the old
or the new file, never a truncated one. Folders built under a temporary name (checkpoints, episodes, policies) are
made durable with :func:`fsync_tree` before their rename.

JSON-lines result files (evaluation episodes, training metrics, expert reports) are appended one record per line.
:func:`jsonl_line` adds a CRC-32 of the record (``"_crc32"``) so that a flipped bit that still parses as JSON is
caught on reading. :func:`read_jsonl` never drops data: a line that is valid JSON (even one it does not recognise)
is kept; a line that is not (torn by a kill mid-write, or corrupted) is *quarantined* — appended to
``<file>.rejected`` — before the file is atomically rewritten without it.

Folders that must be read back exactly (policies, training checkpoints, dataset episodes) carry a ``manifest.json``
with the sha256 and size of every file (:func:`write_manifest`, :func:`verify_manifest`): a flipped bit or a
truncation anywhere is caught before the content is used.

This module sits in ``benchmarks`` (the lowest layer that writes files) so that ``benchmarks`` and ``bridgevla`` share
one implementation.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CRC_KEY = "_crc32"
REJECTED_SUFFIX = ".rejected"


# ---------------------------------------------------------------- atomic writes
def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries (a rename, a new file) durable. A no-op where directories cannot be opened."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(root: str | Path) -> None:
    """fsync every file and directory under ``root`` (before renaming a folder that was built in place)."""
    root = Path(root)
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically and durably (temp sibling + fsync + rename + directory fsync)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, f".{glob.escape(path.name)}.tmp-*")  # of writers killed before their rename
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-", suffix=f"-{os.getpid()}")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data: Any, indent: int | None = 1) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=indent))


def ensure_writable(path: str | Path) -> Path:
    """Check *before* a long job that its output file can be written (creates the parent folder); raises
    ``ValueError`` naming the path, so that the results are not lost at the end."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.probe-")
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise ValueError(f"{path}: cannot write there ({e.strerror or e})") from e
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a file")
    return path


# ---------------------------------------------------------------- temporary folders of dead writers
def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (a zombie counts as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) has written its last byte
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


_PID_TAIL = re.compile(r"[-_](\d+)$")


def remove_stale_temps(folder: str | Path, pattern: str) -> list[Path]:
    """Remove entries of ``folder`` matching ``pattern`` (a glob) whose name ends in ``-<pid>`` or ``_<pid>`` of a
    process that no longer runs: what a writer killed mid-write leaves. Live writers' temps are kept. Returns the
    removed paths."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(pattern):
        m = _PID_TAIL.search(tmp.name)
        if m is None or (int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1)))):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            removed.append(tmp)
    return removed


# ---------------------------------------------------------------- JSON lines
def _crc(record: dict[str, Any]) -> int:
    body = json.dumps({k: v for k, v in record.items() if k != CRC_KEY}, sort_keys=True, separators=(",", ":"))
    return zlib.crc32(body.encode("utf-8"))


def jsonl_line(record: dict[str, Any], checksum: bool = True) -> str:
    """One JSON line (with its newline) for ``record``, carrying a CRC-32 of its content unless ``checksum=False``."""
    if not isinstance(record, dict):
        raise ValueError(f"record must be a dict, got {type(record).__name__}")
    return json.dumps({**record, CRC_KEY: _crc(record)} if checksum else record) + "\n"


def append_jsonl(f: Any, record: dict[str, Any], durable: bool = True, checksum: bool = True) -> None:
    """Append ``record`` to the open text file ``f`` (opened with ``"a"``) and flush it (``durable``: to the disk)."""
    f.write(jsonl_line(record, checksum))
    f.flush()
    if durable:
        os.fsync(f.fileno())


@dataclass
class JsonlContents:
    """What :func:`read_jsonl` found: the valid records (CRC removed) and the lines it quarantined."""

    records: list[dict[str, Any]] = field(default_factory=list)  # valid JSON objects, in file order
    others: list[Any] = field(default_factory=list)  # valid JSON that is not an object (kept in the file)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (1-based line number, why)
    repaired: bool = False  # the file was rewritten (quarantined or dropped lines, a last line without its newline)


def _parse(line: str) -> tuple[Any, str | None]:
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as e:
        return None, f"not JSON ({e.__class__.__name__}: {str(e)[:60]})"
    if isinstance(value, dict) and CRC_KEY in value:
        crc = value.pop(CRC_KEY)
        if not isinstance(crc, int) or isinstance(crc, bool) or crc != _crc(value):
            return None, "checksum mismatch (corrupted line)"
    elif isinstance(value, dict) and any(_one_off(k) for k in value):
        return None, "checksum key corrupted"  # a flipped bit in the key itself must not disable the check
    return value, None


def _one_off(key: str) -> bool:
    return len(key) == len(CRC_KEY) and sum(a != b for a, b in zip(key, CRC_KEY)) == 1


def read_jsonl(path: str | Path, keep: Callable[[Any], bool] | None = None, repair: bool = True) -> JsonlContents:
    """Read a JSON-lines file written with :func:`jsonl_line` (lines without a checksum are accepted too).

    Lines that are not valid JSON, or whose checksum does not match, are *rejected*; with ``repair`` they are appended
    to ``<path>.rejected`` (fsync'd) and the file is atomically rewritten without them (and with a newline after a last
    line that lacked one), so appending can continue. ``keep(value)`` may drop further valid values from the rewrite
    (records superseded by the caller, e.g. metrics past the checkpoint a resumed run replays: these are removed,
    not quarantined). Undecodable bytes are rejected per line too."""
    path = Path(path)
    out = JsonlContents()
    if not path.exists():
        return out
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    tail_missing_newline = bool(lines) and lines[-1] != b""
    if not tail_missing_newline:
        lines = lines[:-1]
    kept: list[bytes] = []
    quarantined: list[bytes] = []
    dropped = False
    for n, bline in enumerate(lines, start=1):
        if not bline.strip():
            continue
        try:
            text = bline.decode("utf-8")
        except UnicodeDecodeError:
            value, why = None, "not UTF-8"
        else:
            value, why = _parse(text)
        if why is None and keep is not None and not keep(value):
            dropped = True
            continue
        if why is not None:
            out.rejected.append((n, why))
            quarantined.append(bline)
            continue
        kept.append(bline)
        (out.records if isinstance(value, dict) else out.others).append(value)
    if repair and (quarantined or dropped or (tail_missing_newline and lines and lines[-1].strip())):
        if quarantined:
            # Quarantine first: if a kill lands between the two writes the lines exist twice, never zero times.
            with open(path.with_name(path.name + REJECTED_SUFFIX), "ab") as f:
                f.write(b"".join(q + b"\n" for q in quarantined))
                f.flush()
                os.fsync(f.fileno())
        atomic_write_bytes(path, b"".join(k + b"\n" for k in kept))
        out.repaired = True
    return out


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Atomically replace ``path`` with ``records`` (one checksummed line each)."""
    return atomic_write_text(path, "".join(jsonl_line(r) for r in records))


# ---------------------------------------------------------------- sha256 manifests of folders
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


class ManifestError(ValueError):
    """A folder does not match its manifest (missing, truncated, modified or unlisted files); the message names
    the folder and the file."""


def sha256_file(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _folder_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def write_manifest(root: str | Path, fmt: str) -> dict:
    """Hash every file under ``root`` (except the manifest) into ``root/manifest.json`` (atomically), last."""
    root = Path(root)
    files = {rel: {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
             for rel in _folder_files(root) if rel != MANIFEST}
    manifest = {"format": fmt, "format_version": MANIFEST_VERSION, "files": files}
    atomic_write_json(root / MANIFEST, manifest)
    return manifest


def verify_manifest(root: str | Path, fmt: str, required: Sequence[str] = (), what: str = "folder",
                    error: type[ValueError] = ManifestError) -> dict:
    """Check every file of ``root`` against its manifest of format ``fmt`` (sizes, then sha256) and that
    ``required`` files are listed; files present but not listed are refused too (nothing unchecked is ever read).
    Returns the manifest or raises ``error`` naming ``what`` and the first bad file."""
    root = Path(root)
    if not root.is_dir():
        raise error(f"{what} {root} is not a directory")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise error(f"{what} {root} has no {MANIFEST} (incomplete save, or not written by bridgevla)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise error(f"{what} {root}: {MANIFEST} is not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != fmt or not isinstance(manifest.get("files"), dict):
        raise error(f"{what} {root}: {MANIFEST} is not a {fmt} manifest")
    if manifest.get("format_version") != MANIFEST_VERSION:
        raise error(f"{what} {root}: format_version {manifest.get('format_version')!r} is not supported "
                    f"(expected {MANIFEST_VERSION})")
    listed = manifest["files"]
    for rel in required:
        if rel not in listed:
            raise error(f"{what} {root}: {MANIFEST} does not list {rel}")
    extra = sorted(set(_folder_files(root)) - {MANIFEST} - set(listed))
    if extra:
        raise error(f"{what} {root}: files not in the manifest (refusing to read them): {extra[:5]}")
    for rel, entry in sorted(listed.items()):
        path = root / rel
        if not isinstance(entry, dict) or ".." in Path(rel).parts or Path(rel).is_absolute():
            raise error(f"{what} {root}: {MANIFEST} entry {rel!r} is malformed")
        if not path.is_file():
            raise error(f"{what} {root}: {rel} is missing")
        size = path.stat().st_size
        if size != entry.get("bytes"):
            raise error(f"{what} {root}: {rel} has {size} bytes, the manifest says {entry.get('bytes')} "
                        "(truncated or modified)")
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise error(f"{what} {root}: {rel} has sha256 {digest[:12]}…, the manifest says "
                        f"{str(entry.get('sha256'))[:12]}… (modified or corrupted)")
    return manifest
