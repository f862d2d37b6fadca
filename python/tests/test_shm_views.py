"""Views that hold their leases (stoker.shm.LeaseHold): kept past later
batches, the stream's end and the Client's close they stay right; kept
in bulk they make the server send bytes in its messages instead of
stalling; dropped, their leases go back. Every byte checked against a
TCP read of the same epoch."""

from __future__ import annotations

import queue
import re
import threading
import urllib.request
from typing import Any

import pytest
import torch
from check import assert_exactly_once
from conftest import Data
from servers import S3Server, Stokerd
from test_shm import poll, unix_address, unix_stokerd  # noqa: F401 (a fixture)
from test_shm_tier import address, tier_range, tier_stokerd, tier_url  # noqa: F401 (fixtures)
from torch.utils.data import DataLoader

import stoker
from stoker.torch import StokerDataset

# A message part (8 MiB), the release ring and 4 MiB: the "many" epoch
# (40 samples of 1 MiB) goes round it several times.
REGION = (8 << 20) + (64 << 10) + (4 << 20)
ARGS: dict[str, Any] = dict(batch_size=2, seed=1, epoch=0)

Fields = dict[str, bytes]


def tcp_epoch(srv: Stokerd, url: str, **kw: Any) -> dict[str, Fields]:
    with stoker.Client(srv.address, local=False) as tcp:
        return {s.key: dict(s.fields) for b in tcp.stream(url, **{**ARGS, **kw}) for s in b.samples}


def raw(fields: dict[str, Any]) -> Fields:
    return {k: bytes(v) for k, v in fields.items() if not k.startswith("__")}


