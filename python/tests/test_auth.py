"""Bearer-token auth against a real stokerd started with --auth-token-file:
the token from token=, token_file= (re-read when it changes) or
$STOKER_TOKEN, on unary calls and streams; without one, PermissionDenied
(gRPC UNAUTHENTICATED) saying how to send one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import COUNTS, Data
from servers import S3Server, Stokerd

import stoker


def write(path: Path, body: str) -> None:
    """Replace path by rename, as a secret rotator does."""
    tmp = path.with_suffix(".new")
    tmp.write_text(body)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def auth_stokerd(stokerd_bin: str, s3_server: S3Server, data: Data, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stokerd]:
    root = tmp_path_factory.mktemp("auth")
    write(root / "tokens", "# accepted tokens\nold-token\nnew-token\n")
    srv = Stokerd(bin=stokerd_bin, root=root / "stokerd", env=s3_server.env(),
                  extra=("--auth-token-file", str(root / "tokens")))
    srv.start()
    yield srv
    srv.kill()


def samples(c: stoker.Client, url: str) -> int:
    return sum(len(b.samples) for b in c.stream(url, batch_size=16, seed=1))


def test_no_token_is_refused(auth_stokerd: Stokerd, data: Data, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STOKER_TOKEN", raising=False)
    for token in (None, "guess"):
        with stoker.Client(auth_stokerd.address, token=token, retries=0) as c:
            with pytest.raises(stoker.PermissionDenied) as e:
                c.stats()
            assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert "STOKER_TOKEN" in str(e.value)
            with pytest.raises(stoker.PermissionDenied):
                samples(c, data.url)


def test_token_argument_and_environment(auth_stokerd: Stokerd, data: Data, monkeypatch: pytest.MonkeyPatch) -> None:
    with stoker.Client(auth_stokerd.address, token="old-token") as c:
        assert samples(c, data.url) == sum(COUNTS)
    monkeypatch.setenv("STOKER_TOKEN", "new-token")
    with stoker.Client(auth_stokerd.address) as c:
        assert len(c.open_dataset(data.url).shards) == len(COUNTS)
    with pytest.raises(stoker.InvalidArgument):
        stoker.Client(auth_stokerd.address, token="x", token_file="/nonexistent")


def test_token_file_is_reread(auth_stokerd: Stokerd, data: Data, tmp_path: Path) -> None:
    f = tmp_path / "token"
    write(f, "wrong-token\n")
    with stoker.Client(auth_stokerd.address, token_file=f, retries=0) as c:
        with pytest.raises(stoker.PermissionDenied):
            c.stats()
        write(f, "# rotated\nnew-token\n")
        assert samples(c, data.url) == sum(COUNTS)
        write(f, "\n")  # a rewrite with no token keeps the one read before
        assert c.stats().samples_served > 0
    empty = tmp_path / "empty"
    empty.write_text("# nothing\n")
    with pytest.raises(stoker.InvalidArgument):
        stoker.Client(auth_stokerd.address, token_file=empty)
