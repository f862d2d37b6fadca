"""The local fast path: a client of a server on this host finds its unix
socket by itself and streams through shared memory (and the shared memory
tier), fields still bytes of their own; packed messages; the release
ring; torch batches handed from DataLoader workers as handles."""

from __future__ import annotations

import os
import random
import socket
import struct
from typing import Any

import pytest
from conftest import Data
from servers import Stokerd
from test_shm import poll, unix_stokerd  # noqa: F401 (a fixture)
from test_shm_tier import tier_stokerd, tier_url  # noqa: F401 (fixtures)
from torch.utils.data import DataLoader

import stoker
from stoker import _wire
from stoker._local import well_known
from stoker._stream import SampleBatch
from stoker.torch import StokerDataset


def read(c: stoker.Client, url: str, **kw: Any) -> list[tuple[str, int, dict[str, Any]]]:
    return [(s.key, s.position, dict(s.fields)) for b in c.stream(url, batch_size=7, seed=5, **kw) for s in b.samples]


def test_tcp_client_finds_the_socket_and_takes_shared_memory(server: str, data: Data) -> None:
    with stoker.Client(server) as c, stoker.Client(server, local=False) as tcp:
        lp = c.local_path()
        # The server serves its default socket, found with no call over TCP.
        assert lp == stoker.client.LocalPath(well_known(server), "the server's default socket for its port"), lp
        assert tcp.local_path().socket == "" and tcp.local_path().reason == "local=False"
        before = tcp.stats()
        fast = read(c, data.url)
        mid = tcp.stats()
        slow = read(tcp, data.url)
        after = tcp.stats()
        poll(lambda: tcp.stats().shm_leases == 0, "every lease to be released")
    assert fast == slow, "the fast path's samples differ from TCP's"
    assert all(isinstance(v, bytes) for _, _, f in fast for v in f.values()), "fields are not bytes of their own"
    def local_bytes(st: stoker.Stats) -> int:  # copied to the region, left in the tier, or handed out as extents
        return st.shm_bytes_served + st.shm_tier_bytes + st.shm_extent_bytes

    assert local_bytes(mid) > local_bytes(before), "the default stream did not take shared memory"
    assert local_bytes(after) == local_bytes(mid), "local=False went through shared memory"


def test_a_socket_elsewhere_is_named_by_the_server(unix_stokerd: Stokerd, data: Data) -> None:
    with stoker.Client(unix_stokerd.address) as c:
        lp = c.local_path()
        assert lp.socket == str(unix_stokerd.root / "s.sock") and "named it" in lp.reason, lp
        assert len(read(c, data.url)) == len(data.keys)


def test_a_stale_default_socket_does_not_hide_the_named_one(unix_stokerd: Stokerd, data: Data) -> None:
    """A socket file left at the default path for the server's port (a
    server that was killed there before) is skipped: the client asks the
    server for its socket instead of falling back to TCP."""
    stale = well_known(unix_stokerd.address)
    os.makedirs(os.path.dirname(stale), exist_ok=True)
    if os.path.exists(stale):
        os.unlink(stale)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()  # the file stays, with nobody listening: what a killed server leaves
    try:
        with stoker.Client(unix_stokerd.address) as c:
            lp = c.local_path()
            assert lp.socket == str(unix_stokerd.root / "s.sock") and "named it" in lp.reason, lp
            assert len(read(c, data.url)) == len(data.keys)
    finally:
        os.unlink(stale)


