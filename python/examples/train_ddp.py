#!/usr/bin/env python3
"""Train with DistributedDataParallel on data streamed by stokerd, with
checkpoints a preempted job resumes from exactly.

Run under torchrun (gloo on CPU; nccl on GPUs works the same):

    mkdir -p /tmp/stoker-ddp
    stokerd --listen 127.0.0.1:7470 --allow-file-root /tmp/stoker-ddp &
    torchrun --standalone --nproc-per-node 2 examples/train_ddp.py \\
        --server 127.0.0.1:7470 --data-dir /tmp/stoker-ddp --checkpoint /tmp/stoker-ddp/ckpt.pt

With no --url it writes synthetic shards (a "cls" label and an
"input.npy" feature vector the label can be learned from) into --data-dir
once. Each rank reads its share through a StokerDataLoader; every
--checkpoint-every steps rank 0 saves the model, the optimizer and the
loader's state (a global cursor: every rank is at the same step, as DDP
keeps them). Started again with the same --checkpoint, the job goes on
from the step after the checkpoint: no sample is read twice or skipped,
with any --workers and any number of ranks. --stop-after N exits after
step N's checkpoint, as a preempted job would. --log-keys DIR has every
rank append the keys it trained on (one per line, "epoch key"), for the
test that checks exactly-once.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import webdataset as wds
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from stoker.torch import StokerDataLoader, StokerDataset

FEATURES = 32
CLASSES = 10


def write_synthetic(folder: Path, shards: int, per_shard: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    centroids = rng.normal(size=(CLASSES, FEATURES)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for sh in range(shards):
        tmp = folder / f".train-{sh:06d}.tar"
        with wds.TarWriter(str(tmp)) as sink:
            for i in range(per_shard):
                label = int(rng.integers(CLASSES))
                x = centroids[label] + 0.5 * rng.normal(size=FEATURES).astype(np.float32)
                sink.write({"__key__": f"{sh * per_shard + i:06d}", "cls": label, "input.npy": x})
        tmp.rename(folder / f"train-{sh:06d}.tar")


def example(sample: dict[str, Any]) -> tuple[torch.Tensor, int, str]:
    """A raw sample to (features, label, key): decoded in the DataLoader's workers."""
    x = np.load(io.BytesIO(sample["input.npy"]), allow_pickle=False)
    return torch.from_numpy(x), int(sample["cls"]), sample["__key__"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default=None, help="stokerd address (default $STOKER_SERVER or 127.0.0.1:7470)")
    ap.add_argument("--url", default=None, help="dataset URL (default: synthetic shards in --data-dir)")
    ap.add_argument("--data-dir", type=Path, help="folder under a stokerd --allow-file-root for synthetic shards")
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--samples", type=int, default=128, help="samples per synthetic shard")
    ap.add_argument("--batch-size", type=int, default=16, help="per rank")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--checkpoint-every", type=int, default=5, help="steps")
    ap.add_argument("--stop-after", type=int, default=0, help="exit after this many steps of this run (0: never)")
    ap.add_argument("--log-keys", type=Path, help="folder where each rank appends the keys it trained on")
    args = ap.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    url = args.url
    if url is None:
        if args.data_dir is None:
            ap.error("give --url or --data-dir")
        if rank == 0 and not any(args.data_dir.glob("train-*.tar")):
            write_synthetic(args.data_dir, args.shards, args.samples)
        dist.barrier()
        url = args.data_dir.resolve().as_uri() + "/"

    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Sequential(nn.Linear(FEATURES, 64), nn.ReLU(), nn.Linear(64, CLASSES)))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # drop_last: every rank takes the same number of full batches, as DDP needs.
    ds = StokerDataset(url, args.server, batch_size=args.batch_size, seed=args.seed, drop_last=True, decode=example)
    loader = StokerDataLoader(ds, num_workers=args.workers)

    start_epoch, step = 0, 0
    if args.checkpoint.exists():
        ckpt = torch.load(args.checkpoint, weights_only=False)
        model.module.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        loader.load_state_dict(ckpt["loader"])
        start_epoch, step = ckpt["loader"]["epoch"], ckpt["step"]
        if rank == 0:
            print(f"resumed at epoch {start_epoch} position {ckpt['loader']['position']} (step {step})", flush=True)

    log = open(args.log_keys / f"rank{rank}.txt", "a") if args.log_keys else None
    ran = 0
    for epoch in range(start_epoch, args.epochs):
        ds.set_epoch(epoch)  # the checkpoint's epoch goes on where it was; later ones start at 0
        t, seen, losses = time.perf_counter(), 0, []
        for x, y, keys in loader:
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            seen += len(y)
            step += 1
            ran += 1
            if log is not None:
                log.write("".join(f"{epoch} {k}\n" for k in keys))
                log.flush()
            if step % args.checkpoint_every == 0 or (args.stop_after and ran == args.stop_after):
                if rank == 0:
                    tmp = args.checkpoint.with_suffix(".tmp")
                    torch.save({"model": model.module.state_dict(), "optimizer": opt.state_dict(),
                                "loader": loader.state_dict(), "step": step}, tmp)
                    tmp.rename(args.checkpoint)
                dist.barrier()  # every rank is past the checkpoint's step
            if args.stop_after and ran == args.stop_after:
                if rank == 0:
                    print(f"stopping after step {step} (checkpoint saved)", flush=True)
                dist.destroy_process_group()
                return 0
        if rank == 0 and losses:
            print(f"epoch {epoch}: {seen} samples on rank 0 in {time.perf_counter() - t:.2f}s, "
                  f"loss {np.mean(losses[:3]):.3f} -> {np.mean(losses[-3:]):.3f}", flush=True)
    if rank == 0:
        print("done", flush=True)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
