"""StokerDataset's merged steps: one stream reading a whole epoch in
batched mode asks the server for steps of several batches and cuts them
here, with the batches, order and states of one step per batch."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from check import assert_exactly_once
from conftest import BUCKET, COUNTS, Data
from servers import S3Server, Stokerd
from shards import upload, write_raw_shards
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

import stoker
from stoker.torch import StokerDataset

MERGE_SAMPLES = StokerDataset.MERGE_SAMPLES


@pytest.fixture()
def step_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch_size of every stream the datasets open."""
    sizes: list[int] = []
    stream = stoker.Client.stream

    def spy(self: stoker.Client, url: str, **kw: Any) -> Any:
        sizes.append(kw["batch_size"])
        return stream(self, url, **kw)

    monkeypatch.setattr(stoker.Client, "stream", spy)
    return sizes


def keys_of(batches: list[Any]) -> list[list[str]]:
    return [[s["__key__"] if "__key__" in s else s["key"] for s in b] for b in batches]


@pytest.fixture(autouse=True)
def counted(server: str, data: Data) -> None:
    """The dataset's shards counted (a stream reached each): the mean
    sample size that bounds a merged step is known only then."""
    with stoker.Client(server) as c:
        for _ in c.stream(data.url, batch_size=64):
            pass
        assert c.open_dataset(data.url).counted


