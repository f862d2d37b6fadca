"""Parquet test datasets written by pyarrow, and pyarrow's own reading of
them straight from S3 (pyarrow.fs.S3FileSystem), to compare Stoker with."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.fs
import pyarrow.ipc
import pyarrow.parquet as pq

# (file name, row group sizes, writer options): different sizes, the
# compressions pyarrow writes (snappy is its default), data pages v1 and v2.
FILES: tuple[tuple[str, tuple[int, ...], dict[str, Any]], ...] = (
    ("a-snappy.parquet", (37, 100, 5, 64), {}),
    ("b-zstd.parquet", (50, 1, 70), {"compression": "zstd"}),
    ("c-gzip.parquet", (20, 33), {"compression": "gzip", "data_page_version": "2.0"}),
    ("d-none.parquet", (41,), {"compression": "none", "use_dictionary": False}),
)
# Columns with a tensor form and no nulls.
FIXED = ["id", "f64", "small", "vec", "ts"]
WIDE_DIM = 1024


def table(first: int, n: int) -> pa.Table:
    """Rows with ids first..first+n-1: numbers, nulls, strings, binaries,
    lists, a fixed-size list, a struct and a timestamp."""
    rows = range(first, first + n)
    return pa.table({
        "id": pa.array(list(rows), pa.int64()),
        "f32": pa.array([None if i % 7 == 0 else i / 3 for i in rows], pa.float32()),
        "f64": pa.array([i * 1.5 for i in rows], pa.float64()),
        "small": pa.array([i % 100 - 50 for i in rows], pa.int8()),
        "flag": pa.array([None if i % 11 == 0 else i % 2 == 0 for i in rows], pa.bool_()),
        "s": pa.array([None if i % 5 == 0 else f"row-{i}-" + "x" * (i % 13) for i in rows], pa.string()),
        "b": pa.array([bytes([i % 256, (i * 7) % 256]) * (i % 4) for i in rows], pa.binary()),
        "tags": pa.array([None if i % 9 == 0 else [f"t{j}" for j in range(i % 4)] for i in rows],
                         pa.list_(pa.string())),
        "vec": pa.array([[float(i), i + 0.5, -1.0, 2.0] for i in rows], pa.list_(pa.float32(), 4)),
        "nested": pa.array([None if i % 13 == 0 else {"a": i, "b": [i, i + 1][: i % 3]} for i in rows],
                           pa.struct([("a", pa.int32()), ("b", pa.list_(pa.int64()))])),
        "ts": pa.array([datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i * 3601) for i in rows],
                       pa.timestamp("us")),
    })


def write_parquet(path: Path, first: int, sizes: Sequence[int], **options: Any) -> int:
    """One Parquet file with a row group of each size; returns its rows."""
    with pq.ParquetWriter(path, table(first, 1).schema, **options) as w:
        for n in sizes:
            w.write_table(table(first, n), row_group_size=n)
            first += n
    return sum(sizes)


def wide_table(first: int, n: int, seed: int = 5) -> pa.Table:
    """Rows of WIDE_DIM float32s (4 KiB each): batches of more than 8 MiB
    come in several messages."""
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((n, WIDE_DIM), dtype=np.float32)
    return pa.table({
        "id": pa.array(np.arange(first, first + n, dtype=np.int64)),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), WIDE_DIM),
    })


def s3_filesystem(endpoint: str, access: str, secret: str, region: str) -> pyarrow.fs.S3FileSystem:
    """pyarrow's own S3 client, pointed at the test server."""
    host = endpoint.split("://", 1)[1]
    return pyarrow.fs.S3FileSystem(access_key=access, secret_key=secret, region=region, endpoint_override=host,
                                   scheme="http", allow_bucket_creation=True)


