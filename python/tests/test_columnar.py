"""Columnar (Parquet) datasets through stoker.Client and stoker.arrow, with
files written by pyarrow, a real stokerd and a real versitygw; every value
is compared with pyarrow's own reading of the same S3 objects."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from columnar_data import FIXED, WIDE_DIM, ColumnarData

import stoker
from stoker import arrow
from stoker.split import batch_range


def read_epoch(server: str, url: str, **kw: Any) -> list[stoker.Batch]:
    with stoker.Client(server) as c:
        return list(c.stream(url, **kw))


def rows_of(batches: list[stoker.Batch]) -> list[dict[str, Any]]:
    return [r for b in batches for r in b.record_batch().to_pylist()]


def assert_base_is_message(view: np.ndarray, message: bytes) -> None:
    """view owns nothing and shares memory with the received message."""
    assert not view.flags.owndata
    assert not view.flags.writeable
    assert np.shares_memory(view, np.frombuffer(message, dtype=np.uint8))


def test_open_dataset_has_schema_and_row_groups(server: str, columnar: ColumnarData) -> None:
    with stoker.Client(server) as c:
        info = c.open_dataset(columnar.url)
    assert info.format == "parquet"
    assert info.num_samples == len(columnar.rows)
    # A unit per row group, each with its byte range in the object.
    assert len(info.shards) == columnar.row_groups
    assert {s.object for s in info.shards} == set(columnar.objects)
    for obj in columnar.objects:
        parts = [s for s in info.shards if s.object == obj]
        assert [s.part for s in parts] == list(range(len(parts)))
        assert all(s.length > 0 and 0 < s.offset < s.size for s in parts)
    assert sum(s.samples for s in info.shards) == len(columnar.rows)
    assert arrow.schema(info).equals(columnar.schema, check_metadata=False)
    assert [(c.name, c.nullable) for c in info.columns] == [(f.name, f.nullable) for f in columnar.schema]
    projected = arrow.schema(info, ["vec", "id"])
    assert projected.names == ["vec", "id"]
    with pytest.raises(stoker.InvalidArgument, match="'nope'"):
        arrow.schema(info, ["id", "nope"])


@pytest.mark.parametrize("world_size", [1, 3])
@pytest.mark.parametrize("batch_size", [1, 16, 500])
def test_every_row_once_per_epoch(server: str, columnar: ColumnarData, world_size: int, batch_size: int) -> None:
    with stoker.Client(server) as c:
        info = c.open_dataset(columnar.url)
    seen: list[dict[str, Any]] = []
    for rank in range(world_size):
        for b in read_epoch(server, columnar.url, batch_size=batch_size, seed=4, rank=rank, world_size=world_size):
            assert b.columnar and not b.samples
            rows = b.record_batch().to_pylist()
            assert len(rows) == b.num_rows == len(b.row_shards) <= batch_size
            for row, obj in zip(rows, b.row_objects(info)):
                assert obj == columnar.object_of[row["id"]]
            seen += rows
    counts = Counter(r["id"] for r in seen)
    assert set(counts) == columnar.ids and set(counts.values()) == {1}
    for r in seen:
        assert r == columnar.rows[r["id"]]


def test_positions_follow_the_plan(server: str, columnar: ColumnarData) -> None:
    batches = read_epoch(server, columnar.url, batch_size=10, seed=9, epoch=2, world_size=2, rank=1)
    for b in batches:
        lo, hi = batch_range(len(columnar.rows), 0, b.step, 1, 2, 10)
        assert (b.first_position, b.num_rows) == (lo, hi - lo)
    ids = [r["id"] for r in rows_of(batches)]
    # The same epoch again is the same order; another epoch another one.
    assert ids == [r["id"] for r in rows_of(read_epoch(server, columnar.url, batch_size=10, seed=9, epoch=2,
                                                       world_size=2, rank=1))]
    assert ids != [r["id"] for r in rows_of(read_epoch(server, columnar.url, batch_size=10, seed=9, epoch=3,
                                                       world_size=2, rank=1))]


def test_resume_from_cursor(server: str, columnar: ColumnarData) -> None:
    whole = read_epoch(server, columnar.url, batch_size=32, seed=3)
    cursor = whole[4].cursor
    rest = read_epoch(server, columnar.url, batch_size=32, seed=3, start=cursor)
    assert [r["id"] for r in rows_of(rest)] == [r["id"] for r in rows_of(whole[5:])]


def test_projection(server: str, columnar: ColumnarData) -> None:
    cols = ["vec", "s", "id", "tags"]
    batches = read_epoch(server, columnar.url, batch_size=64, columns=cols, shuffle=False)
    seen = 0
    for b in batches:
        rb = b.record_batch()
        assert rb.schema.names == cols
        for row in rb.to_pylist():
            want = columnar.rows[row["id"]]
            assert row == {k: want[k] for k in cols}
            seen += 1
    assert seen == len(columnar.rows)
    with pytest.raises(stoker.InvalidArgument, match="nope"):
        read_epoch(server, columnar.url, batch_size=8, columns=["id", "nope"])


def test_numpy_is_zero_copy_for_fixed_width(server: str, columnar: ColumnarData) -> None:
    ref = pa.Table.from_pylist(list(columnar.rows.values()), schema=columnar.schema)
    by_id = {int(i): k for k, i in enumerate(ref.column("id").to_numpy())}
    n = 0
    for b in read_epoch(server, columnar.url, batch_size=50, seed=1):
        assert len(b.arrow_ipc) == 1
        cols = b.to_numpy()
        assert list(cols) == columnar.schema.names
        # Fixed-width columns and fixed-size lists: views of the message.
        for name in FIXED:
            assert_base_is_message(cols[name], b.arrow_ipc[0])
        assert cols["vec"].shape == (b.num_rows, 4) and cols["vec"].dtype == np.float32
        assert cols["ts"].dtype == np.dtype("datetime64[us]")
        # Values are pyarrow's, row by row (the reference in this batch's order).
        take = ref.take(pa.array([by_id[int(i)] for i in cols["id"]]))
        for name in columnar.schema.names:
            want = take.column(name).to_numpy(zero_copy_only=False)
            got = cols[name]
            if name == "vec":
                np.testing.assert_array_equal(got, np.stack(want))
            elif want.dtype == object:
                assert _plain(got) == _plain(want), name
            else:
                np.testing.assert_array_equal(got, want, err_msg=name)
        # Columns with nulls or without a fixed layout are converted.
        assert cols["s"].dtype == object and cols["tags"].dtype == object
        n += b.num_rows
    assert n == len(columnar.rows)


def _plain(x: Any) -> Any:
    """numpy's object values (arrays inside, dicts of arrays) as plain lists."""
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def test_parts_are_joined(server: str, columnar: ColumnarData) -> None:
    """A batch of 12 MB comes in several messages and is one RecordBatch."""
    want = {int(i): k for k, i in enumerate(columnar.wide.column("id").to_numpy())}
    emb = np.stack(columnar.wide.column("emb").to_numpy(zero_copy_only=False))
    batches = read_epoch(server, columnar.wide_url, batch_size=len(want), seed=2)
    assert len(batches) == 1
    b = batches[0]
    assert len(b.arrow_ipc) > 1 and b.parts == len(b.arrow_ipc)
    rb = b.record_batch()
    assert rb.num_rows == len(want) == len(b.row_shards)
    cols = arrow.to_numpy(rb)
    assert cols["emb"].shape == (len(want), WIDE_DIM)
    # A view of the joined batch's buffer, not another copy.
    values = rb.column("emb").flatten().buffers()[1]
    assert not cols["emb"].flags.owndata
    assert np.shares_memory(cols["emb"], np.frombuffer(values, dtype=np.uint8))
    assert sorted(cols["id"].tolist()) == sorted(want)
    np.testing.assert_array_equal(cols["emb"], emb[[want[int(i)] for i in cols["id"]]])


