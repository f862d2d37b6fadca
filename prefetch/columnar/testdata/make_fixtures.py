"""Writes the pyarrow fixtures of prefetch/columnar and cmd/stokerd tests.

Run from this folder with pyarrow installed (pip install pyarrow):

    python3 make_fixtures.py

Every file holds the same table (different row counts per row group or
record batch, nulls, lists, structs, maps, dictionaries, timestamps,
decimals); every file reads as the same 206 rows (ids 0..205); expected.jsonl lists
them in file order, with the values of Table.to_pylist() in JSON: bytes
as base64, dates and datetimes by isoformat(), decimals as strings, NaN and
infinities as strings. The Go tests compare what Stoker serves with it.
"""
import base64
import datetime
import decimal
import json
import math
import os

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

OUT = "pyarrow"


def table(n, seed):
    rows = range(seed, seed + n)
    return pa.table({
        "id": pa.array(list(rows), pa.int64()),
        "f32": pa.array([None if i % 7 == 0 else i / 3 for i in rows], pa.float32()),
        "f64": pa.array([float("nan") if i % 50 == 3 else i * 1.5 for i in rows], pa.float64()),
        "small": pa.array([i % 100 - 50 for i in rows], pa.int8()),
        "flag": pa.array([None if i % 11 == 0 else i % 2 == 0 for i in rows], pa.bool_()),
        "s": pa.array([None if i % 5 == 0 else f"row-{i}-" + "x" * (i % 13) for i in rows], pa.string()),
        "b": pa.array([bytes([i % 256, (i * 7) % 256]) * (i % 4) for i in rows], pa.binary()),
        "tags": pa.array([None if i % 9 == 0 else [f"t{j}" for j in range(i % 4)] for i in rows], pa.list_(pa.string())),
        "vec": pa.array([[float(i), i + 0.5, -1.0, 2.0] for i in rows], pa.list_(pa.float32(), 4)),
        "nested": pa.array([None if i % 13 == 0 else {"a": i, "b": [i, i + 1][: i % 3]} for i in rows],
                           pa.struct([("a", pa.int32()), ("b", pa.list_(pa.int64()))])),
        "m": pa.array([[(f"k{j}", i + j) for j in range(i % 3)] for i in rows], pa.map_(pa.string(), pa.int32())),
        "cat": pa.array([["red", "green", "blue"][i % 3] for i in rows]).dictionary_encode(),
        "ts": pa.array([datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=i * 3601, microseconds=i % 3)
                        for i in rows], pa.timestamp("us")),
        "day": pa.array([datetime.date(2020, 1, 1) + datetime.timedelta(days=i) for i in rows], pa.date32()),
        "dec": pa.array([decimal.Decimal(i) / 100 for i in rows], pa.decimal128(10, 2)),
    })


def jsonable(v):
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def parquet(name, sizes, **kw):
    seed = 0
    with pq.ParquetWriter(os.path.join(OUT, name), table(1, 0).schema, **kw) as w:
        for n in sizes:
            w.write_table(table(n, seed), row_group_size=n)
            seed += n


def main():
    os.makedirs(OUT, exist_ok=True)
    sizes = [37, 100, 5, 64]
    parquet("default.parquet", sizes)
    parquet("zstd.parquet", [50, 50, 106], compression="zstd")
    parquet("gzip.parquet", [1, 120, 85], compression="gzip", data_page_version="2.0")
    parquet("plain.parquet", [206], compression="none", use_dictionary=False,
            column_encoding={"id": "DELTA_BINARY_PACKED", "s": "DELTA_BYTE_ARRAY", "b": "DELTA_LENGTH_BYTE_ARRAY"})
    t = table(206, 0)
    with pa.ipc.new_file(os.path.join(OUT, "batches.arrow"), t.schema) as w:
        for b in t.to_batches(max_chunksize=60):
            w.write_batch(b)
    feather.write_feather(t, os.path.join(OUT, "lz4.feather"), compression="lz4", chunksize=90)
    with pa.ipc.new_stream(os.path.join(OUT, "stream.arrows"), t.schema) as w:
        for b in t.to_batches(max_chunksize=70):
            w.write_batch(b)
    expected = None
    for name in sorted(os.listdir(OUT)):
        path = os.path.join(OUT, name)
        if name.endswith(".parquet"):
            read = pq.read_table(path)
        elif name.endswith(".arrows"):
            read = pa.ipc.open_stream(path).read_all()
        elif name.endswith((".arrow", ".feather")):
            read = pa.ipc.open_file(path).read_all()
        else:
            continue
        rows = [json.dumps(jsonable(r), sort_keys=True) for r in read.to_pylist()]
        assert expected is None or rows == expected, name + " reads differently"
        expected = rows
    with open(os.path.join(OUT, "expected.jsonl"), "w") as f:
        f.write("".join(r + "\n" for r in expected))

if __name__ == "__main__":
    main()
