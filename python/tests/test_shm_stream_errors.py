"""A shared-memory stream that the server fails: the client reports the
server's error, also when it is behind on its messages and the failed
stream's region file is gone before it maps it."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Data
from servers import S3Server, Stokerd
from test_shm import poll, region_ranges, unix_address
from test_shm_tier import stop

import stoker
from stoker import _resume as stoker_resume
from stoker import shm as stoker_shm

# The "many" dataset is one shard of 40 samples of 1 MiB. Steps of 16
# samples are sent in two parts of about 8 MiB (the server's part size);
# a 12 MiB region holds the first but not both. The memory tier is shared
# (locked) but too small for the shard, so every field goes through the
# region and, the tier being shared, the server only finds the step too
# big when its second part does not fit: after it sent the first.
REGION = 12 << 20
STEP = 16


@pytest.fixture(scope="module")
def tiny_tier_stokerd(stokerd_bin: str, s3_server: S3Server, data: Data) -> Iterator[Stokerd]:
    root = Path(tempfile.mkdtemp(prefix="stoker-shmerr-", dir="/tmp"))
    srv = Stokerd(bin=stokerd_bin, root=root, env=s3_server.env(),
                  extra=("--unix", str(root / "s.sock"), "--memory-region", "locked", "--memory-cache", "64KiB"))
    srv.start()
    with stoker.Client(srv.address) as c:
        path = c.stats().shm_tier_path
    assert path.startswith("/"), f"the tier is not shared: {path!r}\n{srv.output()}"
    yield srv
    stop(srv, [path])


def read_all(c: stoker.Client, url: str, **kw: Any) -> int:
    n = 0
    for b in c.stream(url, seed=1, shm=True, **kw):
        n += len(b.samples)
    return n


@pytest.mark.parametrize("behind", [True, False], ids=["client-behind", "as-it-comes"])
@pytest.mark.parametrize("run", range(3))
def test_step_larger_than_region_raises_the_servers_error(
    tiny_tier_stokerd: Stokerd, data: Data, monkeypatch: pytest.MonkeyPatch, behind: bool, run: int
) -> None:
    with stoker.Client(tiny_tier_stokerd.address) as tcp:
        if behind:
            # The client takes in the first message only once the server
            # failed the stream and removed its region file.
            receive = stoker_shm.ShmReader.receive

            def late_receive(self: stoker_shm.ShmReader, msg: Any) -> None:
                if msg.HasField("shm_region"):
                    poll(lambda: tcp.stats().shm_regions == 0, "the failed stream's region to go")
                    assert not Path(msg.shm_region.path).exists()
                receive(self, msg)

            monkeypatch.setattr(stoker_shm.ShmReader, "receive", late_receive)
        with stoker.Client(unix_address(tiny_tier_stokerd)) as c:
            with pytest.raises(stoker.ResourceExhausted) as exc:
                read_all(c, data.many_url, batch_size=STEP, shm_region_bytes=REGION)
        assert "shm_region_bytes" in str(exc.value), exc.value
        poll(lambda: tcp.stats().shm_regions == 0, "the region to go")
    assert stoker_shm._unmapper.drain(timeout=60)
    assert region_ranges() == []


def test_unmappable_region_of_a_live_stream_is_reported(
    tiny_tier_stokerd: Stokerd, data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A region that cannot be mapped while the server's stream goes on
    (and soon waits for releases that never come) is reported as such,
    after a bounded read for a server error that does not come."""

    def refuse(path: str, size: int) -> Any:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(stoker_shm, "_map_region", refuse)
    monkeypatch.setattr(stoker_resume, "_ERROR_READ_GRACE", 0.5)
    with stoker.Client(unix_address(tiny_tier_stokerd)) as c:
        t0 = time.monotonic()
        with pytest.raises(stoker.StokerError) as exc:
            read_all(c, data.many_url, batch_size=4, shm_region_bytes=REGION)
        took = time.monotonic() - t0
        assert "cannot map the shm region" in str(exc.value) and "Permission denied" in str(exc.value), exc.value
        assert exc.value.code is None, exc.value
        assert took < 30, f"took {took:.1f}s to give up"
        poll(lambda: c.stats().shm_regions == 0, "the cancelled stream's region to go")
