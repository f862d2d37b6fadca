#!/usr/bin/env python3
"""Samples/s through a torch DataLoader: Stoker against the Python loaders
people use for data in S3, cold and warm, in one run.

The same samples (``--samples`` of ``--sample-size`` random bytes, a key
and a label) are written in each loader's own format and uploaded to one
versitygw: WebDataset tars (read by Stoker, webdataset and
s3torchconnector), Mosaic MDS shards (``MDSWriter``) and litdata chunks
(``litdata.optimize``). Every loader reads S3 through the same toxiproxy,
which makes loopback S3 behave like real S3: 20 ms before the first byte
and 90 MB/s per connection (``--latency-ms``, ``--rate-kbs``).

``BENCH_GC=1`` prints each epoch's time to its first batch and the runs of
Python's cyclic collector in it; ``BENCH_CPU=1`` the CPU time each kind of
process of the machine spent in it (the S3 server, the proxy, stokerd,
kernel workers); ``BENCH_STATS=1`` stokerd's Stats after each Stoker trial.

A trial is one loader at one num_workers: a fresh cache (a new stokerd,
new cache folders), epoch 0 (cold) and then epoch 1 (warm), each timed
from the DataLoader's first iteration to its last sample. Every sample of
every epoch is checked: its key is seen exactly once and its bytes are the
ones written (the first 8 bytes are the sample's index, the length is the
sample size). Trials are interleaved (all loaders of round r run before
round r+1, in a shuffled order) and each runs ``--repeat`` times; the
table shows the range of samples/s and each loader's ratio to the best
peer of the same column.

The loaders, each as its documentation shows (settings in the table's
notes): Stoker (``StokerDataset``, batched, ``DataLoader(batch_size=None)``;
and per sample with ``DataLoader(batch_size=32)``) with a memory tier that
holds the data and with one a quarter of it (the disk tier holding the
rest); ``webdataset.WebDataset`` streaming from S3, and with
``cache_dir``; ``streaming.StreamingDataset`` (MosaicML); litdata's
``StreamingDataset`` with ``StreamingDataLoader``; s3torchconnector's
``S3IterableDataset`` over the tars, parsed with webdataset's tar reader.

    python bench/bench_peers.py --repeat 3

Needs toxiproxy-server (make tools) and the peers
(pip install -r python/bench/requirements-bench.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the test suite's server helpers
sys.path.insert(0, str(HERE.parent))  # stoker from this tree

import torch  # noqa: E402
from torch.utils.data import DataLoader, IterableDataset  # noqa: E402

from servers import S3Server, Stokerd, build_stokerd, find_versitygw, free_port, spawn, temp_root  # noqa: E402

BUCKET = "bench"


def as_list(batch: list[Any]) -> list[Any]:
    return batch


# -- data --------------------------------------------------------------------


def sample_bytes(i: int, size: int) -> bytes:
    """Sample i's payload: its index, then random bytes (the same in every format)."""
    return i.to_bytes(8, "little") + random.Random(i).randbytes(size - 8)


