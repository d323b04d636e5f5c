"""Our msgpack codec against openpi's own (the real openpi_client package), and its refusals."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpi_client import msgpack_numpy

from bridgevla.serving.wire import WireError, packb, unpackb

ARRAYS = [np.arange(12, dtype=np.float32).reshape(3, 4), np.zeros((2, 0, 3), np.uint8), np.array([True, False]),
          np.arange(5, dtype=">i4"), np.eye(4)[:, :2], np.float64(2.5), np.int16(-3)]


@pytest.mark.parametrize("value", ARRAYS, ids=lambda v: f"{np.asarray(v).dtype.str}{np.shape(v)}")
def test_same_bytes_as_openpi_and_both_directions(value):
    msg = {"x": value, "nested": [value, {"y": 1}]}
    ours, theirs = packb(msg), msgpack_numpy.packb(msg)
    # openpi packs shapes as tuples, we as lists: msgpack encodes both as arrays, so the bytes are identical.
    assert ours == theirs
    back = unpackb(theirs)
    np.testing.assert_array_equal(back["x"], value)
    assert np.asarray(back["x"]).dtype == np.asarray(value).dtype
    np.testing.assert_array_equal(msgpack_numpy.unpackb(ours)["nested"][0], value)


def test_non_contiguous_arrays_travel_in_c_order():
    a = np.arange(12, dtype=np.float32).reshape(3, 4).T
    np.testing.assert_array_equal(unpackb(packb(a)), a)


def test_decoded_arrays_are_writable_copies():
    out = unpackb(packb(np.zeros(3, np.float32)))
    out[0] = 1.0  # np.frombuffer alone would be read-only


def _nd(data: bytes, dtype: str, shape) -> bytes:
    return msgpack.packb({b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape})


@pytest.mark.parametrize(("raw", "match"), [
    (b"\xc1", "not valid msgpack"),  # a reserved byte
    (msgpack.packb({"a": 1}) + b"extra", "not valid msgpack"),
    (_nd(b"\0" * 8, "<f4", [3]), "needs 12 bytes, got 8"),
    (_nd(b"\0" * 8, "|O", [1]), "not allowed"),
    (_nd(b"\0" * 16, "<c16", [1]), "not allowed"),
    (_nd(b"\0" * 4, "nonsense", [1]), "not a numpy dtype"),
    (_nd(b"\0" * 4, "<f4", [-1]), "non-negative ints"),
    (_nd(b"\0" * 4, "<f4", [1] * 9), "at most 8"),
    (_nd(b"\0" * 4, "<f4", "1"), "non-negative ints"),
    (msgpack.packb({b"__ndarray__": True, b"data": b""}), "lacks"),
    (msgpack.packb({b"__npgeneric__": True, b"data": "x", b"dtype": "<f4"}), "not a valid"),
])
def test_malformed_messages_get_a_clear_error(raw, match):
    with pytest.raises(WireError, match=match):
        unpackb(raw)


def test_array_budget():
    raw = packb({"a": np.zeros(1000, np.uint8), "b": np.zeros(1000, np.uint8)})
    assert unpackb(raw, max_array_bytes=2000)["a"].shape == (1000,)
    with pytest.raises(WireError, match="size limit"):
        unpackb(raw, max_array_bytes=1999)


def test_refuses_to_send_objects():
    with pytest.raises(WireError):
        packb({"x": np.array([object()])})
    with pytest.raises(WireError):
        packb({"x": object()})


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_another_exception(raw):
    try:
        unpackb(raw)
    except WireError:
        pass
