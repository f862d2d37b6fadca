"""stoker.tf over a columnar (Parquet) dataset: the signature comes from the
Arrow schema, and the values are pyarrow's reading of the same S3 objects."""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from check import assert_exactly_once
from columnar_data import ColumnarData

import stoker
import stoker.tf

COLUMNS = ["id", "f64", "small", "vec", "ts", "b"]
US = datetime.timedelta(microseconds=1)


def check_row(row: dict[str, Any], columnar: ColumnarData) -> int:
    i = int(row["id"])
    want = columnar.rows[i]
    assert row["__url__"].decode() == columnar.object_of[i]
    assert float(row["f64"]) == want["f64"] and int(row["small"]) == want["small"]
    assert row["vec"].tolist() == want["vec"]
    assert int(row["ts"]) == (want["ts"] - datetime.datetime(1970, 1, 1)) // US
    assert row["b"] == want["b"]
    return i


def test_signature_from_the_schema(server: str, columnar: ColumnarData) -> None:
    ds = stoker.tf.dataset(columnar.url, server, batch_size=16, columns=COLUMNS)
    spec = ds.element_spec
    assert list(spec) == ["__url__", *COLUMNS]
    assert spec["id"].shape == () and spec["id"].dtype == tf.int64  # rows are unbatched: spec names do not survive
    assert spec["small"].dtype == tf.int8 and spec["f64"].dtype == tf.float64
    assert spec["vec"].shape == (4,) and spec["vec"].dtype == tf.float32
    assert spec["ts"].dtype == tf.int64 and spec["b"].dtype == tf.string and spec["__url__"].dtype == tf.string
    batched = stoker.tf.dataset(columnar.url, server, batch_size=16, columns=COLUMNS, batched=True).element_spec
    assert batched["vec"].shape.as_list() == [None, 4] and batched["id"].shape.as_list() == [None]


@pytest.mark.parametrize("world_size", [1, 2])
def test_every_row_once_per_epoch(server: str, columnar: ColumnarData, world_size: int) -> None:
    seen = []
    for rank in range(world_size):
        ds = stoker.tf.dataset(columnar.url, server, batch_size=16, seed=2, rank=rank, world_size=world_size,
                               columns=COLUMNS)
        seen += [check_row(row, columnar) for row in ds.as_numpy_iterator()]
    assert_exactly_once(seen, columnar.ids)


def test_batched_and_rebatched(server: str, columnar: ColumnarData) -> None:
    ds = stoker.tf.dataset(columnar.url, server, batch_size=50, seed=4, columns=COLUMNS, batched=True)
    seen = []
    for batch in ds.as_numpy_iterator():
        n = len(batch["id"])
        assert batch["vec"].shape == (n, 4) and batch["vec"].dtype == np.float32
        seen += [check_row({k: v[r] for k, v in batch.items()}, columnar) for r in range(n)]
    assert_exactly_once(seen, columnar.ids)
    # Rows rebatched by tf.data keep their types.
    rows = stoker.tf.dataset(columnar.url, server, batch_size=50, seed=4, columns=["id", "vec"]).batch(64)
    first = next(iter(rows))
    assert first["vec"].shape == (64, 4) and first["id"].dtype == tf.int64


def test_unmapped_column_is_refused_by_name(server: str, columnar: ColumnarData) -> None:
    with pytest.raises(stoker.InvalidArgument, match="'tags'"):
        stoker.tf.dataset(columnar.url, server, columns=["id", "tags"])
    with pytest.raises(stoker.InvalidArgument, match="'tags'.*'nested'"):
        stoker.tf.dataset(columnar.url, server)  # all columns
    with pytest.raises(stoker.InvalidArgument, match="'nope'"):
        stoker.tf.dataset(columnar.url, server, columns=["id", "nope"])


def test_a_null_fails_naming_the_column(server: str, columnar: ColumnarData) -> None:
    ds = stoker.tf.dataset(columnar.url, server, batch_size=32, columns=["id", "s"])
    with pytest.raises(tf.errors.OpError, match="'s'.*null"):
        for _ in ds:
            pass
