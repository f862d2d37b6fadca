"""stoker.collate.collate: ragged values padded, nested or listed; rows of
a real Parquet dataset with list columns through a DataLoader."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest
import torch
from columnar_data import ColumnarData
from torch.utils.data import DataLoader, default_collate

import stoker
from stoker.collate import collate
from stoker.torch import StokerDataset


def test_pads_ragged_values_and_reports_their_sizes() -> None:
    batch = [
        {"__key__": "a", "ids": [1, 2, 3], "img": np.zeros((2, 2), np.uint8), "y": 1, "tags": ["u"]},
        {"__key__": "b", "ids": [4], "img": np.ones((3, 1), np.uint8), "y": 2, "tags": []},
        {"__key__": "c", "ids": None, "img": np.ones((1, 2), np.uint8), "y": 3, "tags": ["v", "w"]},
    ]
    out = collate(batch, pad_value=-1)
    assert out["__key__"] == ["a", "b", "c"]
    assert out["ids"].tolist() == [[1, 2, 3], [4, -1, -1], [-1, -1, -1]]  # a null is empty
    assert out["__lengths__"]["ids"].tolist() == [3, 1, 0]
    assert out["img"].shape == (3, 3, 2) and out["img"].dtype == torch.uint8
    assert out["__lengths__"]["img"].tolist() == [[2, 2], [3, 1], [1, 2]]
    assert out["img"][1, :, 0].tolist() == [1, 1, 1] and out["img"][1, :, 1].tolist() == [255, 255, 255]
    assert out["y"].tolist() == [1, 2, 3] and "y" not in out["__lengths__"]
    assert out["tags"] == [["u"], [], ["v", "w"]]
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([{"ids": [1, 2, 3]}, {"ids": [4]}])


def test_nested_and_list() -> None:
    seqs = [{"x": torch.arange(3.0)}, {"x": torch.arange(1.0)}]
    nested = collate(seqs, ragged="nested")["x"]
    assert nested.is_nested and [t.tolist() for t in nested.unbind()] == [[0.0, 1.0, 2.0], [0.0]]
    listed = collate(seqs, ragged="list")["x"]
    assert [t.tolist() for t in listed] == [[0.0, 1.0, 2.0], [0.0]]
    # Equal shapes stack as default_collate does; tuples collate by position.
    x, y = collate([(torch.ones(2), 1), (torch.zeros(2), 0)])
    assert x.shape == (2, 2) and y.tolist() == [1, 0]
    with pytest.raises(stoker.InvalidArgument, match="ragged='ragged'"):
        collate(seqs, ragged="ragged")


@pytest.mark.parametrize("num_workers", [0, 2])
def test_columnar_rows_with_list_columns(server: str, columnar: ColumnarData, num_workers: int) -> None:
    cols = ["id", "nested", "tags", "vec"]
    tags = StokerDataset(columnar.url, server, batch_size=16, seed=3, columns=["id", "tags"])
    with pytest.raises(RuntimeError, match="equal size"):  # what the DataLoader does by default
        for _ in DataLoader(tags, batch_size=16, num_workers=0):
            pass
    ds = StokerDataset(columnar.url, server, batch_size=16, seed=3, columns=cols)
    n = 0
    for batch in DataLoader(ds, batch_size=16, num_workers=num_workers,
                            collate_fn=functools.partial(collate, pad_value=-7)):
        ids = batch["id"].tolist()
        assert batch["vec"].shape == (len(ids), 4)
        b, lengths = batch["nested"]["b"], batch["nested"]["__lengths__"]["b"]
        assert b.dtype == torch.int64 and b.shape[0] == len(ids)
        for row, i in enumerate(ids):
            want: dict[str, Any] = columnar.rows[i]
            got_b = b[row, : lengths[row]].tolist()
            assert got_b == ((want["nested"] or {}).get("b") or [])
            assert all(v == -7 for v in b[row, lengths[row]:].tolist())
            assert batch["nested"]["a"][row] == (want["nested"] or {}).get("a")
            assert batch["tags"][row] == want["tags"]
            assert batch["vec"][row].tolist() == want["vec"]
        n += len(ids)
    assert n == len(columnar.rows)
