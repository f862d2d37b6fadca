"""Test shards written with webdataset's own TarWriter, and the reference
reading of them by webdataset.WebDataset straight from S3."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image


def make_sample(shard: int, i: int, rng: random.Random) -> dict[str, Any]:
    """One sample with the common WebDataset field types."""
    size = rng.choice([0, 1, 17, 500, 4096, 20_000])
    img = Image.new("RGB", (8 + i % 5, 6), color=(i % 256, (3 * i) % 256, 200))
    png = io.BytesIO()
    img.save(png, format="PNG")
    return {
        "__key__": f"d{shard}/x{i:06d}",
        "cls": i % 10,
        "txt": f"sample {i} of shard {shard}",
        "json": {"i": i, "shard": shard, "tags": ["a", "b"][: i % 3]},
        "npy": np.arange(i % 7 + 1, dtype=np.float32) * i,
        "bin": rng.randbytes(size),
        "seg.png": png.getvalue(),
    }


def write_shards(folder: Path, counts: Sequence[int], seed: int = 7, name: str = "train") -> list[Path]:
    """Write len(counts) shards with TarWriter; shard k holds counts[k] samples."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths: list[Path] = []
    n = 0
    for k, count in enumerate(counts):
        path = folder / f"{name}-{k:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for _ in range(count):
                sink.write(make_sample(k, n, rng))
                n += 1
        paths.append(path)
    return paths


def write_big_shard(folder: Path, samples: int, size: int, seed: int = 3, name: str = "big") -> Path:
    """One shard of large raw samples (to make the server split batches,
    or to be more than a client buffers)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    path = folder / f"{name}-000000.tar"
    with wds.TarWriter(str(path)) as sink:
        for i in range(samples):
            sink.write({"__key__": f"big{i:04d}", "bin": rng.randbytes(size), "cls": i})
    return path


def write_raw_shards(folder: Path, shards: int, samples: int, size: int, seed: int = 5, name: str = "raw") -> list[Path]:
    """Shards of raw samples of ``size`` random bytes (and a small cls
    field), keys unique over all of them: a dataset of a chosen size."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths: list[Path] = []
    for k in range(shards):
        path = folder / f"{name}-{k:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for i in range(samples):
                sink.write({"__key__": f"{name}{k}/s{i:04d}", "bin": rng.randbytes(size), "cls": i})
        paths.append(path)
    return paths


def upload(s3: Any, bucket: str, prefix: str, paths: Sequence[Path]) -> list[str]:
    """Put each file as bucket/prefix/name; return the s3:// URLs."""
    urls = []
    for p in paths:
        key = f"{prefix}/{p.name}"
        s3.put_object(Bucket=bucket, Key=key, Body=p.read_bytes())
        urls.append(f"s3://{bucket}/{key}")
    return urls


def install_s3_opener(s3_factory: Any) -> None:
    """Let webdataset open s3:// URLs by streaming GetObject from our S3."""

    def gopen_s3(url: str, mode: str = "rb", bufsize: int = 8192, **kw: Any) -> Any:
        assert mode.startswith("r"), mode
        bucket, _, key = url[len("s3://") :].partition("/")
        return s3_factory().get_object(Bucket=bucket, Key=key)["Body"]

    wds.gopen_schemes["s3"] = gopen_s3


def reference(urls: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Samples as webdataset.WebDataset reads them from the shard URLs, by key."""
    out: dict[str, dict[str, Any]] = {}
    for sample in wds.WebDataset(list(urls), shardshuffle=False, empty_check=False):
        key = sample["__key__"]
        assert key not in out, f"webdataset read key {key} twice"
        out[key] = {k: v for k, v in sample.items() if k != "__local_path__"}
    return out
