"""The stream's messages as bytes: a reader of StreamBatchesResponse that
keeps one buffer per message.

The stream is read with no protobuf deserializer: each message arrives as
the bytes gRPC received, and :func:`parse` reads its top-level fields by
hand. A packed message (``StreamBatchesRequest.packed``) carries its
samples as ``sample_table`` and ``sample_data``; both stay memoryviews of
the message's bytes, so no field is copied out of protobuf. Any other
message (samples as Sample messages, a columnar batch) is parsed by the
generated class as before.

:class:`PackedSamples` reads a table with struct (see server/pack.go for
the layout) and checks every index, offset and length against the table
or the buffer it points into before any view is made: the bytes come from
the wire.
"""

from __future__ import annotations

import struct
import sys
from itertools import compress, repeat
from operator import add as _add
from operator import eq
from typing import Any

from google.protobuf.message import DecodeError

from .v1 import loader_pb2

__all__ = ["Message", "PackedSamples", "parse", "DATA", "REGION", "TIER", "EXTENT"]

DATA, REGION, TIER, EXTENT = 0, 1, 2, 3  # where a field's bytes are (pack.go's kinds)
_MAGIC = 0x314B5453
_HEADER_STRUCT = struct.Struct("<8I")
_SAMPLE_STRUCT = struct.Struct("<QIIII")  # position, shard, first field, key offset, key length
_FIELD_STRUCT = struct.Struct("<IIQQII")  # name, kind, offset, length, path, zero

# Top-level fields of StreamBatchesResponse that parse() reads itself.
_EPOCH, _STEP, _RANK, _SAMPLES, _FINAL, _CURSOR = 1, 2, 3, 4, 5, 6
_ARROW, _ROW_SHARDS = 7, 8
_REGION, _LEASE, _TIER, _TENSORS, _TABLE, _DATA = 10, 11, 12, 13, 14, 15


class WireError(ValueError):
    """A message that does not parse."""


class Message:
    """One StreamBatchesResponse. ``pb`` is the generated message when it
    carried samples the old way or columnar rows (then read it, not the
    other attributes); else the fields are read here: ``table`` is a
    memoryview into the message's bytes and ``data`` the span of
    sample_data in them."""

    __slots__ = ("epoch", "step", "rank", "final", "cursor", "lease", "region", "tier", "table", "data", "pb")

    def __init__(self) -> None:
        self.epoch = self.step = self.rank = 0
        self.final = False
        self.cursor: tuple[int, int, int] | None = None  # epoch, position, plan version
        self.lease: tuple[int, int, int] | None = None  # id, offset, length
        self.region: loader_pb2.ShmRegion | None = None
        self.tier: loader_pb2.ShmRegion | None = None
        self.table: memoryview | None = None
        self.data: tuple[int, int] = (0, 0)  # sample_data's span in the message's bytes
        self.pb: loader_pb2.StreamBatchesResponse | None = None


def _varint(b: bytes | memoryview, i: int) -> tuple[int, int]:
    x = b[i]
    if x < 0x80:
        return x, i + 1
    shift, v = 0, 0
    while True:
        if i >= len(b) or shift > 63:
            raise WireError("truncated or overlong varint")
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        if x < 0x80:
            return v, i
        shift += 7


def _fields(b: bytes | memoryview, lo: int, hi: int) -> Any:
    """(number, value) of each field in b[lo:hi]: an int for varints, a
    (start, end) pair for length-delimited ones. (One-byte varints, the
    usual keys and lengths, are read inline.)"""
    i = lo
    while i < hi:
        key = b[i]
        if key < 0x80:
            i += 1
        else:
            key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v = b[i]
            if v < 0x80:
                i += 1
            else:
                v, i = _varint(b, i)
            yield num, v
        elif wt == 2:
            n = b[i]
            if n < 0x80:
                i += 1
            else:
                n, i = _varint(b, i)
            if i + n > hi:
                raise WireError(f"field {num}: {n} bytes past the message's end")
            yield num, (i, i + n)
            i += n
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        else:
            raise WireError(f"field {num}: wire type {wt}")
    if i != hi:
        raise WireError("a field runs past the message's end")


def _small(b: bytes, span: tuple[int, int]) -> tuple[int, int, int]:
    """Fields 1 to 3 of a small message of varints (Cursor, ShmLease), 0 where absent."""
    out = [0, 0, 0, 0]
    for n, v in _fields(b, span[0], span[1]):
        if 1 <= n <= 3 and isinstance(v, int):
            out[n] = v
    return out[1], out[2], out[3]


_VARINTS = {_EPOCH, _STEP, _RANK, _FINAL}
_SPANS = {_CURSOR, _LEASE, _REGION, _TIER, _TABLE, _DATA}


