"""Resume as a global cursor: StokerDataLoader states resume exactly with
any num_workers and world size; states that cannot are refused in the main
process, saying what changed. Real stokerd, versitygw and DataLoaders."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from check import assert_exactly_once
from conftest import COUNTS, Data
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

import stoker
from stoker.torch import StokerDataLoader, StokerDataset

B = 4


def as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def plan_order(server: str, url: str, seed: int, epoch: int) -> list[str]:
    with stoker.Client(server) as c:
        return [s.key for b in c.stream(url, batch_size=32, seed=seed, epoch=epoch) for s in b.samples]


def loader(server: str, data: Data, num_workers: int, rank: int = 0, world_size: int = 1, **kw: Any) -> StokerDataLoader:
    ds = StokerDataset(data.url, server, batch_size=B, seed=29, epoch=2, rank=rank, world_size=world_size, **kw)
    return StokerDataLoader(ds, num_workers=num_workers, collate_fn=as_list)


def keys(batches: Iterator[list[dict[str, Any]]], n: int | None = None) -> list[str]:
    out: list[str] = []
    for i, batch in enumerate(batches):
        out += [s["__key__"] for s in batch]
        if n is not None and i + 1 == n:
            break
    return out


def test_resume_across_num_workers_2_3_0_exactly_once_in_plan_order(server: str, data: Data) -> None:
    first = loader(server, data, num_workers=2)
    a = keys(iter(first), 5)
    state = first.state_dict()
    assert state["position"] == 5 * B and state["num_workers"] == 2
    del first

    second = loader(server, data, num_workers=3)
    second.load_state_dict(state)
    b = keys(iter(second), 4)
    state = second.state_dict()
    assert state["position"] == 9 * B
    del second

    third = loader(server, data, num_workers=0)
    third.load_state_dict(state)
    c = keys(iter(third))
    end = third.state_dict()

    assert_exactly_once(a + b + c, data.keys)
    # One rank: a DataLoader yields the plan's order, and so does the resumed run.
    assert a + b + c == plan_order(server, data.url, seed=29, epoch=2)
    assert (end["epoch"], end["position"]) == (2, sum(COUNTS))


def test_resume_with_another_world_size(server: str, data: Data) -> None:
    # Two ranks with two workers each take 3 batches in lockstep; rank 0's
    # state is the job's. Three ranks (no workers, one worker, two) go on.
    ranks = [loader(server, data, num_workers=2, rank=r, world_size=2) for r in range(2)]
    its = [iter(ld) for ld in ranks]
    before = [k for it in its for k in keys(it, 3)]
    state = ranks[0].state_dict()
    assert state["position"] == 3 * 2 * B
    assert ranks[1].state_dict() == state  # in lockstep every rank's state is the same
    del its, ranks

    after: list[str] = []
    for r, workers in enumerate((0, 1, 2)):
        ld = loader(server, data, num_workers=workers, rank=r, world_size=3)
        ld.load_state_dict(state)
        after += keys(iter(ld))
    assert_exactly_once(before + after, data.keys)


def test_state_at_the_end_of_an_epoch_then_the_next(server: str, data: Data) -> None:
    ld = loader(server, data, num_workers=2)
    assert len(keys(iter(ld))) == sum(COUNTS)
    state = ld.state_dict()
    assert (state["epoch"], state["position"]) == (2, sum(COUNTS))

    again = loader(server, data, num_workers=3)
    again.load_state_dict(state)
    assert keys(iter(again)) == []  # epoch 2 was done
    again.dataset.set_epoch(3)
    assert keys(iter(again)) == plan_order(server, data.url, seed=29, epoch=3)


def test_set_epoch_after_a_load_starts_that_epoch(server: str, data: Data) -> None:
    ld = loader(server, data, num_workers=2)
    keys(iter(ld), 2)
    state = ld.state_dict()
    resumed = loader(server, data, num_workers=2)
    resumed.load_state_dict(state)
    resumed.dataset.set_epoch(4)  # not the state's epoch: it starts from its beginning
    assert keys(iter(resumed)) == plan_order(server, data.url, seed=29, epoch=4)


def test_persistent_workers_take_a_state_loaded_after_they_started(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=B, seed=29, epoch=2)
    ld = StokerDataLoader(ds, num_workers=2, persistent_workers=True, collate_fn=as_list)
    a = keys(iter(ld), 3)
    state = ld.state_dict()
    keys(iter(ld), 2)  # the same workers read on, then the job goes back to the state
    ld.load_state_dict(state)
    assert a + keys(iter(ld)) == plan_order(server, data.url, seed=29, epoch=2)


def test_a_worker_state_refused_in_the_main_process_saying_what_changed(server: str, data: Data) -> None:
    # StatefulDataLoader keeps one state per worker: only that worker's
    # stream resumes it. Take worker 0's from its snapshot.
    ds = StokerDataset(data.url, server, batch_size=B, seed=29)
    sdl = StatefulDataLoader(ds, batch_size=B, num_workers=2, collate_fn=as_list)
    it = iter(sdl)
    for _ in range(3):
        next(it)
    snap = sdl.state_dict()["_snapshot"]["_worker_snapshots"]
    worker0 = next(iter(snap.values()))["dataset_state"]
    del it, sdl
    assert worker0["position"] is None and worker0["num_workers"] == 2

    with pytest.raises(stoker.InvalidArgument, match="num_workers changed from 2 to 3"):
        loader(server, data, num_workers=3).load_state_dict(worker0)
    with pytest.raises(stoker.InvalidArgument, match="num_workers changed from 2 to 0"):
        StokerDataset(data.url, server, batch_size=B, seed=29).load_state_dict(worker0)


def test_a_mid_batch_state_of_two_ranks_refused_for_three(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=B, seed=29, rank=0, world_size=2)
    it = iter(ds)
    for _ in range(B + 2):  # into the second batch
        next(it)
    state = ds.state_dict()
    assert state["position"] is None and state["stream"]["skip"] == 2
    with pytest.raises(stoker.InvalidArgument, match="world size changed from 2 to 3"):
        StokerDataset(data.url, server, batch_size=B, seed=29, rank=0, world_size=3).load_state_dict(state)
    # At a batch boundary the same state is a global cursor.
    for _ in range(B - 2):
        next(it)
    state = ds.state_dict()
    assert state["position"] == 2 * 2 * B
    StokerDataset(data.url, server, batch_size=B, seed=29, rank=2, world_size=3).load_state_dict(state)


def test_one_process_resumes_mid_batch_with_workers(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=B, seed=29, epoch=2)
    it = iter(ds)
    a = [next(it)["__key__"] for _ in range(7)]  # mid-batch: one rank alone reads a prefix
    state = ds.state_dict()
    assert state["position"] == 7
    ld = loader(server, data, num_workers=3)
    ld.load_state_dict(state)
    assert a + keys(iter(ld)) == plan_order(server, data.url, seed=29, epoch=2)


def test_version_2_states_still_load(server: str, data: Data) -> None:
    v2 = {"version": 2, "epoch": 2, "position": 8, "skip": 1, "plan_version": 0, "url": data.url, "seed": 29,
          "batch_size": B, "shuffle": True, "shuffle_window": 0, "drop_last": False,
          "virtual_rank": 0, "virtual_world_size": 1}
    ds = StokerDataset(data.url, server, batch_size=B, seed=29)
    ds.load_state_dict(v2)
    assert [s["__key__"] for s in ds] == plan_order(server, data.url, seed=29, epoch=2)[9:]


def test_loader_batch_size_is_the_datasets(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=B)
    with pytest.raises(stoker.InvalidArgument, match="batch_size 3 is not the dataset's 4"):
        StokerDataLoader(ds, batch_size=3)
    with pytest.raises(stoker.InvalidArgument, match="batched=True"):
        StokerDataLoader(StokerDataset(data.url, server, batch_size=B, batched=True), batch_size=B)
    assert StokerDataLoader(ds).batch_size == B


def test_a_plain_dataloader_with_another_batch_size_warns(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=B)
    with pytest.warns(UserWarning, match="batch_size 3 is not the StokerDataset's batch_size 4"):
        next(iter(DataLoader(ds, batch_size=3, collate_fn=as_list)))
    batched = StokerDataset(data.url, server, batch_size=B, batched=True)
    with pytest.warns(UserWarning, match=r"use DataLoader\(batch_size=None\)"):
        next(iter(DataLoader(batched, batch_size=2, collate_fn=as_list)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        next(iter(DataLoader(StokerDataset(data.url, server, batch_size=B), batch_size=B, collate_fn=as_list)))
        next(iter(DataLoader(StokerDataset(data.url, server, batch_size=B, batched=True), batch_size=None)))


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(batch_size=0), "batch_size must be at least 1"),
        (dict(batch_size="8"), "batch_size must be an int"),
        (dict(seed=-1), "seed must be at least 0"),
        (dict(shuffle_window="most"), "shuffle_window"),
        (dict(format="tar"), "format 'tar'"),
        (dict(decode="rgb9"), "decode='rgb9'"),
        (dict(collate=3), "collate must be a function"),
    ],
)
def test_constructor_refuses_bad_arguments(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(stoker.InvalidArgument, match=match):
        StokerDataset("s3://b/p/", "127.0.0.1:1", **kw)


def test_drop_last_resumed_twice_on_the_same_split_reads_what_one_run_reads(server: str, data: Data) -> None:
    # 4 and then 5 batches with 3 workers: both saves fall inside a server
    # step; the same split goes on on the same grid of steps.
    def make() -> StokerDataLoader:
        return loader(server, data, num_workers=3, rank=1, world_size=2, drop_last=True)

    whole = keys(iter(make()))
    first = make()
    a = keys(iter(first), 4)
    state = first.state_dict()
    second = make()
    second.load_state_dict(state)
    b = keys(iter(second), 5)
    state = second.state_dict()
    third = make()
    third.load_state_dict(state)
    assert a + b + keys(iter(third)) == whole


@pytest.mark.parametrize("saved_workers,snapshot_every", [(2, 1), (3, 2), (0, 1)])
def test_a_stateful_dataloader_state_resumes_in_a_stoker_dataloader(
    server: str, data: Data, saved_workers: int, snapshot_every: int
) -> None:
    # A job that checkpointed StatefulDataLoader states goes on with another
    # num_workers through StokerDataLoader.
    ds = StokerDataset(data.url, server, batch_size=B, seed=29, epoch=2)
    sdl = StatefulDataLoader(ds, batch_size=B, num_workers=saved_workers, collate_fn=as_list,
                             snapshot_every_n_steps=snapshot_every)
    a = keys(iter(sdl), 7)
    state = sdl.state_dict()
    del sdl
    resumed = loader(server, data, num_workers=2)
    resumed.load_state_dict(state)
    assert a + keys(iter(resumed)) == plan_order(server, data.url, seed=29, epoch=2)


def test_batched_and_columnar_resume_with_another_num_workers(server: str, data: Data, columnar: Any) -> None:
    # batched=True: each DataLoader item is one server batch.
    def batched(workers: int) -> StokerDataLoader:
        return StokerDataLoader(StokerDataset(data.url, server, batch_size=B, seed=3, batched=True),
                                num_workers=workers)

    first = batched(2)
    a = keys(iter(first), 5)
    second = batched(0)
    second.load_state_dict(first.state_dict())
    assert a + keys(iter(second)) == plan_order(server, data.url, seed=3, epoch=0)

    # Columnar rows.
    def rows(workers: int) -> StokerDataLoader:
        ds = StokerDataset(columnar.url, server, batch_size=B, seed=3, columns=["id"])
        return StokerDataLoader(ds, num_workers=workers)

    def ids(ld: StokerDataLoader, n: int | None = None) -> list[int]:
        out: list[int] = []
        for i, b in enumerate(ld):
            out += b["id"].tolist()
            if n is not None and i + 1 == n:
                break
        return out

    whole = ids(rows(0))
    first = rows(3)
    a_ids = ids(first, 4)
    second = rows(2)
    second.load_state_dict(first.state_dict())
    assert a_ids + ids(second) == whole
    assert sorted(whole) == sorted(columnar.rows)
