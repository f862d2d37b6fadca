"""stoker.torch.StokerDataset through real DataLoaders, stokerd and versitygw."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import webdataset as wds
from check import assert_exactly_once, assert_matches_reference
from conftest import COUNTS, Data
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

import stoker
from stoker.torch import StokerDataset


def as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A collate_fn that keeps the samples as they are."""
    return batch


def plan_order(server: str, url: str, seed: int, epoch: int) -> list[str]:
    """The epoch's global sequence S, as keys."""
    with stoker.Client(server) as c:
        return [s.key for b in c.stream(url, batch_size=32, seed=seed, epoch=epoch) for s in b.samples]


def read_rank(server: str, data: Data, rank: int, world_size: int, num_workers: int, **kw: Any) -> list[dict[str, Any]]:
    ds = StokerDataset(data.url, server, batch_size=4, seed=21, rank=rank, world_size=world_size, **kw)
    loader = DataLoader(ds, batch_size=4, num_workers=num_workers, collate_fn=as_list)
    return [s for batch in loader for s in batch]


@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("num_workers", [0, 2, 3])
def test_every_sample_once_per_epoch(server: str, data: Data, num_workers: int, world_size: int) -> None:
    seen: list[dict[str, Any]] = []
    for rank in range(world_size):
        seen += read_rank(server, data, rank, world_size, num_workers)
    assert_exactly_once((s["__key__"] for s in seen), data.keys)
    for s in seen:
        assert_matches_reference(s, data.reference)
    if world_size == 1:
        # The DataLoader takes one batch from each worker in turn; the
        # worker split makes that the plan's own order.
        assert [s["__key__"] for s in seen] == plan_order(server, data.url, seed=21, epoch=0)


def test_persistent_workers_follow_set_epoch(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=4, seed=5)
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True, collate_fn=as_list)
    epochs = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        epochs.append([s["__key__"] for batch in loader for s in batch])
    for epoch, keys in enumerate(epochs):
        assert keys == plan_order(server, data.url, seed=5, epoch=epoch)
    assert epochs[0] != epochs[1] != epochs[2]


def test_spawned_persistent_workers_follow_set_epoch(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=4, seed=5)
    loader = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True, collate_fn=as_list,
                        multiprocessing_context="spawn")
    for epoch in (2, 3):
        ds.set_epoch(epoch)
        assert [s["__key__"] for batch in loader for s in batch] == plan_order(server, data.url, seed=5, epoch=epoch)


def test_dataset_pickles_outside_of_spawning(server: str, data: Data) -> None:
    import copy
    import pickle

    ds = StokerDataset(data.url, server, batch_size=4, seed=5, epoch=3)
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.epoch == 3 and copy.deepcopy(ds).epoch == 3
    clone.set_epoch(4)
    assert ds.epoch == 3  # a pickled copy is independent


def test_start_epoch_argument(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=8, seed=5, epoch=4)
    assert [s["__key__"] for s in ds] == plan_order(server, data.url, seed=5, epoch=4)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("loader_batch", [4, 3])
def test_stateful_dataloader_resume_yields_exactly_the_rest(
    server: str, data: Data, num_workers: int, loader_batch: int
) -> None:
    def make() -> tuple[StokerDataset, StatefulDataLoader]:
        ds = StokerDataset(data.url, server, batch_size=4, seed=13, epoch=1, rank=1, world_size=2)
        return ds, StatefulDataLoader(ds, batch_size=loader_batch, num_workers=num_workers, collate_fn=as_list)

    _, loader = make()
    full = [s["__key__"] for batch in loader for s in batch]

    _, loader = make()
    it = iter(loader)
    first = [s["__key__"] for _ in range(5) for s in next(it)]
    state = loader.state_dict()
    del it, loader  # the interrupted run ends here

    _, resumed = make()
    resumed.load_state_dict(state)
    rest = [s["__key__"] for batch in resumed for s in batch]

    assert_exactly_once(first + rest, full)
    if loader_batch == 4:  # whole server batches: the order is kept too
        assert first + rest == full
    # A later epoch starts from its beginning.
    again = [s["__key__"] for batch in resumed for s in batch]
    assert sorted(again) == sorted(full)


def test_state_dict_rejects_another_split(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=4, seed=1)
    state = ds.state_dict()
    other = StokerDataset(data.url, server, batch_size=8, seed=1)
    with pytest.raises(stoker.InvalidArgument, match="batch_size"):
        other.load_state_dict(state)


