"""The server's shared memory tier (stokerd --memory-region locked): fields
of shards in it are read-only views into the tier's own pages, mapped once
per process; every byte checked against gRPC, leases and mappings freed."""

from __future__ import annotations

import gc
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import BUCKET, Data
from servers import S3Server, Stokerd
from shards import upload, write_raw_shards
from test_shm import poll, unix_address

import stoker
from stoker import shm as stoker_shm
from stoker.gds import Extent
from stoker.shm import ShmReader, TierMaps, as_numpy, as_tensor
from stoker.v1 import loader_pb2

TIER = "32MiB"  # the memory tier: smaller than the dataset, so some fields are copied
SHARDS, SAMPLES, SIZE = 10, 16, 256 << 10  # 40 MiB of samples, 4 MiB shards

Batches = list[list[tuple[str, dict[str, bytes]]]]


@pytest.fixture(scope="session")
def tier_url(s3_server: S3Server, workdir: Path, data: Data) -> str:
    """A dataset somewhat larger than the tier (data made the bucket)."""
    paths = write_raw_shards(workdir / "shards" / "tier", SHARDS, SAMPLES, SIZE, name="tier")
    upload(s3_server.client(), BUCKET, "tier", paths)
    return f"s3://{BUCKET}/tier/"


def start_tier_stokerd(stokerd_bin: str, s3_server: S3Server) -> Stokerd:
    """A stokerd on a unix socket (a short path: sun_path) whose memory
    tier is a shared file (locked mode shares it without a GPU)."""
    root = Path(tempfile.mkdtemp(prefix="stoker-tier-", dir="/tmp"))
    srv = Stokerd(bin=stokerd_bin, root=root, env=s3_server.env(),
                  extra=("--unix", str(root / "s.sock"), "--memory-region", "locked", "--memory-cache", TIER))
    srv.start()
    return srv


@pytest.fixture(scope="module")
def tier_stokerd(stokerd_bin: str, s3_server: S3Server, tier_url: str) -> Iterator[Stokerd]:
    srv = start_tier_stokerd(stokerd_bin, s3_server)
    with stoker.Client(srv.address) as c:
        path = c.stats().shm_tier_path
    assert path.startswith("/") and Path(path).exists(), f"the tier is not shared: {path!r}\n{srv.output()}"
    yield srv
    stop(srv, [path])


def stop(srv: Stokerd, tiers: list[str]) -> None:
    """Kill a tier stokerd and remove what a killed one leaves: its tier
    files in the shm folder (else the next stokerd's sweep does) and root."""
    srv.kill()
    for path in tiers:
        Path(path).unlink(missing_ok=True)
    shutil.rmtree(srv.root, ignore_errors=True)


def unmapped() -> bool:
    """Wait for the mappings closed so far to be unmapped (a large one is
    unmapped by the shm module's thread, off the reader's path)."""
    return stoker.shm._unmapper.drain(timeout=60)


def mappings(path: str) -> list[tuple[int, int, str]]:
    """(start, end, permissions) of this process's mappings of a file
    (also once it is deleted)."""
    out = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].split(" (deleted)")[0] == path:
            lo, hi = parts[0].split("-")
            out.append((int(lo, 16), int(hi, 16), parts[1]))
    return out


def address(view: memoryview) -> int:
    return int(as_numpy(view).ctypes.data)


def tier_range(c: stoker.Client) -> tuple[int, int]:
    """Where a Client's mapping of the tier is (other Clients' mappings of
    the same file may still be alive in this process)."""
    assert c.shm_tier is not None, "no tier announced"
    lo = address(c.shm_tier.view)
    return lo, lo + c.shm_tier.size


def mapping_at(path: str, addr: int) -> tuple[int, int, str] | None:
    """The mapping of path that holds addr, if any."""
    return next((m for m in mappings(path) if m[0] <= addr < m[1]), None)


