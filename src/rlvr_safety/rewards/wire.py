"""The inert wire format between the trusted test runner and the sandboxed candidate: plain data, nothing else.

Only values built from None, bool, int, float, complex, str, bytes, range and list / tuple / dict / set /
frozenset of those cross the process boundary; an iterator travels as its items and arrives as an iterator. One
exception: a regex match object (MBPP's text-matching tasks return one, and their tests only ask whether it is
truthy) arrives as an `Opaque` token that is truthy and equal to nothing but itself; a program could return True
to the same effect, so the token grants nothing.
The encoding is JSON in which every container is an array whose first element names its type, so the decoder
builds each value from JSON's own types and never calls into anything the sender defined. Anything else (an
object of a program class, a JSON object where a value belongs, a tag it does not know, a dict key that is not
hashable, nesting deeper than `MAX_DEPTH`, a frame over the size cap) is a `WireError`.

Frames are a 4-byte big-endian length followed by UTF-8 JSON. This file is imported by path from the sandbox and
the runner scripts (both run with `python -I -S`), so it depends on the standard library only.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 200
MAX_FRAME = 16 << 20  # bytes; a result bigger than this is a failure, not a memory problem for the runner
_BIG_INT_BITS = 2000  # beyond this, ints travel as hex (decimal conversion is capped at 4300 digits)
_ITERATOR_CAP = 10_000_000


class WireError(ValueError):
    """A value that is not plain data, or a malformed frame."""


def encode(value: Any) -> Any:
    """A JSON-ready form of `value`; raises WireError for anything that is not plain data.

    Subclasses of the plain types travel as their base type (a namedtuple as a tuple, a Counter as a dict):
    what arrives is built by the receiver's decoder, whatever the sender's classes do.
    """
    return _encode(value, 0)


def _encode(value: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH}")
    if value is None or value is True or value is False:
        return value
    t = type(value)
    if t is str:
        return value
    if t is int:
        return value if value.bit_length() <= _BIG_INT_BITS else ["n", int.__format__(value, "x")]
    if t is float:
        return value
    d = depth + 1
    if t is list:
        return ["l", *[_encode(x, d) for x in value]]
    if t is tuple:
        return ["t", *[_encode(x, d) for x in value]]
    if t is dict:
        out: list[Any] = ["d"]
        for k, v in dict.items(value):
            out.append(_encode(k, d))
            out.append(_encode(v, d))
        return out
    if t is set or t is frozenset:
        return ["s" if t is set else "f", *[_encode(x, d) for x in value]]
    if t is bytes or t is bytearray:
        return ["b" if t is bytes else "y", bytes(value).hex()]
    if t is complex:
        return ["c", value.real, value.imag]
    if t is range:
        return ["r", value.start, value.stop, value.step]
    for base, plain in _AS_BASE:
        if isinstance(value, base):
            return _encode(plain(value), depth)
    if t.__module__ == "re" and t.__qualname__ == "Match":
        return ["m"]
    if hasattr(t, "__next__") and hasattr(t, "__iter__"):  # generator, map, zip, ...: its items, as an iterator
        items: list[Any] = []
        for item in value:
            if len(items) >= _ITERATOR_CAP:
                raise WireError(f"iterator longer than {_ITERATOR_CAP} items")
            items.append(_encode(item, d))
        return ["i", *items]
    raise WireError(f"a {t.__name__} object is not plain data")


_AS_BASE: tuple[tuple[type, Any], ...] = (
    (int, int.__int__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, bytes),
    (complex, lambda v: complex(v.real, v.imag)),
    (dict, lambda v: dict(dict.items(v))),
    *((c, lambda v, c=c: c(c.__iter__(v))) for c in (list, tuple, set, frozenset)),
)
class Opaque:
    """Stands for a program's object that only its truth value may be asked about (a regex match)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<{self.kind} from the program>"


_CONTAINERS = {"l": list, "t": tuple, "s": set, "f": frozenset}


def decode(data: Any) -> Any:
    """The value a JSON-ready form stands for; raises WireError for anything but plain data."""
    return _decode(data, 0)


