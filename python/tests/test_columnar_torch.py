"""StokerDataset over a columnar (Parquet) dataset, through real
DataLoaders, stokerd and versitygw; rows compared with pyarrow's reading
of the same S3 objects."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import torch
from check import assert_exactly_once
from columnar_data import FIXED, ColumnarData
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

import stoker
from stoker.torch import StokerDataset

EPOCH0 = datetime.datetime(1970, 1, 1)


def as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row dict with tensors as Python values, comparable with to_pylist."""
    return {k: v.tolist() if isinstance(v, torch.Tensor) else v for k, v in row.items()}


def assert_row_matches(row: dict[str, Any], columnar: ColumnarData) -> None:
    got = plain(row)
    want = columnar.rows[got["id"]]
    assert got.pop("__url__") == columnar.object_of[got["id"]]
    # Timestamps come as their int64 microseconds.
    ts = want["ts"]
    assert got.pop("ts") == (ts - EPOCH0) // datetime.timedelta(microseconds=1)
    assert got == {k: v for k, v in want.items() if k != "ts"}


@pytest.mark.parametrize("world_size", [1, 2])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_every_row_once_per_epoch(server: str, columnar: ColumnarData, num_workers: int, world_size: int) -> None:
    seen: list[dict[str, Any]] = []
    for rank in range(world_size):
        ds = StokerDataset(columnar.url, server, batch_size=8, seed=17, rank=rank, world_size=world_size)
        seen += [r for b in DataLoader(ds, batch_size=8, num_workers=num_workers, collate_fn=as_list) for r in b]
    assert_exactly_once((int(r["id"]) for r in seen), columnar.ids)
    for r in seen:
        # Tensors for the columns that have a tensor form, None for nulls,
        # Python values for the rest.
        assert isinstance(r["vec"], torch.Tensor) and r["vec"].shape == (4,)
        if num_workers == 0:  # a view of the batch's tensor (workers pickle rows to the main process)
            assert r["vec"]._is_view() and r["id"]._is_view()
        assert isinstance(r["id"], torch.Tensor) and r["id"].dtype == torch.int64
        assert r["f32"] is None or r["f32"].dtype == torch.float32
        assert r["flag"] is None or r["flag"].dtype == torch.bool
        assert r["s"] is None or isinstance(r["s"], str)
        assert_row_matches(r, columnar)
    if world_size == 1:
        with stoker.Client(server) as c:
            plan = [r["id"] for b in c.stream(columnar.url, batch_size=8, seed=17) for r in b.record_batch().to_pylist()]
        assert [int(r["id"]) for r in seen] == plan


def test_projection_and_default_collate(server: str, columnar: ColumnarData) -> None:
    ds = StokerDataset(columnar.url, server, batch_size=16, seed=3, columns=["vec", "id", "small"])
    n = 0
    for batch in DataLoader(ds, batch_size=16, num_workers=2):
        assert list(batch) == ["__url__", "vec", "id", "small"]
        assert batch["vec"].shape == (len(batch["id"]), 4) and batch["vec"].dtype == torch.float32
        for i, vec, small in zip(batch["id"].tolist(), batch["vec"].tolist(), batch["small"].tolist()):
            assert (vec, small) == (columnar.rows[i]["vec"], columnar.rows[i]["small"])
        n += len(batch["id"])
    assert n == len(columnar.rows)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_batched_yields_tensors(server: str, columnar: ColumnarData, num_workers: int) -> None:
    ds = StokerDataset(columnar.url, server, batch_size=32, seed=8, batched=True, columns=FIXED)
    ids: list[int] = []
    for batch in DataLoader(ds, batch_size=None, num_workers=num_workers):
        assert list(batch) == [*FIXED, "__url__"]
        n = len(batch["id"])
        assert 0 < n <= 32 and batch["vec"].shape == (n, 4) and batch["ts"].dtype == torch.int64
        for r, i in enumerate(batch["id"].tolist()):
            want = columnar.rows[i]
            assert batch["__url__"][r] == columnar.object_of[i]
            assert batch["f64"][r].item() == want["f64"] and batch["vec"][r].tolist() == want["vec"]
        ids += batch["id"].tolist()
    assert_exactly_once(ids, columnar.ids)


def test_batched_refuses_a_column_without_a_tensor_form(server: str, columnar: ColumnarData) -> None:
    ds = StokerDataset(columnar.url, server, batch_size=32, batched=True, columns=["id", "nested"])
    with pytest.raises(stoker.InvalidArgument, match="'nested'"):
        next(iter(DataLoader(ds, batch_size=None)))
    ds = StokerDataset(columnar.url, server, batch_size=32, batched=True, columns=["id", "f32"])
    with pytest.raises(stoker.InvalidArgument, match="'f32'.*nulls"):
        list(DataLoader(ds, batch_size=None))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_yields_exactly_the_rest(server: str, columnar: ColumnarData, num_workers: int) -> None:
    def make() -> StatefulDataLoader:
        ds = StokerDataset(columnar.url, server, batch_size=8, seed=13, epoch=1, columns=["id", "s"])
        return StatefulDataLoader(ds, batch_size=5, num_workers=num_workers, collate_fn=as_list)

    full = [int(r["id"]) for b in make() for r in b]
    loader = make()
    it = iter(loader)
    first = [int(r["id"]) for _ in range(7) for r in next(it)]
    state = loader.state_dict()
    del it, loader

    resumed = make()
    resumed.load_state_dict(state)
    rest = [int(r["id"]) for b in resumed for r in b]
    assert_exactly_once(first + rest, full)
    assert set(full) == columnar.ids
