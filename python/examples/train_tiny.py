#!/usr/bin/env python3
"""Train a tiny torch model for one epoch on data streamed by stokerd.

With no --url, it writes `stoker demo`-style synthetic shards
(train-000000.tar, …, each sample a "cls" label and an "input.npy" feature
vector that the label can be learned from) into --data-dir (default: a
temporary folder) and reads them as file:// — the server must run on this
machine then, allowed to read that folder:

    mkdir -p /tmp/stoker-tiny
    stokerd --listen 127.0.0.1:7470 --http 127.0.0.1:7471 --allow-file-root /tmp/stoker-tiny &
    python examples/train_tiny.py --server 127.0.0.1:7470 --data-dir /tmp/stoker-tiny

With --url (s3://bucket/prefix/, file:///dir/) it reads those shards;
samples without "input.npy" use the first bytes of their "img.bin" field
(the shards `stoker demo --keep` writes), which carry no signal to learn.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from torch import nn
from torch.utils.data import DataLoader

import stoker
from stoker.torch import StokerDataset

FEATURES = 32
CLASSES = 10


def write_synthetic(folder: Path, shards: int, per_shard: int, seed: int = 1) -> None:
    """Shards whose "input.npy" is the label's centroid plus noise."""
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(CLASSES, FEATURES)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for sh in range(shards):
        with wds.TarWriter(str(folder / f"train-{sh:06d}.tar")) as sink:
            for i in range(per_shard):
                label = int(rng.integers(CLASSES))
                x = centroids[label] + 0.5 * rng.normal(size=FEATURES).astype(np.float32)
                sink.write({"__key__": f"{sh * per_shard + i:06d}", "cls": label, "input.npy": x})


def to_example(sample: dict[str, Any]) -> tuple[torch.Tensor, int]:
    """A decoded sample to (features, label)."""
    if "input.npy" in sample:
        x = np.asarray(sample["input.npy"], dtype=np.float32)
    else:
        raw = np.frombuffer(sample["img.bin"][:FEATURES], dtype=np.uint8)
        x = np.pad(raw, (0, FEATURES - len(raw))).astype(np.float32) / 255.0
    return torch.from_numpy(x), int(sample["cls"])


def decode(sample: dict[str, Any]) -> tuple[torch.Tensor, int]:
    return to_example(stoker.decode_sample(sample))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=None, help="stokerd address (default $STOKER_SERVER or 127.0.0.1:7470)")
    ap.add_argument("--url", default=None, help="dataset URL (default: write synthetic shards)")
    ap.add_argument("--data-dir", default=None, help="folder under a stokerd --allow-file-root for the synthetic shards (default: a temporary one)")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--samples", type=int, default=256, help="samples per synthetic shard")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epoch", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tmp = None
    url = args.url
    if url is None:
        tmp = tempfile.TemporaryDirectory(prefix="stoker-tiny-", dir=args.data_dir)
        write_synthetic(Path(tmp.name), args.shards, args.samples)
        url = Path(tmp.name).as_uri() + "/"
    try:
        with stoker.Client(args.server) as client:
            info = client.open_dataset(url)
        counted = f"{info.num_samples} samples" if info.counted else "samples not counted yet"
        print(f"dataset {url}: {counted} in {len(info.shards)} shards")

        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, CLASSES))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        ds = StokerDataset(url, args.server, batch_size=args.batch_size, seed=args.seed, decode=decode)
        ds.set_epoch(args.epoch)
        loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers)

        start = time.perf_counter()
        seen, losses, correct = 0, [], 0
        for step, (x, y) in enumerate(loader):
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if step % 20 == 0:
                print(f"step {step:4d}  loss {loss.item():.4f}")
        secs = time.perf_counter() - start
        first, last = np.mean(losses[:5]), np.mean(losses[-5:])
        print(f"epoch {args.epoch}: {seen} samples in {secs:.2f}s ({seen / secs:.0f}/s), "
              f"loss {first:.3f} -> {last:.3f}, train accuracy {correct / seen:.1%}")
        if not info.counted:  # the epoch read every shard, which counted it
            with stoker.Client(args.server) as client:
                info = client.open_dataset(url)
        if seen != info.num_samples:
            print(f"error: read {seen} samples, the dataset has {info.num_samples}", file=sys.stderr)
            return 1
        return 0
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