def leases_freed(c: stoker.Client) -> bool:
    s = c.stats()
    return s.shm_regions == 0 and s.shm_leases == 0 and s.shm_leased_bytes == 0 and s.shm_region_bytes == 0


def read_grpc(c: stoker.Client, url: str, args: dict[str, Any]) -> Batches:
    return [[(s.key, s.fields) for s in b.samples] for b in c.stream(url, **args)]


def read_shm(c: stoker.Client, url: str, args: dict[str, Any], shm: bool | str = True) -> tuple[Batches, int, int, int]:
    """An epoch through shared memory, every field copied to bytes; with the
    count of fields read in place in the tier, their bytes, and the count
    of fields copied into the stream's region."""
    out: Batches = []
    tier_fields = tier_bytes = copied = 0
    for b in c.stream(url, shm=shm, **args):
        lo, hi = tier_range(c)
        batch = []
        for s in b.samples:
            raw = {}
            for name, v in s.fields.items():
                assert isinstance(v, memoryview), (s.key, name, type(v))
                raw[name] = bytes(v)
                if not v:
                    continue
                if lo <= address(v) and address(v) + len(v) <= hi:
                    assert v.readonly, (s.key, name)
                    tier_fields += 1
                    tier_bytes += len(v)
                else:
                    copied += 1
            batch.append((s.key, raw))
        out.append(batch)
    return out, tier_fields, tier_bytes, copied


def next_with_tier_fields(c: stoker.Client, url: str, **kw: Any) -> tuple[Iterator[stoker.Batch], stoker.Batch, list[memoryview]]:
    """A stream and its first batch with fields in the tier (the shards may
    still be on their way into the memory tier: retried to a deadline)."""
    deadline = time.monotonic() + 30
    while True:
        stream = c.stream(url, shm=True, **kw)
        for batch in stream:
            lo, hi = tier_range(c)
            views = [v for s in batch.samples for v in s.fields.values()
                     if len(v) > 0 and lo <= address(v) < hi]
            if views:
                return stream, batch, views
        assert time.monotonic() < deadline, "no field came from the tier"


@pytest.mark.parametrize("args", [dict(batch_size=8, seed=4), dict(batch_size=5, seed=9, world_size=2, rank=1)])
def test_tier_epochs_equal_grpc_byte_for_byte(tier_stokerd: Stokerd, tier_url: str, args: dict[str, Any]) -> None:
    with stoker.Client(tier_stokerd.address, local=False) as tcp, stoker.Client(unix_address(tier_stokerd)) as local:
        tier_fields = tier_bytes = copied = 0
        base = tcp.stats()
        for epoch in (0, 1):
            want = read_grpc(tcp, tier_url, dict(args, epoch=epoch))
            assert sum(len(b) for b in want) > 0
            before = tcp.stats().shm_tier_bytes
            got, n, nbytes, m = read_shm(local, tier_url, dict(args, epoch=epoch))
            assert got == want, f"epoch {epoch}: shm bytes differ from gRPC"
            # Every byte the server says it handed out in the tier was a view into the mapping.
            assert tcp.stats().shm_tier_bytes - before == nbytes
            tier_fields, tier_bytes, copied = tier_fields + n, tier_bytes + nbytes, copied + m
        st = tcp.stats()
        assert local.shm_tier is not None and local.shm_tier.path == st.shm_tier_path
        assert st.shm_tier_bytes - base.shm_tier_bytes == tier_bytes > 0, "the tier was not used"
        assert tier_fields > 0 and copied > 0, f"want fields both in place ({tier_fields}) and copied ({copied})"
        assert st.shm_bytes_served > base.shm_bytes_served
        poll(lambda: leases_freed(tcp), "the streams' leases to be released")