def metric(srv: Stokerd, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.http_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^stoker_{name} (\S+)$", text, re.M)
    assert m, f"no metric {name}"
    return float(m.group(1))


def freed(c: stoker.Client) -> bool:
    st = c.stats()
    return st.shm_leases == 0 and st.shm_regions == 0


def test_view_kept_past_many_batches(unix_stokerd: Stokerd, data: Data) -> None:
    want = tcp_epoch(unix_stokerd, data.many_url)
    with stoker.Client(unix_stokerd.address, local=False) as watch, stoker.Client(unix_address(unix_stokerd)) as c:
        before = watch.stats()
        kept: Any = None
        seen = []
        for b in c.stream(data.many_url, shm=True, shm_region_bytes=REGION, **ARGS):
            for s in b.samples:
                assert all(type(v) is memoryview for v in s.fields.values())
                assert raw(s.fields) == want[s.key], s.key
                seen.append(s.key)
            if kept is None:
                kept = b.samples[0]
            # The server placed every later batch around it.
            assert raw(kept.fields) == want[kept.key], f"the kept view changed after {len(seen)} samples"
        del b, s
        served = watch.stats().shm_bytes_served - before.shm_bytes_served
        assert served > 2 * REGION, f"{served} bytes through a region of {REGION}: it was not reused"
        assert raw(kept.fields) == want[kept.key]
        assert watch.stats().shm_leases >= 1  # the kept sample's
        del kept
        poll(lambda: freed(watch), "the kept view's lease to be freed")
    assert_exactly_once(seen, want)


def test_view_outlives_its_stream_and_client(unix_stokerd: Stokerd, data: Data) -> None:
    want = tcp_epoch(unix_stokerd, data.many_url)
    with stoker.Client(unix_stokerd.address, local=False) as watch:
        c = stoker.Client(unix_address(unix_stokerd))
        stream = c.stream(data.many_url, shm=True, shm_region_bytes=REGION, **ARGS)
        s = next(stream).samples[0]
        name = max(s.fields, key=lambda k: len(s.fields[k]))
        view = s.fields[name]
        tensor = torch.frombuffer(view, dtype=torch.uint8)  # holds the lease too
        stream.close()
        c.close()
        del stream, c, s
        st = watch.stats()
        assert st.shm_leases >= 1 and st.shm_regions == 1, st
        assert bytes(view) == want_field(want, name, bytes(view))
        del view
        assert watch.stats().shm_leases >= 1, "the tensor's lease went with the view"
        assert bytes(tensor.numpy()) == want_field(want, name, bytes(tensor.numpy()))
        del tensor
        poll(lambda: freed(watch), "the last view's lease to be freed")


def want_field(want: dict[str, Fields], name: str, got: bytes) -> bytes:
    """The TCP bytes of the field that got came from (the first sample of
    the stream: any key, matched by content so the test does not depend
    on which sample it was)."""
    matches = [f[name] for f in want.values() if f.get(name) == got]
    assert matches, "the view's bytes are no sample's"
    return matches[0]


def run_with_timeout(fn: Any, seconds: float) -> Any:
    """fn() on a daemon thread; a hang fails the test instead of hanging it."""
    out: queue.Queue[tuple[bool, Any]] = queue.Queue()

    def run() -> None:
        try:
            out.put((True, fn()))
        except BaseException as err:  # noqa: BLE001 (handed to the test)
            out.put((False, err))

    threading.Thread(target=run, daemon=True).start()
    try:
        ok, value = out.get(timeout=seconds)
    except queue.Empty:
        pytest.fail(f"hung for {seconds} s")
    if not ok:
        raise value
    return value


def test_keeping_every_batch_falls_back_to_copies(unix_stokerd: Stokerd, data: Data) -> None:
    want = tcp_epoch(unix_stokerd, data.many_url)
    fallbacks = metric(unix_stokerd, "shm_fallbacks_total")
    with stoker.Client(unix_stokerd.address, local=False) as watch, stoker.Client(unix_address(unix_stokerd)) as c:
        kept = run_with_timeout(lambda: list(c.stream(data.many_url, shm=True, shm_region_bytes=REGION, **ARGS)), 120)
        got = {s.key: raw(s.fields) for b in kept for s in b.samples}
        assert got == want and sum(len(b.samples) for b in kept) == len(want)
        assert metric(unix_stokerd, "shm_fallbacks_total") > fallbacks, "the server never sent bytes in the message"
        assert watch.stats().shm_leased_bytes <= REGION // 2 + (8 << 20)
        del kept
        poll(lambda: freed(watch), "the kept batches' leases to be freed")


def test_dropped_views_give_the_region_back(unix_stokerd: Stokerd, data: Data) -> None:
    fallbacks = metric(unix_stokerd, "shm_fallbacks_total")
    with stoker.Client(unix_stokerd.address, local=False) as watch, stoker.Client(unix_address(unix_stokerd)) as c:
        before = watch.stats()
        leased, n = [], 0
        for b in c.stream(data.many_url, shm=True, shm_region_bytes=REGION, **ARGS):
            n += sum(len(bytes(v)) > 0 for s in b.samples for v in s.fields.values())
            leased.append(watch.stats().shm_leased_bytes)
        del b
        poll(lambda: freed(watch), "every lease to be freed")
        served = watch.stats().shm_bytes_served - before.shm_bytes_served
    assert n > 0 and served > 2 * REGION
    assert max(leased) <= REGION - (64 << 10)
    assert metric(unix_stokerd, "shm_fallbacks_total") == fallbacks, "views dropped, yet bytes went in the messages"


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_batches_are_views_that_outlive_the_loader(tier_stokerd: Stokerd, tier_url: str, workers: int) -> None:
    want = tcp_epoch(tier_stokerd, tier_url, batch_size=4, seed=7)
    ds = StokerDataset(tier_url, tier_stokerd.address, batch_size=4, seed=7, batched=True)
    batches = run_with_timeout(lambda: list(DataLoader(ds, batch_size=None, num_workers=workers)), 120)
    got = [s for b in batches for s in b]
    path = ds._get_client().local_path()
    # Views, but for fields of the disk tier's shards: read from its files, as bytes.
    kinds = {type(v) for s in got for k, v in s.items() if not k.startswith("__")}
    assert memoryview in kinds and kinds <= {memoryview, bytes}, (kinds, path)
    assert_exactly_once([s["__key__"] for s in got], want)
    assert all(raw(s) == want[s["__key__"]] for s in got)
    copies = StokerDataset(tier_url, tier_stokerd.address, batch_size=4, seed=7, copy=True)
    assert all(type(v) is bytes for s in copies for k, v in s.items() if not k.startswith("__"))
    with stoker.Client(tier_stokerd.address, local=False) as watch:
        del batches, got
        poll(lambda: freed(watch), "the batches' leases to be freed")



def test_kept_tier_view_pins_its_shard(tier_stokerd: Stokerd, tier_url: str) -> None:
    """A view into the memory tier kept while later epochs cycle the tier
    (the data is larger) keeps its bytes: its lease pins the shard."""
    want = {e: tcp_epoch(tier_stokerd, tier_url, batch_size=8, epoch=e) for e in (0, 1, 2)}
    with stoker.Client(tier_stokerd.address, local=False) as watch, stoker.Client(unix_address(tier_stokerd)) as c:
        kept: list[tuple[str, str, memoryview]] = []
        for epoch in (0, 1, 2):
            for b in c.stream(tier_url, shm=True, shm_region_bytes=REGION, **{**ARGS, "batch_size": 8, "epoch": epoch}):
                lo, hi = tier_range(c)
                for s in b.samples:
                    assert raw(s.fields) == want[epoch][s.key], s.key
                    if len(kept) < 2:
                        kept += [(s.key, k, v) for k, v in s.fields.items() if len(v) and lo <= address(v) < hi][:1]
            del b, s
            for key, name, view in kept:
                assert bytes(view) == want[0][key][name], f"{key}.{name} changed in epoch {epoch}"
        assert kept, "no field came from the tier"
        del kept, view
        poll(lambda: freed(watch), "the kept tier views' leases to be freed")


def test_keeping_every_tier_batch_completes(tier_stokerd: Stokerd, tier_url: str) -> None:
    """Held tier views pin at most about half the region: past that the
    server copies into the region, then into the messages; the epoch
    completes with every byte right."""
    args = {**ARGS, "batch_size": 8, "epoch": 3}
    want = tcp_epoch(tier_stokerd, tier_url, **args)
    with stoker.Client(tier_stokerd.address, local=False) as watch, stoker.Client(unix_address(tier_stokerd)) as c:
        kept = run_with_timeout(lambda: list(c.stream(tier_url, shm=True, shm_region_bytes=REGION, **args)), 120)
        assert {s.key: raw(s.fields) for b in kept for s in b.samples} == want
        del kept
        poll(lambda: freed(watch), "the kept batches' leases to be freed")


_KEPT: list[Any] = []


def _drop_kept() -> None:
    _KEPT.clear()  # the child's copies of the parent's views go here


def test_forked_child_leaves_the_parents_leases(unix_stokerd: Stokerd, data: Data) -> None:
    """A child forked while the parent holds views (a DataLoader's
    workers) drops its copies of them without giving their leases back:
    the parent's views still hold the bytes."""
    import multiprocessing

    want = tcp_epoch(unix_stokerd, data.many_url)
    with stoker.Client(unix_address(unix_stokerd)) as c:
        stream = c.stream(data.many_url, shm=True, shm_region_bytes=REGION, **ARGS)
        _KEPT.append(next(stream))  # the only reference: the child's clear() drops its copy
        stream.close()
        ring = _KEPT[0].packed.parts[0].hold.ring
        written = int(ring._counters[0])  # the ring is shared memory: a child's write shows here
        p = multiprocessing.get_context("fork").Process(target=_drop_kept)
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert int(ring._counters[0]) == written, "a forked child gave back its parent's leases"
        assert all(raw(s.fields) == want[s.key] for s in _KEPT[0].samples)
        _KEPT.clear()
        assert int(ring._counters[0]) > written, "the parent's last view did not give its lease back"


def test_views_kept_from_many_streams_take_little(stokerd_bin: str, s3_server: S3Server, data: Data,
                                                  tmp_path: Any) -> None:
    """A view kept from each of many streams of one connection: each
    stream's region, detached, counts only its held pages against
    --max-shm-per-conn (three regions' worth here), so the next streams
    are not refused."""
    import shutil
    import tempfile
    from pathlib import Path

    root = Path(tempfile.mkdtemp(prefix="stoker-keep-", dir="/tmp"))  # a short socket path
    srv = Stokerd(bin=stokerd_bin, root=root, env=s3_server.env(),
                  extra=("--unix", str(root / "s.sock"), "--max-shm-per-conn", str(3 * REGION)))
    srv.start()
    try:
        with stoker.Client(srv.address, local=False) as watch, stoker.Client(unix_address(srv)) as c:
            kept = []
            for epoch in range(6):
                for b in c.stream(data.many_url, shm=True, shm_region_bytes=REGION, **{**ARGS, "epoch": epoch}):
                    if len(kept) == epoch:
                        kept.append((b.samples[0].key, raw(b.samples[0].fields), b.samples[0].fields))
                del b
            assert watch.stats().shm_regions == 6
            assert all(raw(fields) == want for _, want, fields in kept)
            del kept
            poll(lambda: freed(watch), "the kept views' leases to be freed")
    finally:
        srv.kill()
        shutil.rmtree(root, ignore_errors=True)


def test_full_ring_queues_and_writes_later() -> None:
    """give_back on a full ring queues what does not fit and writes it
    once the server has read the ring, with no further call."""
    import mmap

    from stoker.shm import ReleaseRing

    m = mmap.mmap(-1, 64 + 4 * 8)  # 4 slots
    ring = ReleaseRing(m, 64 + 4 * 8, "test")
    ring.give_back([1, 2, 3, 4, 5, 6])
    c = ring._counters
    assert int(c[0]) == 4 and ring.pending() == 6  # 4 written, 2 queued
    assert not ring.release([7]), "release() wrote to a full ring"
    c[1] = 4  # the server read them
    poll(lambda: int(c[0]) == 6, "the queued ids to be written")
    assert list(ring._slots) == [5, 6, 3, 4] and ring.pending() == 2


def test_per_sample_views_collate_like_bytes(tier_stokerd: Stokerd, tier_url: str) -> None:
    """Per-sample mode on the local path yields views; the DataLoader's
    default collate makes lists of them, as of bytes."""
    want = tcp_epoch(tier_stokerd, tier_url, batch_size=4, seed=3)
    ds = StokerDataset(tier_url, tier_stokerd.address, batch_size=4, seed=3)
    got: dict[str, Fields] = {}
    views = 0
    for b in DataLoader(ds, batch_size=4):
        names = [k for k in b if not k.startswith("__")]
        assert names and all(type(b[k]) is list and type(b[k][0]) in (memoryview, bytes) for k in names), b.keys()
        views += sum(type(b[k][0]) is memoryview for k in names)
        for i, key in enumerate(b["__key__"]):
            got[key] = {k: bytes(b[k][i]) for k in names}
    assert views, "no field was a view"
    assert got == want