def parse(raw: bytes) -> Message:
    """A message from the bytes gRPC received. Bytes that do not parse
    raise WireError naming why."""
    m = Message()
    try:
        for num, v in _fields(raw, 0, len(raw)):
            if num in (_SAMPLES, _ARROW, _ROW_SHARDS, _TENSORS):
                m.pb = loader_pb2.StreamBatchesResponse.FromString(raw)
                return m
            if (num in _VARINTS and not isinstance(v, int)) or (num in _SPANS and not isinstance(v, tuple)):
                raise WireError(f"field {num} has the wrong wire type")
            if num == _EPOCH:
                m.epoch = v
            elif num == _STEP:
                m.step = v
            elif num == _RANK:
                m.rank = v
            elif num == _FINAL:
                m.final = bool(v)
            elif num == _CURSOR:
                m.cursor = _small(raw, v)
            elif num == _LEASE:
                m.lease = _small(raw, v)
            elif num == _REGION:
                m.region = loader_pb2.ShmRegion.FromString(raw[v[0] : v[1]])
            elif num == _TIER:
                m.tier = loader_pb2.ShmRegion.FromString(raw[v[0] : v[1]])
            elif num == _TABLE:
                m.table = memoryview(raw)[v[0] : v[1]]
            elif num == _DATA:
                m.data = v
    except (IndexError, WireError, DecodeError) as err:
        raise WireError(f"stoker: a StreamBatches message of {len(raw)} bytes does not parse: {err}") from None
    return m


_U32 = struct.Struct("<I").unpack_from


def _strings(buf: memoryview, at: int, count: int, size: int, what: str) -> tuple[list[str], int]:
    """count u32-length-prefixed strings from buf[at:at+size]."""
    raw = bytes(buf[at : at + size])  # one copy of them all, sliced per string
    out, i = [], 0
    for _ in range(count):
        if i + 4 > size:
            raise WireError(f"{what}: truncated")
        n = _U32(raw, i)[0]
        i += 4
        if i + n > size:
            raise WireError(f"{what}: a string runs past the table")
        out.append(raw[i : i + n].decode("utf-8", "surrogateescape"))
        i += n
    if i != size:
        raise WireError(f"{what}: {size - i} bytes left over")
    return out, at + size


_structs: dict[tuple[str, int], struct.Struct] = {}
_STRUCT_MAX = 1024  # records unpacked by one cached Struct; more go row by row


def _columns(fmt: str, count: int, buf: memoryview, at: int) -> list[tuple[int, ...]]:
    """count little-endian records of fmt at buf[at:], as one tuple per
    column (one unpack of them all, then a slice per column)."""
    width = len(fmt.replace("4x", ""))
    if count == 0:
        return [()] * width
    if count > _STRUCT_MAX:
        rec = struct.Struct("<" + fmt)
        return [tuple(c) for c in zip(*rec.iter_unpack(buf[at : at + rec.size * count]), strict=True)]
    st = _structs.get((fmt, count))
    if st is None:
        if len(_structs) >= 64:
            _structs.clear()
        st = _structs[(fmt, count)] = struct.Struct("<" + fmt * count)
    flat = st.unpack_from(buf, at)
    return [flat[i::width] for i in range(width)]


_LITTLE = sys.byteorder == "little"


def _sample_columns(n: int, buf: memoryview, at: int) -> list[list[int]]:
    """The columns of n _SAMPLE_STRUCT records at buf[at:] as lists: on a
    little-endian host strided reads of the records cast to u64 and u32
    words (position is word 0 of 3 u64s; shard, first field, key offset
    and key length words 2 to 5 of 6 u32s), else by struct."""
    if not _LITTLE or n == 0:
        return [list(c) for c in _columns("QIIII", n, buf, at)]
    recs = buf[at : at + _SAMPLE_STRUCT.size * n]
    w, q = recs.cast("I"), recs.cast("Q")
    return [q[0::3].tolist(), w[2::6].tolist(), w[3::6].tolist(), w[4::6].tolist(), w[5::6].tolist()]


def _field_columns(m: int, buf: memoryview, at: int) -> list[list[int]]:
    """The columns of m _FIELD_STRUCT records at buf[at:] as lists, as
    _sample_columns reads them: name and kind are u32 words 0 and 1 of 8,
    offset and length u64 words 1 and 2 of 4, path u32 word 6 (7: the zero)."""
    if not _LITTLE or m == 0:
        return [list(c) for c in _columns("IIQQI4x", m, buf, at)]
    recs = buf[at : at + _FIELD_STRUCT.size * m]
    w, q = recs.cast("I"), recs.cast("Q")
    return [w[0::8].tolist(), w[1::8].tolist(), q[1::4].tolist(), q[2::4].tolist(), w[6::8].tolist()]