def _decode(data: Any, depth: int) -> Any:
    t = type(data)
    if data is None or t is bool or t is int or t is float or t is str:
        return data
    if depth > MAX_DEPTH:
        raise WireError(f"nested deeper than {MAX_DEPTH}")
    if t is not list or not data or type(data[0]) is not str:
        raise WireError(f"not plain data: a JSON {t.__name__} where a tagged value belongs")
    tag, d = data[0], depth + 1
    try:
        if tag in _CONTAINERS:
            return _CONTAINERS[tag](_decode(x, d) for x in data[1:])
        if tag == "d":
            if len(data) % 2 != 1:
                raise WireError("dict with a key and no value")
            return {_decode(data[i], d): _decode(data[i + 1], d) for i in range(1, len(data), 2)}
        if tag == "m" and len(data) == 1:
            return Opaque("re.Match")
        if tag == "i":
            return iter([_decode(x, d) for x in data[1:]])
        if tag == "n" and len(data) == 2 and type(data[1]) is str:
            return int(data[1], 16)
        if tag in ("b", "y") and len(data) == 2 and type(data[1]) is str:
            raw = bytes.fromhex(data[1])
            return raw if tag == "b" else bytearray(raw)
        if tag == "c" and len(data) == 3 and all(type(x) in (int, float) for x in data[1:]):
            return complex(data[1], data[2])
        if tag == "r" and len(data) == 4 and all(type(x) is int for x in data[1:]):
            return range(data[1], data[2], data[3])
    except TypeError as exc:  # an unhashable set member or dict key
        raise WireError(f"not plain data: {exc}") from None
    raise WireError(f"not plain data: unknown tag {tag[:20]!r}")


class _ScanContext:
    """What the C JSON scanner reads from its owner (json.JSONDecoder's attributes), strict and hook-free."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}.__getitem__
    memo: dict[str, Any] = {}


def _codec() -> tuple[Any, Any]:
    """JSON's C scanner and encoder without `import json` (whose `re` import costs every sandboxed run ~10 ms)."""
    try:
        import _json

        scan = _json.make_scanner(_ScanContext())  # type: ignore[arg-type]
        enc = _json.make_encoder(
            None, None, _json.encode_basestring_ascii, None, ":", ",", False, False, True  # type: ignore[arg-type]
        )
    except (ImportError, AttributeError, TypeError):  # another Python: the json module does the same job
        import json

        decoder = json.JSONDecoder()
        return (lambda s, i: decoder.raw_decode(s, i)), (lambda v, _: [json.dumps(v, separators=(",", ":"))])
    return scan, enc


_scan, _enc = _codec()


def dumps(value: Any) -> bytes:
    """A message (already JSON-ready: control dicts may hold encoded values) as frame payload bytes."""
    try:
        return "".join(_enc(value, 0)).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        raise WireError(f"cannot serialise: {type(exc).__name__}: {exc}") from None


def loads(payload: bytes) -> Any:
    """The JSON in a frame; anything malformed (or trailing) is a WireError."""
    try:
        text = payload.decode("ascii")
        value, end = _scan(text, 0)
    except Exception as exc:  # noqa: BLE001 - the C scanner reports bad input in several ways
        raise WireError(f"malformed frame: {type(exc).__name__}") from None
    if end != len(text):
        raise WireError("malformed frame: trailing data")
    return value


def write_frame(fd: int, payload: bytes) -> None:
    if len(payload) > MAX_FRAME:
        raise WireError(f"message of {len(payload)} bytes is over the {MAX_FRAME}-byte cap")
    view = memoryview(len(payload).to_bytes(4, "big") + payload)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_frame(fd: int, cap: int = MAX_FRAME) -> bytes | None:
    """The next frame's payload; None at end of stream (the writer is gone). Over `cap`: WireError."""
    head = _read_exact(fd, 4)
    if head is None:
        return None
    size = int.from_bytes(head, "big")
    if size > cap:
        raise WireError(f"message of {size} bytes is over the {cap}-byte cap")
    body = _read_exact(fd, size)
    if body is None:
        raise WireError("stream ended inside a message")
    return body


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    got = 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            if got == 0:
                return None
            raise WireError("stream ended inside a message")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)
