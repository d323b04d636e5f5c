"""Streaming JSON: the elements of a file's large top-level arrays one at a time, in bounded memory.

Detection annotation files are single JSON documents of hundreds of megabytes (RoboPoint's conversation list, COCO's
``instances_*.json``); ``json.load`` would hold all of it, as Python objects, at once. This reader keeps a window of
the text and decodes one element at a time with the standard library's decoder (``JSONDecoder.raw_decode``), so
memory is one chunk plus the largest element. No dependency beyond ``json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

CHUNK_CHARS = 1 << 20
_WHITESPACE = " \t\n\r"
_DELIMITERS = _WHITESPACE + ",:]}"


class JsonStreamError(ValueError):
    """The file is not the JSON it should be; the message names the file and the character offset."""


class _Window:
    """A sliding window over a text file: ``buf[pos:]`` is unread text, ``base`` the file offset of ``buf[0]``."""

    def __init__(self, f: TextIO, path: Path, chunk: int) -> None:
        self.f, self.path, self.chunk = f, path, chunk
        self.buf, self.pos, self.base, self.eof = "", 0, 0, False
        self.decoder = json.JSONDecoder()

    def fail(self, what: str) -> JsonStreamError:
        return JsonStreamError(f"{self.path}: {what} at character {self.base + self.pos}")

    def fill(self) -> bool:
        """Read one more chunk; False at the end of the file."""
        text = self.f.read(self.chunk)
        if not text:
            self.eof = True
            return False
        self.base += self.pos
        self.buf, self.pos = self.buf[self.pos:] + text, 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), not consumed."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf) or not self.fill():
                return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def expect(self, chars: str) -> str:
        c = self.peek()
        if c == "" or c not in chars:
            raise self.fail(f"expected one of {list(chars)}, found {c or 'the end of the file'!r}")
        self.pos += 1
        return c

    def value(self) -> Any:
        """Decode the next JSON value. A value that fails to decode may continue in the next chunk; so may one that
        decodes but is not followed by a delimiter in the window (a number cut in two decodes fine, wrongly: "0." as
        0): both read more and retry. Valid JSON always has a delimiter or the end of the file after a value."""
        self.peek()
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as e:
                if not self.fill():
                    raise JsonStreamError(f"{self.path}: invalid JSON at character {self.base + e.pos}: {e.msg}") \
                        from None
                continue
            if not self.eof and (end == len(self.buf) or self.buf[end] not in _DELIMITERS) and self.fill():
                continue
            self.pos = end
            return value


def _open(path: str | Path, chunk: int) -> tuple[TextIO, _Window]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    f = p.open("r", encoding="utf-8-sig")  # utf-8-sig: tolerate a byte-order mark
    return f, _Window(f, p, chunk)


def _array(w: _Window) -> Iterator[Any]:
    """Elements of the array whose '[' is next in the window."""
    w.expect("[")
    if w.peek() == "]":
        w.pos += 1
        return
    while True:
        yield w.value()
        if w.expect(",]") == "]":
            return


def iter_array(path: str | Path, chunk: int = CHUNK_CHARS) -> Iterator[Any]:
    """The elements of a file holding one top-level JSON array."""
    f, w = _open(path, chunk)
    with f:
        if w.peek() != "[":
            raise w.fail("expected a top-level JSON array")
        yield from _array(w)
        if w.peek() != "":
            raise w.fail("unexpected text after the top-level array")


def iter_object(path: str | Path, stream: set[str] | frozenset[str], chunk: int = CHUNK_CHARS
                ) -> Iterator[tuple[str, Any]]:
    """``(key, item)`` pairs of a file holding one top-level JSON object: for a key in ``stream`` whose value is an
    array, one pair per element (in order); for every other key, one pair with the whole value."""
    f, w = _open(path, chunk)
    with f:
        w.expect("{")
        if w.peek() == "}":
            w.pos += 1
        else:
            while True:
                if w.peek() != '"':
                    raise w.fail("expected an object key")
                key = w.value()
                w.expect(":")
                if key in stream and w.peek() == "[":
                    for item in _array(w):
                        yield key, item
                else:
                    yield key, w.value()
                if w.expect(",}") == "}":
                    break
        if w.peek() != "":
            raise w.fail("unexpected text after the top-level object")


def iter_records(path: str | Path, chunk: int = CHUNK_CHARS) -> Iterator[Any]:
    """Records of a ``.jsonl`` file (one JSON value per non-empty line) or of a top-level JSON array."""
    p = Path(path)
    if p.suffix != ".jsonl":
        yield from iter_array(p, chunk)
        return
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    with p.open("r", encoding="utf-8-sig") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise JsonStreamError(f"{p}: line {line_no}: invalid JSON: {e.msg}") from None