def _keys(keys: bytes, offs: list[int], ends: list[int]) -> list[str]:
    """The keys at keys[offs[i]:ends[i]] (checked to lie inside it):
    decoded once and sliced when they are ASCII, else one by one."""
    try:
        text = keys.decode("ascii")
    except UnicodeDecodeError:
        return [keys[a:b].decode("utf-8", "surrogateescape") for a, b in zip(offs, ends, strict=True)]
    return [text[a:b] for a, b in zip(offs, ends, strict=True)]


class PackedSamples:
    """A packed message's samples: per sample its position, shard, key and
    the range of its fields; per field its name, kind, offset, length and
    (extents) path, as Python lists for cheap indexing. Every index is
    checked against the table here, every offset and length against its
    buffer by :meth:`check` (Python integers: no sum wraps)."""

    __slots__ = (
        "positions",
        "shards",
        "firsts",
        "keys",
        "names",
        "kinds",
        "offsets",
        "lengths",
        "paths",
        "field_paths",
        "n",
        "ends",
        "stops",
        "present",
        "raw_table",
    )

    def __init__(self, table: memoryview) -> None:
        if len(table) < 32:
            raise WireError(f"sample_table of {len(table)} bytes: shorter than its header")
        magic, n, m, n_names, names_b, keys_b, n_paths, paths_b = _HEADER_STRUCT.unpack_from(table)
        if magic != _MAGIC:
            raise WireError(f"sample_table: magic {magic:#x}, want {_MAGIC:#x}")
        need = 32 + _SAMPLE_STRUCT.size * n + _FIELD_STRUCT.size * m + names_b + keys_b + paths_b
        if need != len(table):
            raise WireError(f"sample_table: its header says {need} bytes, it has {len(table)}")
        at = 32 + _SAMPLE_STRUCT.size * n
        positions, shards, firsts, koffs, klens = _sample_columns(n, table, 32)
        name_ids, kinds, offsets, lengths, paths = _field_columns(m, table, at)
        at += _FIELD_STRUCT.size * m
        names, at = _strings(table, at, n_names, names_b, "sample_table names")
        keys = bytes(table[at : at + keys_b])
        at += keys_b
        self.paths, _ = _strings(table, at, n_paths, paths_b, "sample_table paths")
        self.n, self.raw_table = n, table
        # Each check below is one pass in C (map, max, sorted), not a
        # Python loop per sample or field.
        self.firsts: list[int] = [*firsts, m]
        if n and (firsts[0] != 0 or firsts[-1] > m):
            raise WireError("sample_table: field ranges out of bounds")
        if firsts != sorted(firsts):
            raise WireError("sample_table: field ranges out of order")
        kends = list(map(_add, koffs, klens))
        if n and max(kends) > keys_b:
            raise WireError("sample_table: a key runs past the keys")
        if m and (max(name_ids) >= len(names) or max(kinds) > EXTENT):
            raise WireError("sample_table: a field names a name or kind that is not in the table")
        stops = list(map(_add, offsets, lengths))
        kinds_in = set(kinds)
        self.present = frozenset(kinds_in)  # the kinds of its fields
        if EXTENT in kinds_in:
            # The server writes path 0 for the other kinds: where every
            # index is in the table, so is every extent's.
            bound = len(self.paths)
            if max(paths) >= bound and max(compress(paths, map(eq, kinds, repeat(EXTENT)))) >= bound:
                raise WireError("sample_table: an extent names a path that is not in the table")
            kinds_in.discard(EXTENT)
        ends: dict[int, int] = {}
        for k in kinds_in:
            # the end of the last field of kind k with bytes (a field of none is not checked)
            sel: Any = (
                stops if len(kinds_in) == 1 and EXTENT not in kinds else compress(stops, map(eq, kinds, repeat(k)))
            )
            if 0 in lengths:
                sel = compress(sel, (ln for ln, kk in zip(lengths, kinds, strict=True) if kk == k))
            e = max(sel, default=None)
            if e is not None:
                ends[k] = e
        self.ends = ends  # per kind, the end of its last field with bytes
        self.stops = stops  # per field, offset + length
        self.positions: list[int] = positions
        self.shards: list[int] = shards
        self.keys = _keys(keys, koffs, kends)
        self.kinds: list[int] = kinds
        self.offsets: list[int] = offsets
        self.lengths: list[int] = lengths
        self.field_paths: list[int] = paths
        self.names = list(map(names.__getitem__, name_ids))  # per field

    def check(self, sizes: dict[int, int | None]) -> None:
        """Check that every field of a kind lies inside its buffer
        (sizes[kind]: its length; None: not there, and a field of that
        kind with bytes is an error)."""
        for kind, end in self.ends.items():
            size = sizes.get(kind)
            if size is None:
                raise WireError(f"sample_table: fields in {_KIND_NAMES[kind]}, which this stream does not have")
            if end > size:
                raise WireError(f"sample_table: a field runs past {_KIND_NAMES[kind]} ({size} bytes)")


_KIND_NAMES = {DATA: "the message's sample_data", REGION: "the shm region", TIER: "the memory tier"}
