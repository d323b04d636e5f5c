"""The bytes on the wire: msgpack with numpy arrays as openpi's extension maps (docs/robot.md, "Protocol").

openpi (``openpi_client.msgpack_numpy``) sends an array as the map ``{b"__ndarray__": True, b"data": <C-order bytes>,
b"dtype": dtype.str, b"shape": [...]}`` and a numpy scalar as ``{b"__npgeneric__": True, b"data": item, b"dtype":
str}``; void, object and complex dtypes are refused. This is our own codec for that format, so the server needs
neither openpi (whose package pins numpy < 2) nor trust in the sender: every map is checked before any array is
built (known dtype kind, shape of non-negative ints, byte count equal to shape × itemsize, size limits), and every
problem is a :class:`WireError` naming it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_ND = b"__ndarray__"
_NG = b"__npgeneric__"
# bool, signed and unsigned ints, floats: what observations and keyposes are made of (openpi refuses V, O, c too;
# we also refuse strings and datetimes, which no request field uses).
_KINDS = frozenset("biuf")
MAX_NDIM = 8


class WireError(ValueError):
    """Bytes that are not a valid message (bad msgpack, a malformed array map, an array over the limits)."""


def _msgpack():
    try:
        import msgpack
    except ImportError as e:  # the serving extra; the policy itself never needs it
        raise ImportError("the policy server and client need msgpack: pip install 'bridgevla[serve]'") from e
    return msgpack


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in ("V", "O", "c"):
        raise WireError(f"cannot send dtype {obj.dtype} (void, object and complex arrays are refused)")
    if isinstance(obj, np.ndarray):
        return {_ND: True, b"data": obj.tobytes(order="C"), b"dtype": obj.dtype.str, b"shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return {_NG: True, b"data": obj.item(), b"dtype": obj.dtype.str}
    raise WireError(f"cannot send an object of type {type(obj).__name__}")


def packb(obj: Any) -> bytes:
    """``obj`` (dicts, lists, str, numbers, bytes, numpy arrays and scalars) → msgpack bytes in openpi's format."""
    return _msgpack().packb(obj, default=_pack_default, use_bin_type=True)


def _dtype(raw: Any) -> np.dtype:
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    if not isinstance(raw, str):
        raise WireError(f"array dtype must be a string like '<f4', got {type(raw).__name__}")
    try:
        dt = np.dtype(raw)
    except (TypeError, ValueError) as e:
        raise WireError(f"array dtype {raw!r} is not a numpy dtype") from e
    if dt.kind not in _KINDS or dt.hasobject or dt.fields is not None or dt.subdtype is not None:
        raise WireError(f"array dtype {raw!r} is not allowed (only bool, int, uint and float)")
    return dt


class _Decoder:
    """msgpack ``object_hook`` that turns openpi array maps into arrays, with a budget on the total array bytes."""

    def __init__(self, max_array_bytes: int) -> None:
        self.remaining = max_array_bytes

    def __call__(self, obj: dict) -> Any:
        if _ND in obj:
            return self._array(obj)
        if _NG in obj:
            return self._scalar(obj)
        return obj

    def _array(self, obj: dict) -> np.ndarray:
        missing = [k.decode() for k in (b"data", b"dtype", b"shape") if k not in obj]
        if missing:
            raise WireError(f"array map lacks {missing}")
        data, shape = obj[b"data"], obj[b"shape"]
        dt = _dtype(obj[b"dtype"])
        if not isinstance(data, (bytes, bytearray)):
            raise WireError(f"array data must be bytes, got {type(data).__name__}")
        if not isinstance(shape, (list, tuple)) or len(shape) > MAX_NDIM or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise WireError(f"array shape must be a list of at most {MAX_NDIM} non-negative ints, got {shape!r}")
        count = 1
        for s in shape:
            count *= s
        if count * dt.itemsize != len(data):
            raise WireError(f"array of shape {list(shape)} and dtype {dt.str} needs {count * dt.itemsize} bytes, "
                            f"got {len(data)}")
        self.remaining -= len(data)
        if self.remaining < 0:
            raise WireError("the message's arrays exceed the server's size limit")
        # A copy: frombuffer would be read-only and tie the array to the message buffer.
        return np.frombuffer(data, dtype=dt).reshape(shape).copy()

    def _scalar(self, obj: dict) -> np.generic:
        if b"data" not in obj or b"dtype" not in obj:
            raise WireError("numpy scalar map lacks data or dtype")
        dt = _dtype(obj[b"dtype"])
        try:
            return dt.type(obj[b"data"])
        except (TypeError, ValueError, OverflowError) as e:
            raise WireError(f"numpy scalar {obj[b'data']!r} is not a valid {dt.str}") from e


def unpackb(data: bytes, max_array_bytes: int = 1 << 30) -> Any:
    """msgpack bytes (openpi's format) → Python objects with numpy arrays; :class:`WireError` on anything else."""
    msgpack = _msgpack()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected a binary message, got {type(data).__name__}")
    try:
        return msgpack.unpackb(data, object_hook=_Decoder(max_array_bytes), raw=False, strict_map_key=False,
                               use_list=True)
    except WireError:
        raise
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError, TypeError,
            UnicodeDecodeError, RecursionError) as e:
        raise WireError(f"message is not valid msgpack: {type(e).__name__}: {e}") from e