def test_torch_tensors_share_the_message(server: str, columnar: ColumnarData) -> None:
    torch = pytest.importorskip("torch")
    b = next(iter(read_epoch(server, columnar.url, batch_size=40, seed=6, columns=FIXED + ["flag"])))
    with pytest.raises(stoker.InvalidArgument, match="'flag'.*nulls"):
        b.to_torch()
    b = next(iter(read_epoch(server, columnar.url, batch_size=40, seed=6, columns=FIXED)))
    t = b.to_torch()
    assert list(t) == FIXED
    assert t["vec"].shape == (40, 4) and t["vec"].dtype == torch.float32
    assert t["small"].dtype == torch.int8 and t["ts"].dtype == torch.int64
    msg = np.frombuffer(b.arrow_ipc[0], dtype=np.uint8)
    lo, hi = msg.ctypes.data, msg.ctypes.data + msg.nbytes
    for name in FIXED:
        assert lo <= t[name].data_ptr() < hi, name
    for r, i in enumerate(t["id"].tolist()):
        want = columnar.rows[i]
        assert t["vec"][r].tolist() == want["vec"]
        assert t["f64"][r].item() == want["f64"] and t["small"][r].item() == want["small"]
    with pytest.raises(stoker.InvalidArgument, match="'tags'"):
        next(iter(read_epoch(server, columnar.url, batch_size=40, columns=["id", "tags"]))).to_torch()


@pytest.mark.parametrize("kind", ["arrow", "arrows"])
def test_arrow_ipc_datasets(server: str, columnar: ColumnarData, kind: str) -> None:
    """IPC files (an Arrow file and an lz4 Feather file) and IPC streams:
    a unit per record batch, every row once, pyarrow's values."""
    url, want = ((columnar.ipc_url, columnar.ipc_rows) if kind == "arrow"
                 else (columnar.ipc_stream_url, columnar.ipc_stream_rows))
    with stoker.Client(server) as c:
        info = c.open_dataset(url)
    assert info.format == kind and info.num_samples == len(want)
    assert sorted(s.samples for s in info.shards) == (sorted([60] * 3 + [26] + [40] * 2 + [20]) if kind == "arrow"
                                                      else sorted([70, 70, 66]))
    seen = []
    for rank in range(2):
        for b in read_epoch(server, url, batch_size=24, seed=5, rank=rank, world_size=2, columns=["id", "vec", "s"]):
            cols = b.to_numpy()
            if b.num_rows:  # a rank's batch at the short last step may be empty
                assert_base_is_message(cols["vec"], b.arrow_ipc[0])
            for row in b.record_batch().to_pylist():
                assert row == {k: want[row["id"]][k] for k in ("id", "vec", "s")}
                seen.append(row["id"])
    assert sorted(seen) == sorted(want)


def test_webdataset_batches_are_not_columnar(server: str, data: Any) -> None:
    b = next(iter(read_epoch(server, data.url, batch_size=4)))
    assert not b.columnar
    with pytest.raises(stoker.InvalidArgument, match="not columnar"):
        b.record_batch()
