"""The framework-free client against real stokerd and versitygw."""

from __future__ import annotations

import itertools

import pytest
from check import assert_exactly_once, assert_matches_reference
from conftest import COUNTS, Data
from servers import Stokerd, free_port

import stoker
from stoker.split import rank_positions


def test_open_dataset_manifest(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        info = c.open_dataset(data.url)
        if not info.counted:  # no index beside the shards: counted as an epoch reads them
            assert info.counts_from == "counting"
            list(c.stream(data.url, batch_size=64))
            info = c.open_dataset(data.url)
    assert info.counted and info.counts_from in ("counting", "manifest")
    assert info.num_samples == sum(COUNTS)
    assert [s.object for s in info.shards] == data.shard_urls
    assert [s.samples for s in info.shards] == list(COUNTS)
    assert all(s.size > 0 and s.etag for s in info.shards)
    assert info.total_bytes == sum(s.size for s in info.shards)


def test_epoch_is_every_sample_once_with_webdataset_bytes(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        urls = [s.object for s in c.open_dataset(data.url).shards]
        batches = list(c.stream(data.url, batch_size=8, seed=5, epoch=0))
    samples = [s for b in batches for s in b.samples]
    assert [s.position for s in samples] == list(range(sum(COUNTS)))
    assert_exactly_once((s.key for s in samples), data.keys)
    for s in samples:
        assert_matches_reference(s.to_dict(urls[s.shard]), data.reference)
    # Steps are numbered from the epoch start; each cursor is the next step's start.
    assert [b.step for b in batches] == list(range(len(batches)))
    assert [b.cursor.position for b in batches] == [min(8 * (i + 1), sum(COUNTS)) for i in range(len(batches))]


def test_order_depends_on_seed_and_epoch_only(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        def keys(**kw: int) -> list[str]:
            return [s.key for b in c.stream(data.url, batch_size=16, **kw) for s in b.samples]

        a = keys(seed=1, epoch=0)
        assert keys(seed=1, epoch=0) == a
        assert keys(seed=1, epoch=1) != a
        assert keys(seed=2, epoch=0) != a
        assert sorted(keys(seed=1, epoch=1)) == sorted(a)
        # The global order does not depend on the batch size.
        assert [s.key for b in c.stream(data.url, batch_size=5, seed=1) for s in b.samples] == a
        unshuffled = [s.key for b in c.stream(data.url, batch_size=16, shuffle=False) for s in b.samples]
        assert unshuffled == sorted(data.keys, key=lambda k: (int(k[1 : k.index("/")]), k))


@pytest.mark.parametrize("world_size,batch_size,start", [(2, 4, 0), (3, 5, 0), (2, 4, 37)])
def test_ranks_split_the_epoch(server: str, data: Data, world_size: int, batch_size: int, start: int) -> None:
    total = sum(COUNTS)
    with stoker.Client(server) as c:
        full = [s.key for b in c.stream(data.url, batch_size=7, seed=3) for s in b.samples]
        seen: list[str] = []
        for rank in range(world_size):
            got = [s for b in c.stream(data.url, batch_size=batch_size, seed=3, rank=rank,
                                        world_size=world_size, start=start) for s in b.samples]
            assert [s.position for s in got] == rank_positions(total, start, rank, world_size, batch_size)
            seen += [s.key for s in got]
    assert_exactly_once(seen, full[start:])


def test_resume_from_cursor_yields_the_rest(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        whole = [s.key for b in c.stream(data.url, batch_size=6, seed=9, epoch=2) for s in b.samples]
        it = c.stream(data.url, batch_size=6, seed=9, epoch=2)
        first = list(itertools.islice(it, 5))
        it.close()
        cursor = first[-1].cursor
        assert cursor == stoker.Cursor(epoch=2, position=30, plan_version=cursor.plan_version) and cursor.plan_version > 0
        rest = [s.key for b in c.stream(data.url, batch_size=6, seed=9, epoch=2, start=cursor) for s in b.samples]
    assert [s.key for b in first for s in b.samples] + rest == whole


def test_large_batches_arrive_in_parts_and_are_reassembled(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        batches = list(c.stream(data.big_url, batch_size=6, shuffle=False))
    assert len(batches) == 1 and batches[0].parts > 1, [b.parts for b in batches]
    samples = batches[0].samples
    assert [s.position for s in samples] == list(range(6))
    for s in samples:
        assert_matches_reference(s.to_dict(), data.big_reference)


def test_reconnects_and_resumes_after_server_restart(own_stokerd: Stokerd, data: Data) -> None:
    with stoker.Client(own_stokerd.address) as c:
        expected = [s.key for b in c.stream(data.many_url, batch_size=2, seed=4) for s in b.samples]
        it = c.stream(data.many_url, batch_size=2, seed=4)
        got = [s.key for b in itertools.islice(it, 2) for s in b.samples]
        own_stokerd.restart()  # the stream's connection breaks here
        got += [s.key for b in it for s in b.samples]
        served_after_restart = c.stats().samples_served
    assert got == expected
    # The new server served the rest of the epoch, not all of it: the
    # stream resumed from a cursor (the client had buffered some batches).
    assert 0 < served_after_restart < len(expected), served_after_restart


def test_unreachable_server_raises_server_unavailable() -> None:
    with stoker.Client(f"127.0.0.1:{free_port()}", retries=2, backoff=(0.01, 0.02)) as c:
        with pytest.raises(stoker.ServerUnavailable) as exc:
            next(iter(c.stream("s3://b/p/", batch_size=1)))
        assert "StreamBatches" in str(exc.value) and "UNAVAILABLE" in str(exc.value)
        with pytest.raises(stoker.ServerUnavailable):
            c.stats()


def test_missing_dataset_is_dataset_not_found(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        with pytest.raises(stoker.DatasetNotFound) as exc:
            c.open_dataset(data.missing_url)
        assert "no-such-prefix" in str(exc.value)
        with pytest.raises(stoker.DatasetNotFound):
            list(c.stream(data.missing_url, batch_size=4))


def test_corrupt_shard_error_names_the_shard(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        with pytest.raises(stoker.CorruptShard) as exc:
            list(c.stream(data.corrupt_url, batch_size=4))
        assert data.corrupt_shard.rsplit("/", 1)[-1] in str(exc.value)
        # The server keeps serving other datasets.
        assert len(c.open_dataset(data.url).shards) == len(COUNTS)


def test_bad_arguments_are_invalid_argument(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        with pytest.raises(stoker.InvalidArgument):
            c.stream(data.url, batch_size=0)
        with pytest.raises(stoker.InvalidArgument):
            c.stream(data.url, batch_size=4, rank=2, world_size=2)
        with pytest.raises(stoker.InvalidArgument) as exc:  # from the server
            list(c.stream(data.url, batch_size=4, start=10_000))
        assert "cursor.position" in str(exc.value)
        with pytest.raises(stoker.InvalidArgument):
            c.open_dataset("ftp://nowhere/x")


def test_stats_count_what_was_served(own_stokerd: Stokerd, data: Data) -> None:
    # A server of its own: streams other tests cancelled cannot add to it.
    with stoker.Client(own_stokerd.address) as c:
        before = c.stats()
        n = sum(len(b.samples) for b in c.stream(data.url, batch_size=32, seed=8))
        after = c.stats()
    assert after.samples_served - before.samples_served == n == sum(COUNTS)
    assert after.bytes_served > before.bytes_served
    assert after.memory_capacity > 0


def test_read_epoch_with_progress_bar(server: str, data: Data, capsys: pytest.CaptureFixture[str]) -> None:
    with stoker.Client(server) as c:
        samples = c.read_epoch(data.url, batch_size=10, rank=1, world_size=2, progress=True)
    assert len(samples) == len(rank_positions(sum(COUNTS), 0, 1, 2, 10))
    assert "sample" in capsys.readouterr().err


def test_prefetch_hint_warms_the_cache(own_stokerd: Stokerd, data: Data) -> None:
    with stoker.Client(own_stokerd.address) as c:
        hint = c.prefetch(data.url, epochs=[0, 1], seed=6)
        assert hint.hint_id and hint.shards_total == len(COUNTS)
        status = c.wait_prefetch(hint, timeout=120, progress=False)
        assert status.done and not status.errors, status
        assert status.bytes_done == status.bytes_total == hint.bytes_total
        assert all(n.state == "done" for n in status.nodes)
        before = c.stats()
        n = sum(len(b.samples) for b in c.stream(data.url, batch_size=16, seed=6, epoch=1))
        after = c.stats()
    assert n == sum(COUNTS)
    assert after.misses == before.misses and after.storage_requests == before.storage_requests


def test_prefetch_errors(server: str, data: Data) -> None:
    with stoker.Client(server) as c:
        with pytest.raises(stoker.InvalidArgument, match="epochs"):
            c.prefetch(data.url, epochs=[])
        with pytest.raises(stoker.DatasetNotFound):
            c.prefetch_status("no-such-hint")
