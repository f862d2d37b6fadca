#!/usr/bin/env python3
"""Shuffle quality at the same cache footprint: Stoker's windows next to
MosaicML Streaming's py1e.

For one dataset shape (default 1024 shards x 256 samples of 64 KiB), the
epoch order of each loader setting is scored by the two figures Stoker
defines (shuffle.Quality, `go doc ./shuffle Quality`):

- diversity: the mean number of distinct shards in a batch of B
  consecutive samples, over min(B, shards) (1.0: every sample of a batch
  from another shard);
- spread: the mean distance between file-order neighbours (samples k and
  k+1 of a shard) over (N+1)/3, its value under a uniform permutation
  (1.0: as good as a full shuffle).

and by its footprint: the most shards whose samples are in progress at
once (between a shard's first and last sample in the order), times a
shard's bytes: the cache a loader that reads each shard once, whole, needs
to read that order. Stoker's order comes from `stoker plan --order`
(built from this repository); py1e's from streaming's own get_shuffle
(mosaicml-streaming, pinned in python/bench/requirements-bench.txt), with
block sizes matched to Stoker's windows. The script checks that its Python
figures equal what `stoker plan` prints for the same order.

Stoker also reads orders whose footprint exceeds the cache, by fetching
the byte ranges of the coming samples instead of whole shards: its quality
is then that of any window at a footprint of its look-ahead, at the price
of one request per sample (or per run of neighbouring samples).

    python bench/shuffle_quality.py --shards 1024 --samples 256 --batch 256
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def streaming_get_shuffle():  # type: ignore[no-untyped-def]
    """streaming.base.shuffle.get_shuffle, imported without running the
    streaming package's __init__ (which pulls in every cloud SDK): its
    shuffle algorithms need numpy alone."""
    import importlib.util

    spec = importlib.util.find_spec("streaming")
    if spec is None or spec.submodule_search_locations is None:
        sys.exit("mosaicml-streaming is not installed: pip install -r python/bench/requirements-bench.txt")
    root = Path(next(iter(spec.submodule_search_locations)))
    for name, path in (("streaming", root), ("streaming.base", root / "base")):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = [str(path)]  # a namespace: its submodules import, its __init__ does not run
            sys.modules[name] = mod
    return importlib.import_module("streaming.base.shuffle").get_shuffle


def quality(shard: np.ndarray, sample: np.ndarray, counts: np.ndarray, batch: int) -> tuple[float, float]:
    """Diversity and spread of an order given as parallel arrays of shard
    and sample numbers (the definition of shuffle.Quality)."""
    n = len(shard)
    best = min(batch, int(np.count_nonzero(counts)))
    full = n // batch
    diversity = 0.0
    if full and best:
        blocks = shard[: full * batch].reshape(full, batch)
        distinct = [len(np.unique(row)) for row in blocks]
        diversity = float(np.sum(distinct)) / full / best
    first = np.concatenate(([0], np.cumsum(counts)))
    pos = np.empty(n, dtype=np.int64)
    pos[first[shard] + sample] = np.arange(n)
    gaps = []
    for s, c in enumerate(counts):
        if c > 1:
            p = pos[first[s] : first[s] + c]
            gaps.append(np.abs(np.diff(p)))
    spread = 0.0
    if gaps:
        g = np.concatenate(gaps)
        spread = float(g.mean()) / ((n + 1) / 3)
    return diversity, spread


def footprint(shard: np.ndarray, shards: int) -> int:
    """The most shards in progress at once: a shard is in progress from
    its first sample's position to its last's."""
    n = len(shard)
    first = np.full(shards, n, dtype=np.int64)
    last = np.full(shards, -1, dtype=np.int64)
    idx = np.arange(n)
    np.minimum.at(first, shard, idx)
    np.maximum.at(last, shard, idx)
    used = last >= 0
    delta = np.zeros(n + 1, dtype=np.int64)
    np.add.at(delta, first[used], 1)
    np.add.at(delta, last[used] + 1, -1)
    return int(np.max(np.cumsum(delta)))


def stoker_order(stoker: str, args: argparse.Namespace, window: str, out: Path) -> tuple[np.ndarray, np.ndarray, str]:
    cmd = [stoker, "plan", "--shards", str(args.shards), "--samples", str(args.samples), "--seed", str(args.seed),
           "--epoch", "0", "--batch", str(args.batch), "--shuffle-window", window, "--order", str(out)]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    raw = np.fromfile(out, dtype="<u4").reshape(-1, 2)
    return raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64), text


def py1e_order(get_shuffle, counts: np.ndarray, args: argparse.Namespace, block: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    ids = get_shuffle("py1e", counts, 1, args.seed, 0, block)  # one canonical node: the best py1e does
    first = np.concatenate(([0], np.cumsum(counts)))
    shard = np.searchsorted(first, ids, side="right") - 1
    return shard.astype(np.int64), (ids - first[shard]).astype(np.int64)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=1024)
    ap.add_argument("--samples", type=int, default=256, help="samples per shard")
    ap.add_argument("--sample-bytes", type=int, default=64 << 10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--windows", default="1,2,4,8,16,32,64,256,all")
    args = ap.parse_args()
    get_shuffle = streaming_get_shuffle()
    counts = np.full(args.shards, args.samples, dtype=np.int64)
    shard_mib = args.samples * args.sample_bytes / (1 << 20)
    with tempfile.TemporaryDirectory() as tmp:
        stoker = os.environ.get("STOKER") or str(Path(tmp) / "stoker")
        if "STOKER" not in os.environ:
            subprocess.run(["go", "build", "-o", stoker, "./cmd/stoker"], cwd=REPO, check=True)
        rows = []
        for w in args.windows.split(","):
            shard, sample, text = stoker_order(stoker, args, w, Path(tmp) / "order")
            d, s = quality(shard, sample, counts, args.batch)
            got = [line for line in text.splitlines() if line.startswith("quality")][0]
            want = f"diversity {d:.3f}, spread {s:.3f}"
            if want not in got:
                sys.exit(f"the Python figures ({want}) differ from stoker plan's ({got}): the definitions drifted")
            fp = footprint(shard, args.shards)
            rows.append((f"stoker window {w}", fp, d, s))
            wshards = args.shards if w == "all" else int(w)
            block = max(1, wshards * args.samples)
            pshard, psample = py1e_order(get_shuffle, counts, args, block)
            pd, ps = quality(pshard, psample, counts, args.batch)
            rows.append((f"py1e block {block}", footprint(pshard, args.shards), pd, ps))
    print(f"{args.shards} shards x {args.samples} samples of {args.sample_bytes} B, batches of {args.batch}")
    print(f"| order | footprint (shards) | footprint (MiB) | diversity | spread |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, fp, d, s in rows:
        print(f"| {name} | {fp} | {fp * shard_mib:,.0f} | {d:.3f} | {s:.3f} |")


if __name__ == "__main__":
    main()
