#!/usr/bin/env python3
"""Epoch throughput of a Parquet dataset as numpy arrays: Stoker next to pyarrow.dataset.

Both read the same Parquet files from the same S3 server in the same run:
Stoker through stokerd's warm cache to the Python client (each batch's
columns as numpy arrays, stoker.arrow.to_numpy: views of the received
Arrow buffers for fixed-width columns), the baseline with
``pyarrow.dataset`` reading the files straight from S3
(``pyarrow.fs.S3FileSystem`` with ``endpoint_override``, scheme http), each
of its batches turned into numpy the same way. pyarrow reads in file
order, with its own thread pool; Stoker is measured twice: shuffled epochs
(rows permuted across row groups, what training reads) and in file order
(``shuffle=False``, the same order as pyarrow). Each runs --repeat epochs
after one warm-up epoch; the table shows medians, rows/s, MB/s (bytes of
the numpy arrays) and the ratios Stoker / pyarrow.

By default it is self-contained: it starts versitygw and a stokerd built
from this repository on loopback ports and writes synthetic Parquet files
with pyarrow (an int64 id, an int32 label, a float64 score and a
fixed-size list of --dim float32s per row). Point it at running servers
with --server, --url and the standard AWS variables (AWS_ENDPOINT_URL_S3,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).

    python bench/bench_columnar.py --files 8 --row-groups 4 --rows 4096 --dim 256
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs
import pyarrow.parquet as pq
from botocore.config import Config

import stoker
from stoker import arrow

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test suite's server helpers


def write_synthetic(folder: Path, files: int, row_groups: int, rows: int, dim: int, compression: str) -> list[Path]:
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    first = 0
    for f in range(files):
        path = folder / f"part-{f:05d}.parquet"
        tables = []
        for _ in range(row_groups):
            emb = rng.standard_normal((rows, dim), dtype=np.float32)
            tables.append(pa.table({
                "id": pa.array(np.arange(first, first + rows, dtype=np.int64)),
                "label": pa.array(rng.integers(0, 1000, rows, dtype=np.int32)),
                "score": pa.array(rng.random(rows)),
                "emb": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
            }))
            first += rows
        with pq.ParquetWriter(path, tables[0].schema, compression=compression) as w:
            for t in tables:
                w.write_table(t, row_group_size=rows)
        paths.append(path)
    return paths


def s3_filesystem() -> pyarrow.fs.S3FileSystem:
    endpoint = os.environ["AWS_ENDPOINT_URL_S3"]
    scheme, _, host = endpoint.partition("://")
    return pyarrow.fs.S3FileSystem(
        access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ.get("AWS_REGION", "us-east-1"), endpoint_override=host, scheme=scheme)


def consume(batches: Iterable[pa.RecordBatch]) -> tuple[int, int, float]:
    """Rows, decoded bytes and seconds of one epoch, each batch as numpy."""
    start = time.perf_counter()
    rows = nbytes = 0
    for rb in batches:
        cols = arrow.to_numpy(rb)
        rows += rb.num_rows
        nbytes += sum(a.nbytes for a in cols.values())
    return rows, nbytes, time.perf_counter() - start


def run(name: str, epoch: Callable[[int], Iterable[pa.RecordBatch]], repeat: int, expect: int,
        server: str | None = None) -> dict[str, float]:
    consume(epoch(-1))  # warm-up: Stoker's cache, the OS's page cache, the connections
    before = stoker.Client(server).stats() if server else None
    rates, mbs = [], []
    for r in range(repeat):
        n, nbytes, secs = consume(epoch(r))
        if n != expect:
            raise SystemExit(f"{name}: read {n} rows, expected {expect}")
        rates.append(n / secs)
        mbs.append(nbytes / 1e6 / secs)
        print(f"  {name:<40} run {r}: {n} rows {nbytes / 1e6:7.1f} MB in {secs:6.3f}s = {n / secs:10.0f} rows/s "
              f"{nbytes / 1e6 / secs:8.1f} MB/s", flush=True)
    if server and before is not None:
        after = stoker.Client(server).stats()
        print(f"  stokerd during these runs: {after.storage_requests - before.storage_requests} storage requests, "
              f"{(after.storage_bytes - before.storage_bytes) / 1e6:.1f} MB from storage", flush=True)
    return {"rows_per_s": statistics.median(rates), "mb_per_s": statistics.median(mbs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", help="a running stokerd (default: start one)")
    ap.add_argument("--url", help="s3://bucket/prefix/ of existing Parquet files (default: write synthetic ones)")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--row-groups", type=int, default=4, help="row groups per file")
    ap.add_argument("--rows", type=int, default=4096, help="rows per row group")
    ap.add_argument("--dim", type=int, default=256, help="float32s in each row's emb")
    ap.add_argument("--compression", default="snappy")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--columns", help="comma-separated projection (default: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    columns = args.columns.split(",") if args.columns else None

    from servers import start_bench_servers

    with ExitStack() as stack:
        url = args.url
        server = start_bench_servers(stack, s3=url is None, stokerd=args.server is None,
                                     stokerd_args=("--memory-cache", "1GiB")) or args.server
        if url is None:
            s3 = boto3.client("s3", config=Config(s3={"addressing_style": "path"}))
            s3.create_bucket(Bucket="bench")
            with tempfile.TemporaryDirectory() as tmp:
                for p in write_synthetic(Path(tmp), args.files, args.row_groups, args.rows, args.dim,
                                         args.compression):
                    s3.put_object(Bucket="bench", Key=f"parquet/{p.name}", Body=p.read_bytes())
            url = "s3://bench/parquet/"

        with stoker.Client(server) as client:
            info = client.open_dataset(url)
        total = info.num_samples
        print(f"dataset {url}: {total} rows, {len({s.object for s in info.shards})} files, {len(info.shards)} "
              f"row groups, {info.total_bytes / 1e6:.1f} MB of Parquet; columns {columns or 'all'}; "
              f"batch {args.batch_size}; {os.cpu_count()} CPUs", flush=True)

        def stoker_epochs(shuffle: bool) -> Callable[[int], Iterable[pa.RecordBatch]]:
            def epoch_of(epoch: int) -> Iterable[pa.RecordBatch]:
                with stoker.Client(server) as c:
                    for b in c.stream(url, batch_size=args.batch_size, seed=1, epoch=max(epoch, 0),
                                      shuffle=shuffle, columns=columns or ()):
                        yield b.record_batch()

            return epoch_of

        fs = s3_filesystem()
        path = url[len("s3://"):]

        def pyarrow_epoch(epoch: int) -> Iterable[pa.RecordBatch]:
            ds = pads.dataset(path, format="parquet", filesystem=fs)
            return ds.to_batches(columns=columns, batch_size=args.batch_size)

        print("pyarrow.dataset straight from S3:", flush=True)
        base = run("pyarrow.dataset (S3 direct)", pyarrow_epoch, args.repeat, total)
        print("stoker (warm cache), shuffled:", flush=True)
        shuffled = run("stoker.Client -> numpy, shuffled", stoker_epochs(True), args.repeat, total, server)
        print("stoker (warm cache), file order:", flush=True)
        ordered = run("stoker.Client -> numpy, file order", stoker_epochs(False), args.repeat, total, server)
        with stoker.Client(server) as client:
            st = client.stats()

        print()
        print(f"{'':<34} {'rows/s':>10} {'MB/s':>8} {'/ pyarrow':>10}")
        for name, r in (("pyarrow.dataset, S3 direct", base), ("stoker (warm) -> numpy, shuffled", shuffled),
                        ("stoker (warm) -> numpy, file order", ordered)):
            print(f"{name:<34} {r['rows_per_s']:>10.0f} {r['mb_per_s']:>8.1f} "
                  f"{r['rows_per_s'] / base['rows_per_s']:>9.2f}x")
        print(f"stokerd: {st.memory_hits} memory hits, {st.disk_hits} disk hits, {st.misses} misses, "
              f"{st.storage_requests} storage requests, {st.storage_bytes / 1e6:.1f} MB from storage")
        if args.json:
            args.json.write_text(json.dumps({
                "rows": total, "parquet_bytes": info.total_bytes, "batch_size": args.batch_size, "columns": columns,
                "pyarrow": base, "stoker_shuffled": shuffled, "stoker_file_order": ordered,
                "ratio_shuffled": shuffled["rows_per_s"] / base["rows_per_s"],
                "ratio_file_order": ordered["rows_per_s"] / base["rows_per_s"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