def test_fields_outlive_the_stream(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        kept = [b for b in c.stream(data.url, batch_size=5, seed=1)]  # every batch kept past the next
    with stoker.Client(server, local=False) as tcp:
        want = [b for b in tcp.stream(data.url, batch_size=5, seed=1)]
    assert [[(s.key, s.fields) for s in b.samples] for b in kept] == \
        [[(s.key, s.fields) for s in b.samples] for b in want]


def test_stoker_socket_variable(server: str, data: Data, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    with stoker.Client(server) as c:
        sock = c.local_path().socket
    monkeypatch.setenv("STOKER_SOCKET", str(tmp_path / "none.sock"))
    with stoker.Client(server) as c:
        lp = c.local_path()
        assert lp.socket == "" and "$STOKER_SOCKET" in lp.reason and "none.sock" in lp.reason
        assert len(read(c, data.url)) == len(data.keys)  # TCP, still
    monkeypatch.setenv("STOKER_SOCKET", f"unix://{sock}")
    with stoker.Client(server) as c:
        assert c.local_path() == stoker.client.LocalPath(sock, "$STOKER_SOCKET")
    with pytest.raises(stoker.InvalidArgument, match="no local path"):
        monkeypatch.setenv("STOKER_SOCKET", str(tmp_path / "none.sock"))
        stoker.Client(server, local=True).local_path()


def test_tier_and_disk_fields_through_the_ring(tier_stokerd: Stokerd, tier_url: str) -> None:
    with stoker.Client(tier_stokerd.address) as c, stoker.Client(tier_stokerd.address, local=False) as tcp:
        base = tcp.stats()
        for epoch in (0, 1):  # the data is larger than the tier: some shards are read from the disk tier
            got = read(c, tier_url, epoch=epoch)
            assert got == read(tcp, tier_url, epoch=epoch)
        st = tcp.stats()
        poll(lambda: tcp.stats().shm_leases == 0, "the ring's releases to be read")
    assert st.shm_tier_bytes > base.shm_tier_bytes, "no field came from the tier"
    assert st.shm_extent_bytes > base.shm_extent_bytes, "no field was read from the disk tier's files"


def test_views_read_the_disk_tier_from_its_files(tier_stokerd: Stokerd, tier_url: str) -> None:
    """With the torch dataset's views (shm="views"), fields of the disk tier's shards are views
    of this process's mappings of its files (the server neither reads nor
    copies them into the region), the others views of the region or the
    tier; every value equals TCP's (test_disk_views has more)."""
    with stoker.Client(tier_stokerd.address) as c, stoker.Client(tier_stokerd.address, local=False) as tcp:
        base = tcp.stats()
        kinds: set[type] = set()
        for epoch in (0, 1):  # the data is larger than the tier: some shards are read from the disk tier
            got = read(c, tier_url, epoch=epoch, shm="views")
            assert [(k, p, {n: bytes(v) for n, v in f.items()}) for k, p, f in got] == read(tcp, tier_url, epoch=epoch)
            kinds.update(type(v.obj) for _, _, f in got for v in f.values())
            del got
        st = tcp.stats()
    assert st.shm_extent_bytes > base.shm_extent_bytes, "no field was read from the disk tier's files"
    # Views of the disk tier's files hold nothing but their mapping; the others hold their lease.
    assert {k.__name__ for k in kinds} == {"mmap", "HeldBuffer"}, kinds


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_handoff_from_workers(tier_stokerd: Stokerd, tier_url: str, workers: int) -> None:
    ds = StokerDataset(tier_url, tier_stokerd.address, batch_size=8, seed=2, batched=True)
    batches = list(DataLoader(ds, batch_size=None, num_workers=workers))
    assert all(type(b) is SampleBatch for b in batches), "the DataLoader did not pass the batches through"
    with stoker.Client(tier_stokerd.address, local=False) as tcp:
        want = {s.key: s.fields for b in tcp.stream(tier_url, batch_size=8, seed=2) for s in b.samples}
        got = [(s["__key__"], s) for b in batches for s in b]
        assert len(got) == len(want) == len({k for k, _ in got})
        for key, s in got:
            assert {k: v for k, v in s.items() if not k.startswith("__")} == want[key], key
            assert s["__url__"].startswith(tier_url)
        # The main process gives back the workers' leases (through the
        # rings) once the views that hold them go.
        del batches, got, s
        poll(lambda: tcp.stats().shm_leases == 0 and tcp.stats().shm_regions == 0, "the handed-off leases")


def test_per_sample_dataset_over_the_fast_path(tier_stokerd: Stokerd, tier_url: str) -> None:
    ds = StokerDataset(tier_url, tier_stokerd.address, batch_size=8, seed=3)
    fast = [(s["__key__"], s["bin"] if "bin" in s else s) for s in ds]
    ds_tcp = StokerDataset(tier_url, tier_stokerd.address, batch_size=8, seed=3, local=False)
    assert fast == [(s["__key__"], s["bin"] if "bin" in s else s) for s in ds_tcp]


# -- the packed table, a parser of bytes from the wire ---------------------------


def packed(samples: list[tuple[str, int, int, list[tuple[str, int, int, int]]]]) -> bytes:
    """A sample_table as server/pack.go writes it: samples of (key,
    position, shard, fields of (name, kind, offset, length))."""
    names: list[str] = []
    for _, _, _, fs in samples:
        names += [n for n, *_ in fs if n not in names]
    keys = b"".join(k.encode() for k, *_ in samples)
    nb = b"".join(struct.pack("<I", len(n)) + n.encode() for n in names)
    m = sum(len(fs) for *_, fs in samples)
    out = struct.pack("<8I", 0x314B5453, len(samples), m, len(names), len(nb), len(keys), 0, 0)
    first = koff = 0
    rows, fields = b"", b""
    for key, pos, shard, fs in samples:
        rows += struct.pack("<QIIII", pos, shard, first, koff, len(key.encode()))
        first += len(fs)
        koff += len(key.encode())
        for name, kind, off, n in fs:
            fields += struct.pack("<IIQQII", names.index(name), kind, off, n, 0, 0)
    return out + rows + fields + nb + keys


def test_packed_table_reads_back() -> None:
    t = _wire.PackedSamples(memoryview(packed([("a", 3, 1, [("jpg", 0, 0, 4), ("cls", 0, 4, 1)]),
                                               ("b", 4, 2, [("jpg", 2, 100, 5)]), ("c", 5, 2, [])])))
    assert (t.n, t.keys, t.positions, t.shards) == (3, ["a", "b", "c"], [3, 4, 5], [1, 2, 2])
    assert t.firsts == [0, 2, 3, 3] and t.names == ["jpg", "cls", "jpg"] and t.kinds == [0, 0, 2]
    t.check({_wire.DATA: 5, _wire.TIER: 105, _wire.REGION: None})
    with pytest.raises(_wire.WireError, match="memory tier"):
        t.check({_wire.DATA: 5, _wire.TIER: 104})
    with pytest.raises(_wire.WireError, match="does not have"):
        t.check({_wire.DATA: 5, _wire.TIER: None})


def test_packed_table_offsets_cannot_wrap() -> None:
    t = _wire.PackedSamples(memoryview(packed([("a", 0, 0, [("x", 2, 2**64 - 1, 2)])])))
    with pytest.raises(_wire.WireError):
        t.check({_wire.TIER: 1 << 30})


def test_packed_table_reads_the_same_in_one_unpack_or_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys in ASCII (decoded at once) or not, fields of no bytes (their
    offsets unchecked), kinds mixed, positions past 2^32: the records read
    as words cast from the table (little-endian hosts; here at an odd
    address too), the cached Struct of a whole table and the row-by-row
    reading of a large one give the same lists."""
    spec = [(f"k{i}" if i % 3 else f"ключ{i}", i + (2**40 if i % 2 else 0), i % 4,
             [("jpg", 2, 64 * i, 64), ("cls", 0, i, 1), ("none", 1, 2**63 + i, 0)][: 1 + i % 3]) for i in range(40)]
    table = packed(spec)

    def lists(t: _wire.PackedSamples) -> tuple[Any, ...]:
        return (t.n, t.keys, t.positions, t.shards, t.firsts, t.names, t.kinds, t.offsets, t.lengths, t.stops, t.ends,
                t.present)

    one = lists(_wire.PackedSamples(memoryview(table)))
    assert one[1] == [k for k, *_ in spec] and one[10] == {_wire.TIER: 64 * 39 + 64, _wire.DATA: 38 + 1}
    assert one[11] == {_wire.DATA, _wire.REGION, _wire.TIER}
    ascii_only = packed([(k.encode("ascii", "replace").decode(), *rest) for k, *rest in spec])
    assert _wire.PackedSamples(memoryview(ascii_only)).keys == [k.encode("ascii", "replace").decode() for k, *_ in spec]
    assert one[2] == [p for _, p, *_ in spec]
    assert lists(_wire.PackedSamples(memoryview(b"\0" + table)[1:])) == one  # unaligned
    monkeypatch.setattr(_wire, "_LITTLE", False)  # as on a big-endian host: by struct
    assert lists(_wire.PackedSamples(memoryview(table))) == one
    monkeypatch.setattr(_wire, "_STRUCT_MAX", 0)
    assert lists(_wire.PackedSamples(memoryview(table))) == one
    t = _wire.PackedSamples(memoryview(table))
    t.check({_wire.TIER: 64 * 40, _wire.DATA: 40, _wire.REGION: None})  # REGION fields have no bytes
    with pytest.raises(_wire.WireError, match="memory tier"):
        t.check({_wire.TIER: 64 * 40 - 1, _wire.DATA: 40, _wire.REGION: None})


@pytest.mark.parametrize("copy", [False, True])
def test_packed_batch_dicts_same_fields_or_not(copy: bool) -> None:
    """A batch's dicts, from a table whose samples all have the same
    fields (one dict display each) and from one whose do not, from the
    first sample or a later one, with and without a url."""
    from stoker._stream import Part, Sources, dicts_of

    urls = ("s3://b/0.tar", "s3://b/1.tar")
    data = bytes(range(256))

    def batch(spec: list[tuple[str, int, int, list[tuple[str, int, int, int]]]]) -> Any:
        from stoker._stream import PackedBatch

        t = _wire.PackedSamples(memoryview(packed(spec)))
        t.check({_wire.DATA: len(data), _wire.REGION: None, _wire.TIER: None})
        return PackedBatch([Part(t, b"xx" + data, 2, len(data), None)], Sources(), copy)

    same = [(f"s{i}", i, i % 2, [("jpg", 0, 10 * i, 5), ("cls", 0, 10 * i + 5, 1)]) for i in range(6)]
    mixed = [*same[:2], ("odd", 9, 7, [("cls", 0, 3, 2)]), ("none", 10, 0, []), *same[4:]]
    bare = [("e0", 0, 0, []), ("e1", 1, 1, [])]  # samples of no fields
    for spec in (same, mixed, bare):
        want = []
        for key, _, shard, fs in spec:
            d: dict[str, Any] = {"__key__": key, **({"__url__": urls[shard]} if shard < len(urls) else {})}
            d.update((name, data[o : o + n]) for name, _, o, n in fs)
            want.append(d)
        for first in (0, 1, 5):
            if first >= len(spec):
                continue
            got = dicts_of(batch(spec), urls, first)
            assert got == want[first:] and [list(d) for d in got] == [list(d) for d in want[first:]]
            assert all(type(v) is (bytes if copy else memoryview) for d in got for k, v in d.items()
                       if not k.startswith("__"))


def test_corrupt_tables_raise_wire_errors_only() -> None:
    good = packed([("k%d" % i, i, i % 3, [("img", 2, 64 * i, 64), ("cls", 0, i, 1)]) for i in range(20)])
    rng = random.Random(12)
    for _ in range(3000):
        b = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        if rng.random() < 0.2:
            b = b[: rng.randrange(len(b))]
        try:
            t = _wire.PackedSamples(memoryview(bytes(b)))
            t.check({_wire.TIER: 4096, _wire.DATA: 64, _wire.REGION: None})
        except _wire.WireError:
            continue
        # What parses names only fields inside their buffers and keys inside the table.
        assert t.firsts[-1] == len(t.kinds) and len(t.keys) == t.n


def test_corrupt_messages_raise_wire_errors_only() -> None:
    from stoker.v1 import loader_pb2

    msg = loader_pb2.StreamBatchesResponse(epoch=1, step=2, final=True, sample_table=packed([("a", 0, 0, [])]),
                                           cursor=loader_pb2.Cursor(epoch=1, position=9, plan_version=2),
                                           shm_lease=loader_pb2.ShmLease(id=4, offset=0, length=10))
    raw = msg.SerializeToString()
    m = _wire.parse(raw)
    assert (m.epoch, m.step, m.final, m.cursor, m.lease) == (1, 2, True, (1, 9, 2), (4, 0, 10))
    assert bytes(m.table) == msg.sample_table
    rng = random.Random(3)
    for _ in range(3000):
        b = bytearray(raw)
        b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            _wire.parse(bytes(b[: rng.randrange(1, len(b) + 1)]))
        except _wire.WireError:
            pass
