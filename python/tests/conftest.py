"""Session fixtures: a real versitygw, shards in it, and a real stokerd."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import S3Server, Stokerd, build_stokerd, find_versitygw, temp_root  # noqa: E402
from shards import install_s3_opener, reference, upload, write_big_shard, write_shards  # noqa: E402

BUCKET = "stoker-test"
# Uneven shard sizes: steps end short for most batch sizes and world sizes.
COUNTS = (23, 31, 17, 40, 26)


@dataclass
class Data:
    """The test datasets in S3 and webdataset's own reading of them."""

    url: str  # the main dataset (a prefix)
    shard_urls: list[str]
    reference: dict[str, dict[str, Any]]  # key -> webdataset sample
    big_url: str  # one shard of large samples
    big_reference: dict[str, dict[str, Any]]
    many_url: str  # one shard of 40 samples of 1 MiB: more than a client buffers
    corrupt_url: str  # a good shard and a truncated one
    corrupt_shard: str  # the truncated shard's object URL
    missing_url: str  # a prefix with no objects

    @property
    def keys(self) -> set[str]:
        return set(self.reference)


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    root = temp_root("stoker-pytest-")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server(workdir: Path) -> Iterator[S3Server]:
    srv = S3Server(bin=find_versitygw(), root=workdir / "s3")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def stokerd_bin(workdir: Path) -> str:
    (workdir / "bin").mkdir()
    return build_stokerd(workdir / "bin")


@pytest.fixture(scope="session")
def data(s3_server: S3Server, workdir: Path) -> Data:
    s3 = s3_server.client()
    s3.create_bucket(Bucket=BUCKET)
    shard_urls = upload(s3, BUCKET, "train", write_shards(workdir / "shards" / "train", COUNTS))
    upload(s3, BUCKET, "many", [write_big_shard(workdir / "shards" / "many", samples=40, size=1 << 20, name="many")])
    big_urls = upload(s3, BUCKET, "big", [write_big_shard(workdir / "shards" / "big", samples=6, size=3 << 20)])

    good = write_shards(workdir / "shards" / "corrupt", (5,), seed=11, name="good")[0]
    whole = write_shards(workdir / "shards" / "corrupt", (6,), seed=12, name="truncated")[0]
    raw = whole.read_bytes()
    whole.write_bytes(raw[: len(raw) // 2 + 100])  # cut inside a member
    corrupt_urls = upload(s3, BUCKET, "corrupt", [good, whole])

    install_s3_opener(s3_server.client)
    return Data(
        url=f"s3://{BUCKET}/train/",
        shard_urls=shard_urls,
        reference=reference(shard_urls),
        big_url=f"s3://{BUCKET}/big/",
        big_reference=reference(big_urls),
        many_url=f"s3://{BUCKET}/many/",
        corrupt_url=f"s3://{BUCKET}/corrupt/",
        corrupt_shard=corrupt_urls[1],
        missing_url=f"s3://{BUCKET}/no-such-prefix/",
    )


@pytest.fixture(scope="session")
def stokerd(stokerd_bin: str, s3_server: S3Server, workdir: Path, data: Data) -> Iterator[Stokerd]:
    """The stokerd shared by the tests that do not stop it."""
    files = workdir / "files"  # local datasets the tests write (stokerd refuses other file:// URLs)
    files.mkdir(exist_ok=True)
    srv = Stokerd(bin=stokerd_bin, root=workdir / "stokerd", env=s3_server.env(), extra=("--allow-file-root", str(files)))
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture()
def own_stokerd(stokerd_bin: str, s3_server: S3Server, tmp_path: Path, data: Data) -> Iterator[Stokerd]:
    """A stokerd for one test, which may kill and restart it."""
    srv = Stokerd(bin=stokerd_bin, root=tmp_path / "stokerd", env=s3_server.env())
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope="session")
def server(stokerd: Stokerd) -> str:
    """The shared stokerd's gRPC address."""
    return stokerd.address


@pytest.fixture(scope="session")
def columnar(s3_server: S3Server, workdir: Path) -> Any:
    """Parquet datasets written by pyarrow (see columnar_data), in S3."""
    import columnar_data

    fs = columnar_data.s3_filesystem(s3_server.endpoint, s3_server.access, s3_server.secret, "us-east-1")
    return columnar_data.make(s3_server.client(), fs, "stoker-columnar", workdir / "columnar")