def write_all(root: Path, s3: Any, n: int, size: int, per_shard: int) -> dict[str, str]:
    """Write the samples as WebDataset tars, MDS and litdata chunks, upload
    them, and return each format's S3 URL."""
    import webdataset as wds

    urls = {}
    tars = root / "wds"
    tars.mkdir(parents=True)
    for sh in range((n + per_shard - 1) // per_shard):
        with wds.TarWriter(str(tars / f"train-{sh:06d}.tar")) as sink:
            for i in range(sh * per_shard, min(n, (sh + 1) * per_shard)):
                sink.write({"__key__": f"{i:06d}", "img.bin": sample_bytes(i, size), "cls": str(i % 10).encode()})
    upload(s3, tars, "wds/")
    urls["wds"] = f"s3://{BUCKET}/wds/"

    from streaming import MDSWriter

    mds = root / "mds"
    shard_bytes = per_shard * (size + 64)
    with MDSWriter(out=str(mds), columns={"key": "str", "img": "bytes", "cls": "int"}, size_limit=shard_bytes) as w:
        for i in range(n):
            w.write({"key": f"{i:06d}", "img": sample_bytes(i, size), "cls": i % 10})
    upload(s3, mds, "mds/")
    urls["mds"] = f"s3://{BUCKET}/mds/"

    import multiprocessing

    import litdata

    lit = root / "litdata"
    method = multiprocessing.get_start_method()
    litdata.optimize(fn=_lit_sample, inputs=[(i, size) for i in range(n)], output_dir=str(lit),
                     chunk_bytes=shard_bytes, num_workers=1, mode="overwrite")
    multiprocessing.set_start_method(method, force=True)  # optimize sets its own for the whole process
    upload(s3, lit, "litdata/")
    urls["litdata"] = f"s3://{BUCKET}/litdata/"
    return urls


def _lit_sample(arg: tuple[int, int]) -> dict[str, Any]:
    i, size = arg
    return {"key": f"{i:06d}", "img": sample_bytes(i, size), "cls": i % 10}


def upload(s3: Any, folder: Path, prefix: str) -> None:
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            s3.put_object(Bucket=BUCKET, Key=prefix + str(p.relative_to(folder)), Body=p.read_bytes())


# -- the latency proxy --------------------------------------------------------


def start_toxiproxy(stack: ExitStack, root: Path, upstream: str, latency_ms: int, rate_kbs: int) -> str:
    """toxiproxy-server with one proxy to upstream (host:port) that adds
    latency_ms before the first byte and limits each connection to
    rate_kbs; returns the proxy's endpoint URL."""
    binary = shutil.which("toxiproxy-server") or str(Path.home() / "go" / "bin" / "toxiproxy-server")
    if not os.access(binary, os.X_OK):
        sys.exit("toxiproxy-server is not installed: make tools")
    api = free_port()
    log = root / "toxiproxy.log"
    with open(log, "ab") as out:
        proc = spawn([binary, "-host", "127.0.0.1", "-port", str(api)], out, dict(os.environ))
    stack.callback(lambda: (proc.kill(), proc.wait()))
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{api}/version", timeout=1).read()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"toxiproxy did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)

    def post(path: str, body: dict[str, Any]) -> None:
        req = urllib.request.Request(f"http://127.0.0.1:{api}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()

    listen = f"127.0.0.1:{free_port()}"
    post("/proxies", {"name": "s3", "listen": listen, "upstream": upstream, "enabled": True})
    post("/proxies/s3/toxics", {"name": "latency", "type": "latency", "stream": "downstream",
                                "attributes": {"latency": latency_ms}})
    post("/proxies/s3/toxics", {"name": "bandwidth", "type": "bandwidth", "stream": "downstream",
                                "attributes": {"rate": rate_kbs}})
    return f"http://{listen}"


# -- checking -----------------------------------------------------------------


class Check:
    """Every sample of an epoch exactly once, with its own bytes."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.size, self.seen = n, size, bytearray(n)

    def add(self, key: Any, img: Any) -> None:
        i = int(key)
        if not 0 <= i < self.n or self.seen[i]:
            raise AssertionError(f"sample {key!r} is unknown or seen twice")
        self.seen[i] = 1
        if len(img) != self.size or int.from_bytes(bytes(img[:8]), "little") != i:
            raise AssertionError(f"sample {key!r}: its bytes are not the ones written")

    def done(self) -> None:
        missing = self.n - sum(self.seen)
        if missing:
            raise AssertionError(f"{missing} samples were not read")


class GCTimes:
    """The cyclic collector's runs in this process, by generation: how many,
    their total and longest pause, and how many objects they freed
    (BENCH_GC=1 prints them per epoch)."""

    def __init__(self) -> None:
        self.runs, self.secs, self.longest, self.freed = [0, 0, 0], [0.0] * 3, [0.0] * 3, [0, 0, 0]
        self._t = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t = time.perf_counter()
            return
        g, d = info["generation"], time.perf_counter() - self._t
        self.runs[g] += 1
        self.secs[g] += d
        self.longest[g] = max(self.longest[g], d)
        self.freed[g] += info["collected"]

    def __str__(self) -> str:
        return " ".join(f"gen{g}: {self.runs[g]} runs {self.secs[g] * 1e3:.1f} ms (max {self.longest[g] * 1e3:.1f}) "
                        f"freed {self.freed[g]}" for g in range(3))


def cpu_by_process() -> dict[tuple[str, str], float]:
    """CPU seconds (user and system) of every process of the machine, by
    (pid, name), from /proc."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        out[(pid, name)] = (int(rest[11]) + int(rest[12])) / tick
    return out


def cpu_spent(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> str:
    """The CPU seconds each kind of process spent between two readings,
    largest first (kernel workers by their kind)."""
    spent: dict[str, float] = {}
    for k, v in after.items():
        name = k[1].split("/")[0] if k[1].startswith("kworker") else k[1]
        spent[name] = spent.get(name, 0.0) + v - before.get(k, 0.0)
    top = sorted(((v, k) for k, v in spent.items() if v >= 0.01), reverse=True)[:8]
    return " ".join(f"{k} {v:.2f}s" for v, k in top)


def epoch(loader: Iterable[Any], key: str, img: str, n: int, size: int) -> float:
    """Samples/s of one pass, every sample checked."""
    import gc

    check = Check(n, size)
    cpu0 = cpu_by_process() if os.environ.get("BENCH_CPU") else None
    times = GCTimes() if os.environ.get("BENCH_GC") else None
    if times is not None:
        gc.callbacks.append(times)
    try:
        t = time.perf_counter()
        first = 0.0
        for batch in loader:
            if not first:
                first = time.perf_counter() - t
            for s in batch:
                check.add(s[key], s[img])
        secs = time.perf_counter() - t
    finally:
        if times is not None:
            gc.callbacks.remove(times)
            print(f"  epoch of {n / secs:.0f} samples/s, first batch after {first * 1e3:.1f} ms; gc: {times}",
                  flush=True)
        if cpu0 is not None:
            print(f"  epoch of {n / secs:.0f} samples/s, CPU: {cpu_spent(cpu0, cpu_by_process())}", flush=True)
    check.done()
    return n / secs


# -- the loaders ------------------------------------------------------------------
# Each is a function (workers, trial folder) -> (cold, warm) samples/s.


class S3TorchTars(IterableDataset):  # type: ignore[type-arg]
    """s3torchconnector's S3IterableDataset over the tars (sharded over
    DataLoader workers), each object parsed by webdataset's tar reader.
    The tars are named (from_objects), not listed: Stoker's index lies
    beside them."""

    def __init__(self, urls: list[str], endpoint: str) -> None:
        self.urls, self.endpoint = urls, endpoint

    def __iter__(self) -> Any:
        import webdataset as wds
        from s3torchconnector import S3ClientConfig, S3IterableDataset

        ds = S3IterableDataset.from_objects(self.urls, region=os.environ.get("AWS_REGION", "us-east-1"),
                                            endpoint=self.endpoint, enable_sharding=True,
                                            s3client_config=S3ClientConfig(force_path_style=True))
        for reader in ds:
            yield from wds.tariterators.group_by_keys(
                wds.tariterators.tar_file_expander([{"url": reader.key, "stream": reader}]))


def stop_stokerd(d: Stokerd) -> None:
    """Stop stokerd as a service manager does (SIGTERM), so it removes its
    shared tier file; kill it if it takes more than 30 s."""
    if d.proc is not None and d.proc.poll() is None:
        d.proc.terminate()
        try:
            d.proc.wait(timeout=30)
        except Exception:
            d.kill()
    d.proc = None


def make_loaders(args: argparse.Namespace, urls: dict[str, str], endpoint: str, stokerd_bin: str,
                 root: Path) -> dict[str, Callable[[int, Path], tuple[float, float]]]:
    import webdataset as wds
    from bench_loader import install_s3_opener

    install_s3_opener()  # webdataset opens s3:// with boto3 (through the proxy: AWS_ENDPOINT_URL_S3)
    n, size, bs = args.samples, args.sample_size, args.batch_size
    wds_shards = [f"{urls['wds']}train-{i:06d}.tar" for i in range((n + args.per_shard - 1) // args.per_shard)]

    def stoker(memory: str, batched: bool, copy: bool | None = None) -> Callable[[int, Path], tuple[float, float]]:
        def run(workers: int, tmp: Path) -> tuple[float, float]:
            from stoker.torch import StokerDataset

            d = Stokerd(bin=stokerd_bin, root=tmp / "stokerd", env=dict(os.environ),
                        extra=("--memory-cache", memory, "--disk-cache", "2GiB", *args.stokerd_args.split()))
            d.start()
            try:
                rates = []
                # One dataset and DataLoader for both epochs, set_epoch
                # between them: as a training loop does (and as the
                # litdata and Mosaic runs below keep theirs).
                ds = StokerDataset(urls["wds"], d.address, batch_size=bs, seed=1, batched=batched, copy=copy)
                dl = (DataLoader(ds, batch_size=None, num_workers=workers) if batched
                      else DataLoader(ds, batch_size=bs, num_workers=workers, collate_fn=as_list))
                for e in (0, 1):
                    ds.set_epoch(e)
                    rates.append(epoch(dl, "__key__", "img.bin", n, size))
                if os.environ.get("BENCH_STATS"):
                    import stoker as _s
                    with _s.Client(d.address, local=False) as c:
                        print(c.stats(), flush=True)
                return rates[0], rates[1]
            finally:
                stop_stokerd(d)
        return run

    def webdataset(cache: bool) -> Callable[[int, Path], tuple[float, float]]:
        def run(workers: int, tmp: Path) -> tuple[float, float]:
            rates = []
            (tmp / "wds-cache").mkdir()
            for e in (0, 1):
                ds = wds.WebDataset(wds_shards, shardshuffle=100, seed=e, empty_check=False,
                                    workersplitter=wds.split_by_worker,
                                    **({"cache_dir": str(tmp / "wds-cache")} if cache else {})).shuffle(1000, seed=e)
                dl = DataLoader(ds, batch_size=bs, num_workers=workers, collate_fn=as_list)
                rates.append(epoch(dl, "__key__", "img.bin", n, size))
            return rates[0], rates[1]
        return run

    def mosaic(workers: int, tmp: Path) -> tuple[float, float]:
        from streaming import StreamingDataset
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()
        ds = StreamingDataset(remote=urls["mds"], local=str(tmp / "mds"), batch_size=bs, shuffle=True, shuffle_seed=1)
        rates = []
        for _ in (0, 1):
            for s in ds.streams:
                s._downloader.clean_up()  # no kept-alive boto3 connection shared with forked workers
            dl = DataLoader(ds, batch_size=bs, num_workers=workers, collate_fn=as_list)
            rates.append(epoch(dl, "key", "img", n, size))
        return rates[0], rates[1]

    def lit(workers: int, tmp: Path) -> tuple[float, float]:
        import litdata
        from litdata.streaming import downloader

        # obstore refuses http:// endpoints unless its client options allow it.
        downloader._OBSTORE_CLIENT_OPTIONS["allow_http"] = "true"  # type: ignore[index]
        opts = {"endpoint_url": endpoint, "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"], "region_name": os.environ["AWS_REGION"]}
        ds = litdata.StreamingDataset(urls["litdata"], cache_dir=str(tmp / "litdata"), shuffle=True, seed=1,
                                      storage_options=opts)
        dl = litdata.StreamingDataLoader(ds, batch_size=bs, num_workers=workers, collate_fn=as_list)
        return epoch(dl, "key", "img", n, size), epoch(dl, "key", "img", n, size)

    def s3torch(workers: int, tmp: Path) -> tuple[float, float]:
        rates = []
        for _ in (0, 1):
            dl = DataLoader(S3TorchTars(wds_shards, endpoint), batch_size=bs, num_workers=workers,
                            collate_fn=as_list)
            rates.append(epoch(dl, "__key__", "img.bin", n, size))
        return rates[0], rates[1]

    data_bytes = n * size
    small = f"{max(data_bytes // 4 >> 20, 8)}MiB"
    loaders = {
        "stoker-mem": stoker("1GiB", True),
        f"stoker-disk ({small} memory)": stoker(small, True),
        "stoker-mem, per sample": stoker("1GiB", False),
        "stoker-mem, copy=True": stoker("1GiB", True, copy=True),
        f"stoker-disk ({small} memory), copy=True": stoker(small, True, copy=True),
        "webdataset (S3 stream)": webdataset(False),
        "webdataset cache_dir": webdataset(True),
        "mosaicml-streaming": mosaic,
        "litdata": lit,
        "s3torchconnector + wds tar": s3torch,
    }
    only = [x for x in args.only.split(",") if x]
    return {k: v for k, v in loaders.items() if not only or any(k == o[1:] if o[0] == "=" else o in k for o in only)}


# -- main ---------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4096)
    ap.add_argument("--sample-size", type=int, default=64 << 10)
    ap.add_argument("--per-shard", type=int, default=128, help="samples per tar / MDS shard / litdata chunk")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--rate-kbs", type=int, default=90_000, help="toxiproxy bandwidth per connection, KB/s")
    ap.add_argument("--stokerd-args", default="--memory-region locked",
                    help="more stokerd flags (default: share the memory tier, as auto does on a GPU host)")
    ap.add_argument("--only", default="", help="comma-separated substrings of loader names to run (=NAME: that name alone)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)

    with ExitStack() as stack:
        root = temp_root("stoker-peers-")
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        s3srv = S3Server(bin=find_versitygw(), root=root / "s3")
        s3srv.start()
        stack.callback(s3srv.stop)
        s3 = s3srv.client()
        s3.create_bucket(Bucket=BUCKET)
        endpoint = start_toxiproxy(stack, root, f"127.0.0.1:{s3srv.port}", args.latency_ms, args.rate_kbs)
        os.environ.update(s3srv.env())
        os.environ["AWS_ENDPOINT_URL_S3"] = os.environ["AWS_ENDPOINT_URL"] = endpoint  # every loader reads the proxy
        os.environ["S3_ENDPOINT_URL"] = endpoint  # Mosaic's variable
        (root / "bin").mkdir()
        stokerd_bin = build_stokerd(root / "bin")
        print(f"writing {args.samples} samples of {args.sample_size} bytes in each format...", flush=True)
        urls = write_all(root / "data", s3, args.samples, args.sample_size, args.per_shard)
        # Stoker's own format: the tars and `stoker index` beside them (as
        # MDS and litdata write their index.json), read straight from S3.
        stoker_cli = str(root / "bin" / "stoker")
        subprocess.run(["go", "build", "-o", stoker_cli, "./cmd/stoker"], cwd=HERE.parent.parent, check=True)
        subprocess.run([stoker_cli, "index", urls["wds"]], check=True, capture_output=True,
                       env={**os.environ, **s3srv.env()})
        shutil.rmtree(root / "data", ignore_errors=True)
        loaders = make_loaders(args, urls, endpoint, stokerd_bin, root)
        workers = [int(w) for w in args.workers.split(",")]
        print(f"S3 through toxiproxy: {args.latency_ms} ms, {args.rate_kbs / 1000:.0f} MB/s per connection; "
              f"batch {args.batch_size}; {os.cpu_count()} CPUs; loaders: {', '.join(loaders)}", flush=True)
        results: dict[str, dict[int, dict[str, list[float]]]] = {k: {w: {"cold": [], "warm": []} for w in workers}
                                                                  for k in loaders}
        rng = random.Random(7)
        for r in range(args.repeat):
            trials = [(name, w) for name in loaders for w in workers]
            rng.shuffle(trials)
            for name, w in trials:
                tmp = Path(tempfile.mkdtemp(prefix="trial-", dir=root))
                try:
                    cold, warm = loaders[name](w, tmp)
                except Exception as err:  # a loader that fails is reported, the others go on
                    print(f"  round {r} {name:<34} w{w}: FAILED: {type(err).__name__}: {err}", flush=True)
                    continue
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
                results[name][w]["cold"].append(cold)
                results[name][w]["warm"].append(warm)
                print(f"  round {r} {name:<34} w{w}: cold {cold:8.0f}  warm {warm:8.0f} samples/s", flush=True)
        print()
        print(table(results, workers))
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "results": results}, indent=2))
    return 0


def table(results: dict[str, dict[int, dict[str, list[float]]]], workers: list[int]) -> str:
    """A markdown table: each loader's range of samples/s per column, and
    Stoker's ratio of medians to the best peer's."""
    cols = [(w, kind) for w in workers for kind in ("cold", "warm")]
    peers = [k for k in results if not k.startswith("stoker")]

    def med(name: str, w: int, kind: str) -> float:
        xs = results[name][w][kind]
        return statistics.median(xs) if xs else 0.0

    best = {c: max((med(p, *c) for p in peers), default=0.0) for c in cols}
    head = "| system | " + " | ".join(f"w{w} {kind}" for w, kind in cols) + " |"
    lines = [head, "| --- |" + " --- |" * len(cols)]
    for name in results:
        cells = []
        for w, kind in cols:
            xs = results[name][w][kind]
            if not xs:
                cells.append("failed")
                continue
            cell = f"{min(xs):.0f}-{max(xs):.0f}"
            if name.startswith("stoker") and best[(w, kind)]:
                cell += f" ({med(name, w, kind) / best[(w, kind)]:.2f}x)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
