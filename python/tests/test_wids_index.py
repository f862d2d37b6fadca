"""`stoker index` writes an index that webdataset's own `wids` reads: the
same shards, sample counts and keys as webdataset's tar reader finds."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import webdataset as wds
import wids
from servers import REPO
from shards import write_shards

COUNTS = (23, 31, 17, 40)


@pytest.fixture(scope="module")
def stoker_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the stoker command from this repository (or use $STOKER)."""
    if os.environ.get("STOKER"):
        return os.environ["STOKER"]
    out = tmp_path_factory.mktemp("bin") / "stoker"
    res = subprocess.run(["go", "build", "-o", str(out), "./cmd/stoker"], cwd=REPO, capture_output=True, text=True,
                         check=False)
    assert res.returncode == 0, f"go build ./cmd/stoker failed:\n{res.stdout}{res.stderr}"
    return str(out)


def webdataset_samples(path: Path) -> list[dict[str, object]]:
    """A shard's samples as webdataset's tar reader gives them (raw bytes)."""
    return list(wds.WebDataset(str(path), shardshuffle=False, empty_check=False))


def test_wids_reads_stoker_index(stoker_bin: str, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    paths = write_shards(folder, COUNTS, seed=5)
    res = subprocess.run([stoker_bin, "index", f"file://{folder}/", "--progress", "0", "--parallel", "3"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, f"stoker index exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    index = folder / "wids-index.json"
    desc = json.loads(index.read_text())
    assert [s["url"] for s in desc["shardlist"]] == [p.name for p in paths]

    ds = wids.ShardListDataset(f"file://{index}", cache_dir=str(tmp_path / "wids-cache"), transformations=[])
    try:
        reference = [webdataset_samples(p) for p in paths]
        assert [len(r) for r in reference] == list(COUNTS)
        assert [s["nsamples"] for s in ds.shards] == list(COUNTS)
        assert len(ds) == sum(COUNTS)
        flat = [s for r in reference for s in r]
        for i, want in enumerate(flat):
            got = ds[i]
            assert got["__key__"] == want["__key__"], i
            fields = {k[1:]: v.read() for k, v in got.items() if k.startswith(".")}
            assert fields == {k: v for k, v in want.items() if not k.startswith("__")}, want["__key__"]
        assert ds[len(ds) - 1]["__shard__"] == f"file://{paths[-1]}"
    finally:
        ds.close()