def epoch_batches(server: str, data: Data, merge: bool, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> list[list[str]]:
    monkeypatch.setattr(StokerDataset, "MERGE_SAMPLES", MERGE_SAMPLES if merge else 0)
    ds = StokerDataset(data.url, server, batch_size=4, seed=9, epoch=2, batched=True, **kw)
    return keys_of(list(DataLoader(ds, batch_size=None, num_workers=0)))


@pytest.mark.parametrize("drop_last", [False, True])
def test_merged_steps_give_the_batches_of_one_step_each(
    server: str, data: Data, monkeypatch: pytest.MonkeyPatch, step_sizes: list[int], drop_last: bool
) -> None:
    one = epoch_batches(server, data, False, monkeypatch, drop_last=drop_last)
    assert step_sizes == [4]
    merged = epoch_batches(server, data, True, monkeypatch, drop_last=drop_last)
    assert step_sizes == [4, 32]  # 8 batches a step: the small test samples are far under MERGE_BYTES
    assert merged == one
    total = sum(COUNTS)
    sizes = [4] * (total // 4) + ([] if drop_last or total % 4 == 0 else [total % 4])
    assert [len(b) for b in merged] == sizes
    if not drop_last:
        assert_exactly_once((k for b in merged for k in b), data.keys)


def test_merged_steps_resume_inside_a_step(
    server: str, data: Data, monkeypatch: pytest.MonkeyPatch, step_sizes: list[int]
) -> None:
    def make() -> StatefulDataLoader:
        ds = StokerDataset(data.url, server, batch_size=4, seed=4, epoch=1, batched=True)
        return StatefulDataLoader(ds, batch_size=None, num_workers=0)

    full = keys_of(list(make()))
    loader = make()
    it = iter(loader)
    first = keys_of([next(it) for _ in range(3)])  # 3 of the first step's 8 batches
    state = loader.state_dict()
    del it, loader
    assert first == full[:3]
    assert step_sizes == [32, 32]  # merged: the 3 batches came from one step of 8

    resumed = make()
    resumed.load_state_dict(state)
    assert keys_of(list(resumed)) == full[3:]

    # The state is a global cursor: a dataset that does not merge resumes it too.
    monkeypatch.setattr(StokerDataset, "MERGE_SAMPLES", 0)
    other = make()
    other.load_state_dict(state)
    assert keys_of(list(other)) == full[3:]


def test_large_samples_are_not_merged(
    server: str, data: Data, monkeypatch: pytest.MonkeyPatch, step_sizes: list[int]
) -> None:
    """Steps stay under MERGE_BYTES of the dataset's mean sample."""
    monkeypatch.setattr(StokerDataset, "MERGE_BYTES", 1)
    assert epoch_batches(server, data, True, monkeypatch) == epoch_batches(server, data, False, monkeypatch)
    assert step_sizes == [4, 4]


def test_merged_steps_decode_each_batch(server: str, data: Data, monkeypatch: pytest.MonkeyPatch) -> None:
    def tag(d: dict[str, Any]) -> dict[str, Any]:
        return {"key": d["__key__"], "n": len(d)}

    one = epoch_batches(server, data, False, monkeypatch, decode=tag)
    merged = epoch_batches(server, data, True, monkeypatch, decode=tag)
    assert merged == one and all(len(b) for b in merged)


def test_merged_steps_through_a_cache_four_times_smaller_than_the_data(
    stokerd_bin: str, s3_server: S3Server, workdir: Path, data: Data, step_sizes: list[int]
) -> None:
    """A dataset of 16 shards of 2 MiB (32 MiB) through a stokerd whose
    memory tier holds 4 MiB and its disk tier 4 MiB (the whole cache a
    quarter of the data), read twice with merged steps over the local fast
    path (views; disk-tier fields as the client's mappings of the cache
    files): every sample once with its own bytes, and the bytes read from
    S3 per epoch bounded (what the cache cannot hold is read again, and no
    more than once)."""
    paths = write_raw_shards(workdir / "shards" / "merge-big", 16, 8, 256 << 10, name="mbig")
    upload(s3_server.client(), BUCKET, "merge-big", paths)
    url = f"s3://{BUCKET}/merge-big/"
    ref = {}
    for p in paths:
        with tarfile.open(p) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".bin"):
                    f = tar.extractfile(m)
                    assert f is not None
                    ref[m.name[: -len(".bin")]] = f.read()
    data_bytes = sum(len(v) for v in ref.values())
    root = Path(tempfile.mkdtemp(prefix="stoker-merge-", dir="/tmp"))
    srv = Stokerd(
        bin=stokerd_bin,
        root=root,
        env=s3_server.env(),
        extra=(
            "--unix",
            str(root / "s.sock"),
            "--memory-region",
            "locked",
            "--memory-cache",
            "4MiB",
            "--disk-cache",
            "4MiB",
        ),
    )
    srv.start()
    try:
        with stoker.Client(srv.address) as c:
            for _ in c.stream(url, batch_size=64):  # counts the shards: the mean sample is known after
                pass
            before = c.stats()
            ds = StokerDataset(url, srv.address, batch_size=4, seed=3, batched=True)
            loader = DataLoader(ds, batch_size=None, num_workers=0)
            for epoch in (1, 2):
                ds.set_epoch(epoch)
                seen: list[str] = []
                for batch in loader:
                    assert len(batch) == 4
                    for s in batch:
                        assert bytes(s["bin"]) == ref[s["__key__"]], s["__key__"]
                        seen.append(s["__key__"])
                del batch, s
                assert_exactly_once(seen, list(ref))
                after = c.stats()
                got = after.storage_bytes - before.storage_bytes
                print(
                    f"epoch {epoch}: S3 {got / data_bytes:.2f}x the samples' bytes, "
                    f"disk hits {after.disk_hits - before.disk_hits}, "
                    f"memory hits {after.memory_hits - before.memory_hits}, misses {after.misses - before.misses}"
                )
                # 28 MiB or more cannot be in the cache; none is read twice
                assert 0.6 * data_bytes <= got <= 1.5 * data_bytes
                before = after
        # merged: several batches of 4 a step (7 here: 8 MiB of the mean sample, tar headers included)
        assert len(step_sizes) == 3 and all(k > 4 and k % 4 == 0 for k in step_sizes[1:]), step_sizes
    finally:
        srv.kill()
        shutil.rmtree(root, ignore_errors=True)