def _decoded_reference(data: Data) -> dict[str, dict[str, Any]]:
    return {s["__key__"]: s for s in wds.WebDataset(data.shard_urls, shardshuffle=False).decode("rgb8")}


def test_decode_matches_webdataset_decoders(server: str, data: Data) -> None:
    ref = _decoded_reference(data)
    ds = StokerDataset(data.url, server, batch_size=16, seed=2, decode=True)
    n = 0
    for s in DataLoader(ds, batch_size=16, num_workers=2, collate_fn=as_list):
        for sample in s:
            r = ref[sample["__key__"]]
            assert isinstance(sample["cls"], int) and sample["cls"] == r["cls"]
            assert sample["txt"] == r["txt"]
            assert sample["json"] == r["json"]
            np.testing.assert_array_equal(sample["npy"], r["npy"])
            assert sample["seg.png"].dtype == np.uint8 and sample["seg.png"].ndim == 3
            np.testing.assert_array_equal(sample["seg.png"], r["seg.png"])
            assert sample["bin"] == r["bin"]  # unknown types stay bytes
            n += 1
    assert n == sum(COUNTS)


def label_only(sample: dict[str, Any]) -> tuple[str, int]:
    return sample["__key__"], int(sample["cls"])


def test_decode_with_a_function_and_default_collate(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=8, decode=label_only)
    batches = list(DataLoader(ds, batch_size=8, num_workers=2))
    keys = [k for b in batches for k in b[0]]
    labels = torch.cat([b[1] for b in batches])
    assert_exactly_once(keys, data.keys)
    assert labels.dtype == torch.int64 and labels.tolist() == [int(data.reference[k]["cls"]) for k in keys]


def test_batched_yields_whole_server_batches(server: str, data: Data) -> None:
    ds = StokerDataset(data.url, server, batch_size=10, seed=3, batched=True)
    batches = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert [len(b) for b in batches] == [10] * (sum(COUNTS) // 10) + [sum(COUNTS) % 10]
    assert_exactly_once((s["__key__"] for b in batches for s in b), data.keys)


def test_drop_last_gives_every_rank_the_same_full_batches(server: str, data: Data) -> None:
    counts = []
    for rank in range(2):
        ds = StokerDataset(data.url, server, batch_size=4, rank=rank, world_size=2, drop_last=True)
        batches = list(DataLoader(ds, batch_size=4, num_workers=3, collate_fn=as_list))
        assert all(len(b) == 4 for b in batches)
        counts.append(len(batches))
    step = 2 * 3 * 4  # ranks x workers x batch
    assert counts == [sum(COUNTS) // step * 3] * 2


def _dist_reader(rank: int, world_size: int, init: str, server: str, url: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=world_size)
    try:
        ds = StokerDataset(url, server, batch_size=4, seed=17)
        assert (ds.rank, ds.world_size) == (rank, world_size)
        keys = [s["__key__"] for b in DataLoader(ds, batch_size=4, num_workers=2, collate_fn=as_list) for s in b]
        Path(out).write_text("\n".join(keys))
    finally:
        torch.distributed.destroy_process_group()


def test_rank_and_world_size_from_torch_distributed(server: str, data: Data, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    init = f"file://{tmp_path / 'pg'}"
    outs = [str(tmp_path / f"rank{r}.txt") for r in range(2)]
    procs = [ctx.Process(target=_dist_reader, args=(r, 2, init, server, data.url, outs[r])) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0, f"rank process exited with {p.exitcode}"
    keys = [k for o in outs for k in Path(o).read_text().split("\n") if k]
    assert_exactly_once(keys, data.keys)
    assert all(Path(o).read_text() for o in outs)


def test_arguments_override_torch_distributed() -> None:
    ds = StokerDataset("s3://b/p/", "127.0.0.1:1", rank=3, world_size=4)
    assert (ds.rank, ds.world_size) == (3, 4)
    with pytest.raises(stoker.InvalidArgument):
        StokerDataset("s3://b/p/", "127.0.0.1:1", rank=4, world_size=4)


def test_server_errors_surface_from_workers(server: str, data: Data) -> None:
    ds = StokerDataset(data.missing_url, server, batch_size=4)
    with pytest.raises(stoker.DatasetNotFound):
        list(ds)
    ds = StokerDataset(data.corrupt_url, server, batch_size=4)
    # In a worker the error crosses the process boundary as DataLoader wraps it.
    with pytest.raises(Exception, match="truncated-000000.tar"):
        list(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=as_list))