def test_tier_fields_are_read_only_views_of_the_mapping(tier_stokerd: Stokerd, tier_url: str) -> None:
    import torch

    with stoker.Client(unix_address(tier_stokerd)) as c:
        stream, _, views = next_with_tier_fields(c, tier_url, batch_size=8, shuffle=False)
        tier = c.shm_tier
        assert tier is not None and len(tier.view) == tier.size and tier.view.readonly
        lo, hi = tier_range(c)
        found = mapping_at(tier.path, lo)  # a mapping of the file, read-only and shared
        assert found is not None and found[1] >= hi, (found, lo, hi)
        assert found[2].startswith("r-") and found[2].endswith("s"), found
        whole = np.frombuffer(tier.view, dtype=np.uint8)
        for v in views:
            arr = as_numpy(v)
            assert np.shares_memory(arr, whole) and not arr.flags.writeable
            assert arr.tobytes() == bytes(v) and arr.dtype == np.uint8
            assert as_numpy(v[: len(v) // 4 * 4], "float32").ctypes.data == arr.ctypes.data
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no warning about the read-only buffer
                ten = as_tensor(v)
            assert lo <= ten.data_ptr() and ten.data_ptr() + len(v) <= hi, "copied out of the tier"
            assert ten.dtype == torch.uint8 and ten.numpy().tobytes() == bytes(v)
        del whole, arr
        stream.close()


def test_one_tier_mapping_per_client_unmapped_on_close(tier_stokerd: Stokerd, tier_url: str) -> None:
    gc.collect()  # Clients of earlier tests dropped without close (they share the mapping) are counted out
    c = stoker.Client(unix_address(tier_stokerd))
    one, first, held = next_with_tier_fields(c, tier_url, batch_size=8, epoch=0)
    tier = c.shm_tier
    assert tier is not None
    assert stoker_shm._unmapper.drain(timeout=60)  # earlier Clients' mappings, closed by its thread, are gone
    n = len(mappings(tier.path))
    two, second, more = next_with_tier_fields(c, tier_url, batch_size=4, epoch=1)
    assert c.shm_tier is tier and len(mappings(tier.path)) == n, "a second stream mapped the tier again"
    lo, hi = tier_range(c)
    assert all(lo <= address(v) < hi for v in held + more)
    one.close()
    two.close()
    del first, second, held, more  # the views: while one lives, so does the mapping
    n = sum(len(b.samples) for b in c.stream(tier_url, batch_size=16, epoch=2, shm=True))
    assert n == SHARDS * SAMPLES
    assert c.shm_tier is tier and mapping_at(tier.path, lo), "the mapping did not outlive its streams"
    c.close()
    assert unmapped()
    assert c.shm_tier is None and not mapping_at(tier.path, lo), "the tier is still mapped after Client.close"
    c.close()


def test_clients_of_a_process_share_the_tier_mapping(tier_stokerd: Stokerd, tier_url: str) -> None:
    """Every Client of a process maps the tier once; a Client dropped
    without close leaves the mapping (its pages already faulted in) to the
    next one, as a torch dataset made anew each epoch does; closing the
    last Client that holds it unmaps it."""
    gc.collect()  # Clients of earlier tests dropped without close: counted out at the next get
    a = stoker.Client(unix_address(tier_stokerd))
    stream, batch, views = next_with_tier_fields(a, tier_url, batch_size=8, epoch=0)
    tier = a.shm_tier
    assert tier is not None
    lo, _ = tier_range(a)
    n = len(mappings(tier.path))
    want = [bytes(v) for v in views]
    b = stoker.Client(unix_address(tier_stokerd))
    assert sum(len(x.samples) for x in b.stream(tier_url, batch_size=16, epoch=1, shm=True)) == SHARDS * SAMPLES
    assert b.shm_tier is tier and len(mappings(tier.path)) == n, "a second Client mapped the tier again"
    b.close()
    assert b.shm_tier is None and a.shm_tier is tier and mapping_at(tier.path, lo), "b's close unmapped a's tier"
    assert [bytes(v) for v in views] == want
    stream.close()
    del stream, batch, views, b
    del a  # dropped, not closed
    gc.collect()
    c = stoker.Client(unix_address(tier_stokerd))
    assert sum(len(x.samples) for x in c.stream(tier_url, batch_size=16, epoch=2, shm=True)) == SHARDS * SAMPLES
    assert c.shm_tier is tier and len(mappings(tier.path)) == n and mapping_at(tier.path, lo), "mapped anew"
    c.close()
    assert unmapped()
    assert not mapping_at(tier.path, lo), "the tier is still mapped after the last Client's close"


def test_closing_early_frees_the_leases(tier_stokerd: Stokerd, tier_url: str) -> None:
    with stoker.Client(tier_stokerd.address) as watch:
        with stoker.Client(unix_address(tier_stokerd)) as c:
            stream, batch, views = next_with_tier_fields(c, tier_url, batch_size=8, shm_region_bytes=16 << 20)
            assert watch.stats().shm_leases > 0
            stream.close()
            del batch, views
            poll(lambda: leases_freed(watch), "a closed stream's leases to be freed")
        # A client closed with its stream still open: the views it holds
        # keep their leases (and the tier's shards pinned), so they stay
        # right; once they go, the leases are freed.
        c = stoker.Client(unix_address(tier_stokerd))
        stream, batch, views = next_with_tier_fields(c, tier_url, batch_size=8, epoch=3)
        want = [bytes(v) for v in views]
        assert watch.stats().shm_leases > 0
        c.close()
        stream.close()
        assert watch.stats().shm_leases > 0
        assert [bytes(v) for v in views] == want and all(bytes(v) == bytes(as_numpy(v)) for v in views)
        del batch, views
        poll(lambda: leases_freed(watch), "a closed client's leases to be freed")


def test_gds_takes_tier_fields_and_extents(tier_stokerd: Stokerd, tier_url: str) -> None:
    """With gds, fields of shards in memory come from the tier and those
    only on disk as extents; every byte equals the gRPC read."""
    args = dict(batch_size=8, seed=2, epoch=5)
    with stoker.Client(tier_stokerd.address) as tcp, stoker.Client(unix_address(tier_stokerd)) as local:
        want = read_grpc(tcp, tier_url, args)
        base = tcp.stats()
        deadline, tier_fields, extents = time.monotonic() + 30, 0, 0
        while not (tier_fields and extents):  # until the disk tier has its writes
            got = []
            for b in local.stream(tier_url, gds=True, **args):
                lo, hi = tier_range(local)
                batch = []
                for s in b.samples:
                    raw = {}
                    for name, v in s.fields.items():
                        raw[name] = bytes(v)
                        if isinstance(v, Extent):
                            extents += 1
                        else:
                            tier_fields += bool(v) and lo <= address(v) < hi
                    batch.append((s.key, raw))
                got.append(batch)
            assert got == want
            assert time.monotonic() < deadline, f"{tier_fields} tier fields and {extents} extents"
        st = tcp.stats()
        assert st.shm_tier_bytes > base.shm_tier_bytes and st.shm_extent_bytes > base.shm_extent_bytes
        poll(lambda: leases_freed(tcp), f"the gds streams' leases to be released: {tcp.stats()}")


def test_pinned_without_cuda_makes_no_cuda_call(tier_stokerd: Stokerd, tier_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def no_cuda() -> Any:
        raise AssertionError("a CUDA call on a host without CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "cudart", no_cuda)
    with stoker.Client(tier_stokerd.address) as tcp, stoker.Client(unix_address(tier_stokerd)) as c:
        args = dict(batch_size=8, seed=6)
        got, tier_fields, _, _ = read_shm(c, tier_url, args, shm="pinned")
        assert got == read_grpc(tcp, tier_url, args)
        assert c.shm_tier is not None and not c.shm_tier.pinned
        assert "no CUDA device" in c.shm_tier.pin_reason


class FakeCudart:
    """torch.cuda.cudart() that records (un)registrations; registering
    read-only fails with `fail_read_only` when set."""

    def __init__(self, fail_read_only: int = 0) -> None:
        self.fail_read_only = fail_read_only
        self.registered: dict[int, tuple[int, int]] = {}  # address -> (size, flags)
        self.calls: list[tuple[str, int, int, int]] = []

    def cudaHostRegister(self, ptr: int, size: int, flags: int) -> int:  # noqa: N802 (CUDA's name)
        self.calls.append(("register", ptr, size, flags))
        if flags & 0x08 and self.fail_read_only:
            return self.fail_read_only
        assert ptr not in self.registered, "registered twice"
        self.registered[ptr] = (size, flags)
        return 0

    def cudaHostUnregister(self, ptr: int) -> int:  # noqa: N802
        self.calls.append(("unregister", ptr, 0, 0))
        assert ptr in self.registered, "unregistered what was not registered"
        del self.registered[ptr]
        return 0

    def cudaGetErrorString(self, rc: int) -> str:  # noqa: N802
        return "operation not supported"


@pytest.mark.parametrize("fail", [0, 801])
def test_pinned_registers_the_tier_once_read_only(tier_stokerd: Stokerd, tier_url: str, fail: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """shm="pinned" registers each stream's region and, once per mapping,
    the tier with the read-only flag (CUDA faked: no GPU here); a tier CUDA
    refuses stays pageable, with the reason, and the stream goes on."""
    import torch

    fake, cleared = FakeCudart(fail), []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "cudart", lambda: fake)
    monkeypatch.setattr(stoker_shm, "_clear_cuda_error", lambda: cleared.append(1))
    with stoker.Client(unix_address(tier_stokerd)) as c:
        for epoch in (0, 1):
            got, tier_fields, _, _ = read_shm(c, tier_url, dict(batch_size=16, epoch=epoch), shm="pinned")
            assert sum(len(b) for b in got) == SHARDS * SAMPLES
        tier = c.shm_tier
        assert tier is not None
        base, _ = tier_range(c)
        tier_calls = [k for k in fake.calls if k[1] == base]
        region_calls = [k for k in fake.calls if k[1] != base]
        assert [k[0] for k in region_calls] == ["register", "unregister"] * 2 and all(k[3] == 0 for k in region_calls[::2])
        assert tier_calls == [("register", base, tier.size, 0x09)]  # portable | read-only, once
        if fail:
            assert not tier.pinned and "operation not supported (801)" in tier.pin_reason and cleared == [1]
        else:
            assert tier.pinned and fake.registered == {base: (tier.size, 0x09)} and not cleared
    assert not fake.registered, "left registered after Client.close"


def test_restarted_server_tier_file_is_mapped_anew(stokerd_bin: str, s3_server: S3Server, tier_url: str) -> None:
    srv, tiers = start_tier_stokerd(stokerd_bin, s3_server), []
    try:
        with stoker.Client(unix_address(srv)) as c:
            assert sum(len(b.samples) for b in c.stream(tier_url, batch_size=16, shm=True)) == SHARDS * SAMPLES
            assert c.shm_tier is not None
            old = c.shm_tier.path
            tiers.append(old)
            assert mappings(old)
            srv.restart()
            tiers.append(c.stats().shm_tier_path)
            assert sum(len(b.samples) for b in c.stream(tier_url, batch_size=16, shm=True)) == SHARDS * SAMPLES
            assert c.shm_tier is not None and c.shm_tier.path == c.stats().shm_tier_path != old
            assert unmapped()
            assert not mappings(old), "the old server's tier is still mapped"
            assert len(mappings(c.shm_tier.path)) == 1
    finally:
        stop(srv, tiers)


# -- the reader on its own (no server) ---------------------------------------


def test_tier_maps_follow_the_file(tmp_path: Path) -> None:
    """One mapping per file; a file made anew under the same name (a
    server restarted with the same pid) is mapped anew, the old unmapped."""
    path = tmp_path / "stoker-1-tier.shm"
    path.write_bytes(b"a" * 8192)
    maps = TierMaps()
    first = maps.get(str(path), 8192)
    assert maps.get(str(path), 8192) is first and maps.current is first
    assert bytes(first.view[:2]) == b"aa" and not first.pinned
    path.unlink()
    path.write_bytes(b"b" * 8192)
    second = maps.get(str(path), 8192)
    assert second is not first and bytes(second.view[:2]) == b"bb"
    with pytest.raises(ValueError):
        first.view[0]  # released with the old mapping
    maps.close()
    maps.close()
    assert unmapped()
    assert maps.current is None and not mappings(str(path))
    with pytest.raises(RuntimeError, match="cannot map the server's memory tier .*gone"):
        maps.get(str(tmp_path / "gone"), 4096)
    with pytest.raises(RuntimeError, match="has 8192 bytes"):
        maps.get(str(path), 16384)


def test_fields_outside_the_tier_name_field_and_sample(tmp_path: Path) -> None:
    region, tier = tmp_path / "region.shm", tmp_path / "tier.shm"
    region.write_bytes(bytes(4096))
    tier.write_bytes(bytes(range(256)) * 16)
    first = loader_pb2.StreamBatchesResponse(
        shm_region=loader_pb2.ShmRegion(id="r", path=str(region), size=4096),
        shm_tier=loader_pb2.ShmRegion(id="tier", path=str(tier), size=4096),
    )

    def sample(offset: int, length: int) -> loader_pb2.Sample:
        return loader_pb2.Sample(key="k1", fields=[
            loader_pb2.Field(name="bin", shm_tier=True, shm_offset=offset, shm_length=length)])

    maps = TierMaps()
    r = ShmReader(None, (), None, tiers=maps)
    r.receive(first)
    assert bytes(r.fields(sample(4090, 6))["bin"]) == bytes(range(250, 256))
    with pytest.raises(RuntimeError, match=r"field 'bin' of sample 'k1': \[4090, \+7\) outside the memory tier"):
        r.fields(sample(4090, 7))
    with pytest.raises(RuntimeError, match="outside the memory tier"):
        r.fields(sample(1 << 63, 1 << 63))
    r.close()
    maps.close()
    untold = ShmReader(None, (), None, tiers=TierMaps())
    untold.receive(loader_pb2.StreamBatchesResponse(shm_region=first.shm_region))
    with pytest.raises(RuntimeError, match=r"field 'bin' of sample 'k1'.*outside the memory tier \(not mapped\)"):
        untold.fields(sample(0, 1))
    untold.close()
    with pytest.raises(RuntimeError, match="did not ask for it"):
        ShmReader(None, (), None).receive(first)


def test_large_mappings_are_unmapped_off_the_readers_thread(tmp_path: Path) -> None:
    """A large mapping (a memory tier, a region) is closed by the shm
    module's own thread, so a reader does not wait for its pages to be
    unmapped; a small one is closed at once; a mapping with live views
    stays until they go, as before."""
    import mmap

    closers: list[str] = []

    class Recorded(mmap.mmap):
        def close(self) -> None:
            closers.append(threading.current_thread().name)
            super().close()

    def mapped(size: int) -> mmap.mmap:
        path = tmp_path / f"m-{size}"
        with open(path, "wb") as f:
            f.truncate(size)
        with open(path, "r+b") as f:
            return Recorded(f.fileno(), size)

    small = mapped(1 << 20)
    stoker_shm._unmap(small, None)
    assert small.closed and closers == [threading.current_thread().name], "a small mapping is closed by the caller"
    closers.clear()
    big = mapped(stoker_shm._UNMAP_LATER_BYTES)
    stoker_shm._unmap(big, None)
    assert stoker_shm._unmapper.drain(timeout=60)
    assert big.closed and closers == ["stoker-unmap"]
    held = mapped(stoker_shm._UNMAP_LATER_BYTES)
    view = memoryview(held)[:8]
    stoker_shm._unmap(held, None)
    assert stoker_shm._unmapper.drain(timeout=60)
    assert not held.closed and bytes(view) == b"\0" * 8, "a mapping with a live view stays mapped"
    view.release()
