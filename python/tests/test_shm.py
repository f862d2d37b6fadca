"""Shared-memory delivery over stokerd's unix socket, every byte checked."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from check import assert_exactly_once, assert_matches_reference
from conftest import COUNTS, Data
from servers import S3Server, Stokerd

import stoker
from stoker.shm import as_numpy, as_tensor


@pytest.fixture(scope="module")
def unix_stokerd(stokerd_bin: str, s3_server: S3Server, data: Data) -> Iterator[Stokerd]:
    """A stokerd that also serves a unix socket (a short path: sun_path)."""
    root = Path(tempfile.mkdtemp(prefix="stoker-shm-", dir="/tmp"))
    srv = Stokerd(bin=stokerd_bin, root=root, env=s3_server.env(), extra=("--unix", str(root / "s.sock")))
    srv.start()
    yield srv
    srv.kill()
    shutil.rmtree(root, ignore_errors=True)


def unix_address(srv: Stokerd) -> str:
    return "unix:" + str(srv.root / "s.sock")


def poll(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)  # poll interval, not a wait for an outcome


def region_ranges() -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of stoker region files."""
    out = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if "/stoker-" in line and line.endswith(".shm"):
            lo, hi = line.split()[0].split("-")
            out.append((int(lo, 16), int(hi, 16)))
    return out


def test_shm_epoch_has_every_byte(unix_stokerd: Stokerd, data: Data) -> None:
    with stoker.Client(unix_address(unix_stokerd)) as c:
        urls = [s.object for s in c.open_dataset(data.url).shards]
        positions, keys = [], []
        for b in c.stream(data.url, batch_size=8, seed=5, epoch=0, shm=True, shm_region_bytes=16 << 20):
            for s in b.samples:
                assert all(isinstance(v, memoryview) for v in s.fields.values()), s.key
                raw = {k: bytes(v) for k, v in s.fields.items()}
                assert_matches_reference({"__key__": s.key, "__url__": urls[s.shard], **raw}, data.reference)
                positions.append(s.position)
                keys.append(s.key)
        # The last batch's views hold its lease past the stream's end;
        # once they go, the server frees it and closes the region.
        del b, s
        poll(lambda: c.stats().shm_regions == 0, "the region to close once its views went")
        st = c.stats()
    assert positions == list(range(sum(COUNTS)))
    assert_exactly_once(keys, data.keys)
    assert st.shm_bytes_served > 0 and st.shm_regions == 0 and st.shm_leases == 0 and st.shm_leased_bytes == 0


def test_shm_same_batches_as_grpc(unix_stokerd: Stokerd, data: Data) -> None:
    args = dict(batch_size=7, seed=2, epoch=3, world_size=2, rank=1)
    with stoker.Client(unix_stokerd.address) as tcp, stoker.Client(unix_address(unix_stokerd)) as local:
        want = [[(s.key, s.fields) for s in b.samples] for b in tcp.stream(data.big_url, **args)]
        got = [[(s.key, {k: bytes(v) for k, v in s.fields.items()}) for s in b.samples]
               for b in local.stream(data.big_url, shm=True, **args)]
    assert got == want


def test_numpy_and_torch_views_are_over_the_mapping(unix_stokerd: Stokerd, data: Data) -> None:
    import torch

    with stoker.Client(unix_address(unix_stokerd)) as c:
        stream = c.stream(data.many_url, batch_size=4, shm=True)
        batch = next(stream)
        ranges = region_ranges()
        assert ranges, "no region mapped"
        for s in batch.samples:
            for view in s.fields.values():
                if len(view) < 8:
                    continue
                arr = as_numpy(view)
                ten = as_tensor(view)
                for ptr in (arr.ctypes.data, ten.data_ptr()):
                    assert any(lo <= ptr and ptr + len(view) <= hi for lo, hi in ranges), "copied out of the region"
                assert arr.tobytes() == bytes(view) and ten.numpy().tobytes() == bytes(view)
                assert ten.dtype == torch.uint8 and arr.dtype == np.uint8
        stream.close()


CHILD = """
import sys, stoker
c = stoker.Client(sys.argv[1])
it = c.stream(sys.argv[2], batch_size=2, shm=True, shm_region_bytes=8 << 20)
next(it)
print("ready", flush=True)
sys.stdin.read()  # a stuck trainer: holds its batch, reads no more
"""


def test_killed_client_releases_its_leases(unix_stokerd: Stokerd, data: Data) -> None:
    with stoker.Client(unix_stokerd.address) as c:
        base = c.stats()
        child = subprocess.Popen([sys.executable, "-c", CHILD, unix_address(unix_stokerd), data.many_url],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
            poll(lambda: c.stats().shm_waits > base.shm_waits, "the child's region to fill")
            held = c.stats()
            assert held.shm_regions == 1 and 0 < held.shm_leased_bytes <= 8 << 20 and held.shm_leases > 0
        finally:
            child.kill()
            child.wait()
        poll(lambda: (lambda s: s.shm_regions == 0 and s.shm_leases == 0 and s.shm_leased_bytes == 0
                      and s.shm_region_bytes == 0)(c.stats()), "the dead child's leases to be freed")
    # The server goes on serving shared memory.
    with stoker.Client(unix_address(unix_stokerd)) as c:
        n = sum(len(b.samples) for b in c.stream(data.many_url, batch_size=4, shm=True))
    assert n == 40


def test_shm_over_tcp_is_refused(unix_stokerd: Stokerd, data: Data) -> None:
    # local=False: the client would otherwise find the server's socket itself.
    with stoker.Client(unix_stokerd.address, local=False) as c, pytest.raises(stoker.StokerError, match="unix socket"):
        list(c.stream(data.url, batch_size=8, shm=True))
