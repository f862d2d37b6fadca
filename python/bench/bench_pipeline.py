#!/usr/bin/env python3
"""Ready batches against a torch DataLoader that decodes and augments.

Both sides make ImageNet's training batches from the same JPEG WebDataset
(photo-like images at ImageNet's sizes, written with Pillow; see
tests/photos.py), on the same cores, in the same run:

- baseline: webdataset.WebDataset over the local shards, each sample
  through torchvision.io.decode_jpeg, RandomResizedCrop(224),
  RandomHorizontalFlip, ToDtype(float32, scale=True), Normalize, collated
  by a DataLoader with one worker per core;
- stoker: StokerDataset(transform=imagenet_train()) over stokerd's unix
  socket (tensors in the shared region, no DataLoader workers), stokerd
  built with -tags libjpeg when libjpeg-turbo's headers are there and
  given the same cores.

Each trainer is a child process pinned to the cores; its CPU time
(RUSAGE_CHILDREN: the trainer and its DataLoader workers) per sample is the
"trainer CPU", stokerd's own CPU is reported beside it. Runs alternate
(baseline, stoker) --repeat times; the table shows medians and ratios.

    python bench/bench_pipeline.py --images 2048 --cores 0,1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test suite's server and photo helpers

from photos import write_photo_shards  # noqa: E402
from servers import Stokerd, build_stokerd, temp_root  # noqa: E402

CPU = r"""
import resource
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime
"""

BASELINE = CPU + r"""
import glob, sys, time, torch, webdataset as wds
import torchvision.transforms.v2 as T
from torchvision.io import decode_jpeg
from torch.utils.data import DataLoader
folder, batch, workers, limit = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tf = T.Compose([T.RandomResizedCrop(224, antialias=True), T.RandomHorizontalFlip(), T.ToDtype(torch.float32, scale=True),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
def make(s):
    return tf(decode_jpeg(torch.frombuffer(bytearray(s["jpg"]), dtype=torch.uint8))), int(s["cls"])
shards = sorted(glob.glob(folder + "/*.tar"))
ds = wds.WebDataset(shards, shardshuffle=False, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker, empty_check=False).map(make)
loader = DataLoader(ds, batch_size=batch, num_workers=workers, persistent_workers=False)
c = cpu(); t = time.perf_counter(); n = 0
it = iter(loader)
for x, y in it:
    n += x.shape[0]
    if n >= limit:
        break
wall = time.perf_counter() - t
del it, x, y  # joins the workers: their CPU is in RUSAGE_CHILDREN
import gc; gc.collect()
print(n, wall, cpu() - c)
"""

# The floor of the baseline's CPU: the same decode and transforms on each
# sample in one process, nothing collated or passed between processes.
FLOOR = CPU + r"""
import glob, sys, time, torch, webdataset as wds
import torchvision.transforms.v2 as T
from torchvision.io import decode_jpeg
torch.set_num_threads(1)
folder, limit = sys.argv[1], int(sys.argv[2])
tf = T.Compose([T.RandomResizedCrop(224, antialias=True), T.RandomHorizontalFlip(), T.ToDtype(torch.float32, scale=True),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
data = [s["jpg"] for s in wds.WebDataset(sorted(glob.glob(folder + "/*.tar")), shardshuffle=False, empty_check=False)][:limit]
c = cpu(); t = time.perf_counter()
for b in data:
    x = tf(decode_jpeg(torch.frombuffer(bytearray(b), dtype=torch.uint8)))
print(len(data), time.perf_counter() - t, cpu() - c)
"""

STOKER = CPU + r"""
import sys, time
from torch.utils.data import DataLoader
from stoker.torch import StokerDataset
from stoker.pipeline import imagenet_train
server, url, batch, epoch, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ds = StokerDataset(url, server=server, batch_size=batch, seed=1, epoch=epoch, transform=imagenet_train())
c = cpu(); t = time.perf_counter(); n = 0
for b in DataLoader(ds, batch_size=None, num_workers=0):
    n += b["image"].shape[0]
    if n >= limit:
        break
print(n, time.perf_counter() - t, cpu() - c)
"""


def proc_cpu(pid: int) -> float:
    """A process's user+system CPU seconds so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trainer(args: list[str], cores: list[int], env: dict[str, str]) -> tuple[int, float, float]:
    """Run a trainer pinned to cores: (samples, wall seconds of its loop,
    CPU seconds of the loop in it and its DataLoader workers; imports and
    start-up left out)."""
    out = subprocess.run(["taskset", "-c", ",".join(map(str, cores)), sys.executable, "-c", *args],
                         capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    n, wall, cpu = out.stdout.split()[-3:]
    return int(n), float(wall), float(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2048, help="images in the dataset (and samples per run)")
    ap.add_argument("--per-shard", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--cores", default="", help="cores both sides get, e.g. 0,1 (default: all)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", default="", help="folder of the dataset (made if empty; kept)")
    ap.add_argument("--json", default="", help="write the figures here too")
    a = ap.parse_args()
    cores = [int(c) for c in a.cores.split(",")] if a.cores else sorted(os.sched_getaffinity(0))
    with ExitStack() as stack:
        root = temp_root("stoker-bench-pl-")
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        data = Path(a.data) if a.data else root / "photos"
        if not list(data.glob("*.tar")):
            t = time.time()
            write_photo_shards(data, a.images, a.per_shard, seed=1)
            print(f"wrote {a.images} photos in {time.time() - t:.0f}s", file=sys.stderr)
        size = sum(p.stat().st_size for p in data.glob("*.tar"))
        (root / "bin").mkdir()
        sock = Path(tempfile.mkdtemp(prefix="stk-", dir="/tmp")) / "s.sock"
        stack.callback(shutil.rmtree, sock.parent, ignore_errors=True)
        d = Stokerd(bin=build_stokerd(root / "bin"), root=root / "stokerd", env={**os.environ, "GOMAXPROCS": str(len(cores))},
                    extra=("--unix", str(sock), "--allow-file-root", str(data.parent), "--memory-cache", "2GiB",
                           "--pipeline-workers", str(len(cores))))
        d.start()
        stack.callback(d.kill)
        assert d.proc is not None
        # Every thread of stokerd on the cores (threads made later inherit it).
        subprocess.run(["taskset", "-a", "-cp", ",".join(map(str, cores)), str(d.proc.pid)], check=True, capture_output=True)
        url = f"file://{data}/"
        server = f"unix:{sock}"
        env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
        # Warm up: the shards in stokerd's memory tier and the page cache.
        trainer([STOKER, server, url, str(a.batch), "0", str(a.images)], cores, env)
        trainer([BASELINE, str(data), str(a.batch), str(len(cores)), str(a.images)], cores, env)
        runs: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "stoker": [], "stoker_tcp": [], "floor": []}
        for r in range(a.repeat):
            n, wall, cpu = trainer([BASELINE, str(data), str(a.batch), str(len(cores)), str(a.images)], cores, env)
            runs["baseline"].append((n / wall, cpu / n, 0.0))
            for name, addr in (("stoker", server), ("stoker_tcp", d.address)):
                s0 = proc_cpu(d.proc.pid)
                n, wall, cpu = trainer([STOKER, addr, url, str(a.batch), str(r + 1), str(a.images)], cores, env)
                runs[name].append((n / wall, cpu / n, (proc_cpu(d.proc.pid) - s0) / n))
            n, wall, cpu = trainer([FLOOR, str(data), str(min(a.images, 512))], cores[:1], env)
            runs["floor"].append((n / wall, cpu / n, 0.0))
            print(f"run {r}: baseline {runs['baseline'][-1][0]:.0f}/s, stoker {runs['stoker'][-1][0]:.0f}/s, "
                  f"tcp {runs['stoker_tcp'][-1][0]:.0f}/s", file=sys.stderr)
        med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in runs.items()}
        b, s, st, fl = med["baseline"], med["stoker"], med["stoker_tcp"], med["floor"]
        print(f"\n{a.images} photos ({size / a.images / 1024:.0f} KiB each), batch {a.batch}, cores {cores}, "
              f"median of {a.repeat}; stokerd: {jpeg_decoder(d)}")
        print(f"{'':28}{'samples/s':>12}{'trainer CPU ms/sample':>24}{'server CPU ms/sample':>22}")
        print(f"{'DataLoader + torchvision':28}{b[0]:12.0f}{b[1] * 1e3:24.3f}{'-':>22}")
        print(f"{'Stoker ready batches (shm)':28}{s[0]:12.0f}{s[1] * 1e3:24.3f}{s[2] * 1e3:22.3f}")
        print(f"{'Stoker ready batches (TCP)':28}{st[0]:12.0f}{st[1] * 1e3:24.3f}{st[2] * 1e3:22.3f}")
        print(f"{'torchvision alone, 1 core':28}{fl[0]:12.0f}{fl[1] * 1e3:24.3f}{'-':>22}   (no DataLoader: the floor)")
        print(f"{'ratio':28}{s[0] / b[0]:11.2f}x{b[1] / s[1]:22.1f}x less  (total CPU: {b[1] / (s[1] + s[2]):.2f}x less)")
        if a.json:
            Path(a.json).write_text(json.dumps({"runs": runs, "median": med, "cores": cores, "images": a.images,
                                                "bytes_per_image": size / a.images}, indent=1))
    return 0


def jpeg_decoder(d: Stokerd) -> str:
    for line in d.output().splitlines():
        if "jpeg_decoder=" in line:
            return line.split("jpeg_decoder=", 1)[1].split(" workers")[0]
    return "?"


if __name__ == "__main__":
    sys.exit(main())