@dataclass
class ColumnarData:
    url: str  # the Parquet dataset (a prefix)
    objects: list[str]  # its objects' s3:// URLs
    rows: dict[int, dict[str, Any]]  # id -> the row as pyarrow reads it from S3 (to_pylist)
    object_of: dict[int, str]  # id -> the s3:// URL of the object holding it
    schema: pa.Schema  # as pyarrow reads it
    row_groups: int
    wide_url: str  # one file of wide rows
    wide: pa.Table  # pyarrow's reading of it
    ipc_url: str  # an Arrow IPC file of record batches of 60 rows and an lz4 Feather file
    ipc_stream_url: str  # an Arrow IPC stream
    ipc_rows: dict[int, dict[str, Any]]  # id -> row, as pyarrow reads ipc_url's objects from S3
    ipc_stream_rows: dict[int, dict[str, Any]]

    @property
    def ids(self) -> set[int]:
        return set(self.rows)


def make(s3: Any, fs: pyarrow.fs.S3FileSystem, bucket: str, folder: Path) -> ColumnarData:
    """Write the datasets with pyarrow, upload them with boto3, and read
    them back with pyarrow from S3."""
    folder.mkdir(parents=True, exist_ok=True)
    s3.create_bucket(Bucket=bucket)
    first = 0
    objects = []
    for name, sizes, options in FILES:
        path = folder / name
        first += write_parquet(path, first, sizes, **options)
        s3.put_object(Bucket=bucket, Key=f"pq/{name}", Body=path.read_bytes())
        objects.append(f"s3://{bucket}/pq/{name}")
    wide_path = folder / "wide.parquet"
    with pq.ParquetWriter(wide_path, wide_table(0, 1).schema, compression="zstd") as w:
        start = 0
        for n in (1000, 1500, 500):
            w.write_table(wide_table(start, n, seed=start), row_group_size=n)
            start += n
    s3.put_object(Bucket=bucket, Key="wide/wide.parquet", Body=wide_path.read_bytes())

    rows: dict[int, dict[str, Any]] = {}
    object_of: dict[int, str] = {}
    schema = None
    groups = 0
    for url in objects:
        f = pq.ParquetFile(url[len("s3://"):], filesystem=fs)
        groups += f.num_row_groups
        t = f.read()
        schema = t.schema
        for row in t.to_pylist():
            rows[row["id"]] = row
            object_of[row["id"]] = url
    assert schema is not None and len(rows) == first
    wide = pq.read_table(f"{bucket}/wide/wide.parquet", filesystem=fs)

    ipc = folder / "ipc"
    ipc.mkdir()
    t = table(0, 206)
    with pa.ipc.new_file(ipc / "rows.arrow", t.schema) as w:
        for b in t.to_batches(max_chunksize=60):
            w.write_batch(b)
    feather.write_feather(table(206, 100), ipc / "more-lz4.feather", compression="lz4", chunksize=40)
    with pa.ipc.new_stream(ipc / "rows.arrows", t.schema) as w:
        for b in t.to_batches(max_chunksize=70):
            w.write_batch(b)
    for name, prefix in (("rows.arrow", "ipc"), ("more-lz4.feather", "ipc"), ("rows.arrows", "ipcs")):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=(ipc / name).read_bytes())
    ipc_rows: dict[int, dict[str, Any]] = {}
    for name in ("rows.arrow", "more-lz4.feather"):
        with fs.open_input_file(f"{bucket}/ipc/{name}") as f:
            ipc_rows.update((r["id"], r) for r in pa.ipc.open_file(f).read_all().to_pylist())
    with fs.open_input_stream(f"{bucket}/ipcs/rows.arrows") as f:
        ipc_stream_rows = {r["id"]: r for r in pa.ipc.open_stream(f).read_all().to_pylist()}
    return ColumnarData(url=f"s3://{bucket}/pq/", objects=objects, rows=rows, object_of=object_of, schema=schema,
                        row_groups=groups, wide_url=f"s3://{bucket}/wide/", wide=wide,
                        ipc_url=f"s3://{bucket}/ipc/", ipc_stream_url=f"s3://{bucket}/ipcs/",
                        ipc_rows=ipc_rows, ipc_stream_rows=ipc_stream_rows)
