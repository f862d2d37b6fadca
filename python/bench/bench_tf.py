#!/usr/bin/env python3
"""Elements/s of stoker.tf.dataset (raw bytes) next to an element-per-call
from_generator source over the same stream, in the same run.

stoker.tf.dataset makes each server batch's fields numpy arrays in one
Python call and unbatches them in TensorFlow; the baseline, what it did
before, yields one dict per sample from Python, so tf.data takes the GIL
for every element. Both read the same warm epochs from the same stokerd
(started here, self-contained, on shards written to a local folder), feed
``.batch(B)`` and, in a second pair of rows, a ``map`` that works on the
bytes in TensorFlow. Medians of --repeat epochs after a warm-up epoch.

    python bench/bench_tf.py --shards 8 --samples 512 --sample-size 1024
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import tensorflow as tf
import webdataset as wds

import stoker
import stoker.tf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test suite's server helpers


def write_shards(folder: Path, shards: int, per_shard: int, size: int) -> None:
    rng = random.Random(1)
    folder.mkdir(parents=True, exist_ok=True)
    for sh in range(shards):
        with wds.TarWriter(str(folder / f"train-{sh:06d}.tar")) as sink:
            for i in range(per_shard):
                sink.write({"__key__": f"{sh:04d}-{i:06d}", "bin": rng.randbytes(size), "cls": i % 10})


def per_element(url: str, server: str, batch_size: int, fields: list[str], epochs: Iterator[int]) -> tf.data.Dataset:
    """The baseline: one Python call per element."""
    with stoker.Client(server) as c:
        urls = tuple(s.object for s in c.open_dataset(url).shards)
    names = ["__key__", "__url__", *fields]
    sig = {n: tf.TensorSpec((), tf.string) for n in names}

    def gen() -> Iterator[dict[str, Any]]:
        with stoker.Client(server) as c:
            for b in c.stream(url, batch_size=batch_size, seed=1, epoch=next(epochs)):
                for s in b.samples:
                    d = s.to_dict(urls[s.shard])
                    yield {n: d[n] for n in names}

    return tf.data.Dataset.from_generator(gen, output_signature=sig)


def epoch_rate(ds: tf.data.Dataset, batch: int, work: bool) -> tuple[float, int]:
    if work:
        ds = ds.map(lambda e: tf.strings.length(e["bin"]) + tf.strings.to_number(e["cls"], tf.int32),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda e: e["bin"])
    ds = ds.batch(batch).prefetch(tf.data.AUTOTUNE)
    n = 0
    t = time.perf_counter()
    for x in ds:
        n += int(x.shape[0])
    return n / (time.perf_counter() - t), n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--samples", type=int, default=512, help="samples per shard")
    ap.add_argument("--sample-size", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=256, help="server batch and .batch() size")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    from servers import start_bench_servers, temp_root

    with ExitStack() as stack:
        data = temp_root("stoker-bench-tf-")
        stack.callback(lambda: __import__("shutil").rmtree(data, ignore_errors=True))
        write_shards(data, args.shards, args.samples, args.sample_size)
        server = start_bench_servers(stack, s3=False, stokerd=True, stokerd_args=("--allow-file-root", str(data)))
        assert server is not None
        url = data.as_uri() + "/"
        total = args.shards * args.samples
        print(f"{total} samples of {args.sample_size} B in {args.shards} shards; batch {args.batch_size}; "
              f"medians of {args.repeat} warm epochs")
        print(f"{'source':<34} {'map':<10} {'elements/s':>12} {'ratio':>7}")
        for work in (False, True):
            rates: dict[str, list[float]] = {"per element (before)": [], "stoker.tf.dataset": []}
            counter = iter(range(10**6))
            base = per_element(url, server, args.batch_size, ["bin", "cls"], counter)
            ours = stoker.tf.dataset(url, server, batch_size=args.batch_size, seed=1, fields=["bin", "cls"])
            for ds in (base, ours):  # warm-up: the server's cache and tf's functions
                epoch_rate(ds, args.batch_size, work)
            for _ in range(args.repeat):
                for name, ds in (("per element (before)", base), ("stoker.tf.dataset", ours)):
                    rate, n = epoch_rate(ds, args.batch_size, work)
                    assert n == total, (name, n)
                    rates[name].append(rate)
            ref = statistics.median(rates["per element (before)"])
            for name, rs in rates.items():
                med = statistics.median(rs)
                print(f"{name:<34} {'tf work' if work else 'none':<10} {med:>12.0f} {med / ref:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
