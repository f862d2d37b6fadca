#!/usr/bin/env python3
"""Samples/s through a torch DataLoader: Stoker next to webdataset.

Both read the same WebDataset shards from the same S3 server in the same
run: Stoker through stokerd (StokerDataset), the baseline with
webdataset.WebDataset opening the shards straight from S3 (streaming
GetObject with boto3). Each configuration runs --repeat times; the table
shows medians and the ratio Stoker / webdataset.

By default the script is self-contained: it starts versitygw and a stokerd
built from this repository on loopback ports and writes synthetic shards
(`stoker demo`-style: an "img.bin" of random bytes, a "cls", a "json").
Point it at running servers instead with --server, --url and the standard
AWS variables (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, …).

    python bench/bench_loader.py --shards 16 --samples 128 --sample-size 65536
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import webdataset as wds
from botocore.config import Config
from torch.utils.data import DataLoader

import stoker
from stoker.torch import StokerDataset

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test suite's server helpers


def as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def write_synthetic(folder: Path, shards: int, per_shard: int, size: int, seed: int = 1) -> list[Path]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for sh in range(shards):
        path = folder / f"train-{sh:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(per_shard):
                key = f"{sh * per_shard + i:06d}"
                label = rng.randrange(10)
                sink.write({"__key__": key, "img.bin": rng.randbytes(size), "cls": label,
                            "json": {"key": key, "label": label}})
        paths.append(path)
    return paths


def s3_client() -> Any:
    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}, max_pool_connections=32))


def install_s3_opener() -> None:
    """webdataset opens s3:// by streaming GetObject (one client per process)."""
    clients: dict[int, Any] = {}

    def gopen_s3(url: str, mode: str = "rb", bufsize: int = 8192, **kw: Any) -> Any:
        pid = os.getpid()
        if pid not in clients:
            clients[pid] = s3_client()
        bucket, _, key = url[len("s3://"):].partition("/")
        return clients[pid].get_object(Bucket=bucket, Key=key)["Body"]

    wds.gopen_schemes["s3"] = gopen_s3


def count(loader: Iterable[list[dict[str, Any]]]) -> tuple[int, int, float]:
    """Samples, payload bytes and seconds of one pass over a loader."""
    start = time.perf_counter()
    n = nbytes = 0
    for batch in loader:
        n += len(batch)
        nbytes += sum(len(v) for s in batch for k, v in s.items() if not k.startswith("__"))
    return n, nbytes, time.perf_counter() - start


def run(name: str, make: Callable[[int], Iterable[list[dict[str, Any]]]], repeat: int, expect: int) -> list[float]:
    rates = []
    for r in range(repeat):
        n, nbytes, secs = count(make(r))
        if n != expect:
            raise SystemExit(f"{name}: read {n} samples, expected {expect}")
        rates.append(n / secs)
        print(f"  {name:<34} run {r}: {n} samples {nbytes / 1e6:7.1f} MB in {secs:6.2f}s = {n / secs:8.0f} samples/s",
              flush=True)
    return rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", help="a running stokerd (default: start one)")
    ap.add_argument("--url", help="s3://bucket/prefix/ of existing shards (default: write and upload synthetic ones)")
    ap.add_argument("--shards", type=int, default=16)
    ap.add_argument("--samples", type=int, default=128, help="samples per shard")
    ap.add_argument("--sample-size", type=int, default=64 << 10, help="bytes of each sample's img.bin")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", default="0,2", help="DataLoader num_workers values, comma separated")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--shuffle-buffer", type=int, default=1000, help="webdataset's sample shuffle buffer")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    from servers import start_bench_servers

    with ExitStack() as stack:
        url = args.url
        server = start_bench_servers(stack, s3=url is None, stokerd=args.server is None) or args.server
        if url is None:
            with tempfile.TemporaryDirectory() as tmp:
                paths = write_synthetic(Path(tmp), args.shards, args.samples, args.sample_size)
                s3 = s3_client()
                s3.create_bucket(Bucket="bench")
                for p in paths:
                    s3.put_object(Bucket="bench", Key=f"train/{p.name}", Body=p.read_bytes())
            url = "s3://bench/train/"

        install_s3_opener()
        with stoker.Client(server) as client:
            info = client.open_dataset(url)
            if not info.counted:  # no index beside the shards: count them first, to check every read
                client.wait_prefetch(client.prefetch(url, epochs=[], index_only=True), progress=False)
                info = client.open_dataset(url)
        shard_urls = [s.object for s in info.shards]
        total = info.num_samples
        print(f"dataset {url}: {total} samples, {len(shard_urls)} shards, {info.total_bytes / 1e6:.1f} MB; "
              f"batch {args.batch_size}; {os.cpu_count()} CPUs", flush=True)

        results: dict[str, Any] = {"samples": total, "bytes": info.total_bytes, "batch_size": args.batch_size,
                                   "configs": []}
        for workers in (int(w) for w in args.workers.split(",")):
            print(f"num_workers={workers}", flush=True)

            def wds_loader(epoch: int, workers: int = workers) -> Iterable[list[dict[str, Any]]]:
                ds = (wds.WebDataset(shard_urls, shardshuffle=100, seed=epoch, empty_check=False,
                                     workersplitter=wds.split_by_worker)
                      .shuffle(args.shuffle_buffer, seed=epoch))
                return DataLoader(ds, batch_size=args.batch_size, num_workers=workers, collate_fn=as_list)

            def stoker_loader(epoch: int, workers: int = workers) -> Iterable[list[dict[str, Any]]]:
                ds = StokerDataset(url, server, batch_size=args.batch_size, seed=1, epoch=epoch)
                return DataLoader(ds, batch_size=args.batch_size, num_workers=workers, collate_fn=as_list)

            base = run("webdataset.WebDataset (S3 direct)", wds_loader, args.repeat, total)
            ours = run("stoker.torch.StokerDataset", stoker_loader, args.repeat, total)
            b, o = statistics.median(base), statistics.median(ours)
            results["configs"].append({"num_workers": workers, "webdataset": b, "stoker": o, "ratio": o / b})

        with stoker.Client(server) as client:
            st = client.stats()
        print()
        print(f"{'num_workers':>11} {'webdataset/s':>13} {'stoker/s':>10} {'stoker/webdataset':>18}")
        for c in results["configs"]:
            print(f"{c['num_workers']:>11} {c['webdataset']:>13.0f} {c['stoker']:>10.0f} {c['ratio']:>17.2f}x")
        print(f"stokerd: {st.memory_hits} memory hits, {st.disk_hits} disk hits, {st.misses} misses, "
              f"{st.storage_requests} storage requests")
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
