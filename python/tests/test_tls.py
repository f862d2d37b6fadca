"""TLS to a real stokerd (--tls-cert/--tls-key/--tls-ca: mutual TLS on TCP,
its unix socket plaintext), with a CA and certificates made in the test."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import certs
import grpc
import pytest
from check import assert_exactly_once, assert_matches_reference
from conftest import COUNTS, Data
from servers import S3Server, Stokerd
from test_shm import unix_address

import stoker
from stoker.torch import StokerDataset

pytestmark = pytest.mark.skipif(not certs.available(), reason="needs the openssl command to make certificates")


@dataclass(frozen=True)
class PKI:
    ca: certs.CA  # the job's CA: it issued the server's and the trainer's certificates
    server: certs.Pair  # IP SAN 127.0.0.1, serverAuth
    trainer: certs.Pair  # clientAuth
    other_ca: certs.CA  # a CA that issued nothing the server knows
    stranger: certs.Pair  # a client certificate from other_ca

    def client_args(self) -> dict[str, Any]:
        """The Client arguments of mutual TLS with the trainer's certificate."""
        return dict(tls_ca=self.ca.cert, tls_cert=self.trainer.cert, tls_key=self.trainer.key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    d = tmp_path_factory.mktemp("pki")
    ca, other = certs.CA.make(d, "job"), certs.CA.make(d, "other")
    return PKI(
        ca=ca,
        server=ca.issue(d, "stokerd", server=True, ips=("127.0.0.1",)),
        trainer=ca.issue(d, "trainer", client=True),
        other_ca=other,
        stranger=other.issue(d, "stranger", client=True),
    )


@pytest.fixture(scope="module")
def tls_stokerd(stokerd_bin: str, s3_server: S3Server, data: Data, pki: PKI) -> Iterator[Stokerd]:
    """A stokerd with mutual TLS on TCP and a (plaintext) unix socket."""
    root = Path(tempfile.mkdtemp(prefix="stoker-tls-", dir="/tmp"))  # short: sun_path
    srv = Stokerd(bin=stokerd_bin, root=root, env=s3_server.env(), extra=(
        "--unix", str(root / "s.sock"),
        "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), "--tls-ca", str(pki.ca.cert),
    ))
    srv.start()
    yield srv
    srv.kill()
    shutil.rmtree(root, ignore_errors=True)


def epoch(c: stoker.Client, url: str, **kw: Any) -> list[tuple[int, str, int, dict[str, bytes]]]:
    """An epoch's samples, their fields copied (shm views go with the batch)."""
    return [(s.position, s.key, s.shard, {k: bytes(v) for k, v in s.fields.items()})
            for b in c.stream(url, batch_size=8, seed=7, epoch=2, **kw) for s in b.samples]


def as_list(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A collate_fn that keeps the samples as they are."""
    return batch


def no_retries(c: stoker.Client) -> list[int]:
    """The backoff waits c makes from now on (a list the test reads)."""
    waits: list[int] = []
    wait = c._retry.wait

    def counted(failures: int) -> float:
        waits.append(failures)
        return wait(failures)

    c._retry.wait = counted  # type: ignore[method-assign]
    return waits


def test_mtls_epoch_equals_the_unix_socket_read(tls_stokerd: Stokerd, data: Data, pki: PKI) -> None:
    with stoker.Client(tls_stokerd.address, **pki.client_args()) as tls, \
            stoker.Client(unix_address(tls_stokerd)) as local:
        urls = [s.object for s in tls.open_dataset(data.url).shards]
        got = epoch(tls, data.url)
        assert got == epoch(local, data.url)
        assert got == epoch(local, data.url, shm=True)
    assert [p for p, _, _, _ in got] == list(range(sum(COUNTS)))
    assert_exactly_once((k for _, k, _, _ in got), data.keys)
    for _, key, shard, fields in got:
        assert_matches_reference({"__key__": key, "__url__": urls[shard], **fields}, data.reference)


def test_credentials_still_make_a_tls_channel(tls_stokerd: Stokerd, data: Data, pki: PKI) -> None:
    creds = grpc.ssl_channel_credentials(pki.ca.cert.read_bytes(), pki.trainer.key.read_bytes(),
                                         pki.trainer.cert.read_bytes())
    with stoker.Client(tls_stokerd.address, credentials=creds) as c:
        assert len(c.open_dataset(data.url).shards) == len(COUNTS)


def test_mtls_stream_resumes_after_server_restart(
    stokerd_bin: str, s3_server: S3Server, data: Data, pki: PKI, tmp_path: Path
) -> None:
    """A broken TLS connection is retried as any other (the handshake
    errors that are not are told apart): the stream resumes on the
    restarted server."""
    srv = Stokerd(bin=stokerd_bin, root=tmp_path / "stokerd", env=s3_server.env(), extra=(
        "--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), "--tls-ca", str(pki.ca.cert)))
    srv.start()
    try:
        with stoker.Client(srv.address, **pki.client_args()) as c:
            expected = [s.key for b in c.stream(data.many_url, batch_size=2, seed=4) for s in b.samples]
            it = c.stream(data.many_url, batch_size=2, seed=4)
            got = [s.key for b in itertools.islice(it, 2) for s in b.samples]
            srv.restart()  # the stream's connection breaks here
            got += [s.key for b in it for s in b.samples]
            assert c.stats().samples_served < len(expected)  # resumed, not read again
    finally:
        srv.kill()
    assert got == expected


def test_plaintext_client_is_told_tls_is_required(tls_stokerd: Stokerd, data: Data) -> None:
    with stoker.Client(tls_stokerd.address) as c:
        waits = no_retries(c)
        with pytest.raises(stoker.PermissionDenied) as exc:
            c.stats()
        assert "requires TLS" in str(exc.value), exc.value
        with pytest.raises(stoker.PermissionDenied):
            next(c.stream(data.url, batch_size=4))
    assert waits == []


@pytest.mark.parametrize(
    "case,want",
    [
        ("wrong CA", "is not verified by the CA bundle"),
        ("no client certificate", "requires a client certificate"),
        ("client certificate of another CA", "refused the client certificate"),
        ("host not in the certificate", "does not name localhost"),
    ],
)
def test_failed_handshake_is_a_clear_error_not_retried(
    tls_stokerd: Stokerd, data: Data, pki: PKI, case: str, want: str
) -> None:
    address, args = tls_stokerd.address, pki.client_args()
    if case == "wrong CA":
        args["tls_ca"] = pki.other_ca.cert
    elif case == "no client certificate":
        args = dict(tls_ca=pki.ca.cert)
    elif case == "client certificate of another CA":
        args.update(tls_cert=pki.stranger.cert, tls_key=pki.stranger.key)
    else:
        address = f"localhost:{tls_stokerd.port}"
    with stoker.Client(address, retries=50, **args) as c:
        waits = no_retries(c)
        with pytest.raises(stoker.TLSError) as exc:
            c.stats()
        assert want in str(exc.value) and "not retried" in str(exc.value), exc.value
        with pytest.raises(stoker.TLSError) as exc:
            next(c.stream(data.url, batch_size=4))
        assert want in str(exc.value), exc.value
    assert waits == []
    assert isinstance(exc.value, stoker.ServerUnavailable)


def test_tls_client_of_a_plaintext_port(server: str, pki: PKI) -> None:
    with stoker.Client(server, **pki.client_args()) as c:
        waits = no_retries(c)
        with pytest.raises(stoker.TLSError) as exc:
            c.stats()
    assert "did not answer with TLS" in str(exc.value), exc.value
    assert waits == []


def test_unix_socket_ignores_tls_options(tls_stokerd: Stokerd, data: Data, pki: PKI) -> None:
    with stoker.Client(unix_address(tls_stokerd), **pki.client_args()) as c:
        assert len(c.open_dataset(data.url).shards) == len(COUNTS)
        assert len(epoch(c, data.url, shm=True)) == sum(COUNTS)
    creds = grpc.ssl_channel_credentials(pki.ca.cert.read_bytes())
    with stoker.Client(unix_address(tls_stokerd), credentials=creds) as c:
        assert c.stats().active_streams == 0


def test_rotated_client_files_are_read_by_a_new_client(tls_stokerd: Stokerd, pki: PKI, tmp_path: Path) -> None:
    cert, key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    shutil.copy(pki.stranger.cert, cert)
    shutil.copy(pki.stranger.key, key)
    old = stoker.Client(tls_stokerd.address, tls_ca=pki.ca.cert, tls_cert=cert, tls_key=key)
    with pytest.raises(stoker.TLSError):
        old.stats()
    shutil.copy(pki.trainer.cert, cert)
    shutil.copy(pki.trainer.key, key)
    with stoker.Client(tls_stokerd.address, tls_ca=pki.ca.cert, tls_cert=cert, tls_key=key) as new:
        assert new.stats() is not None
    old.close()


@pytest.mark.parametrize(
    "args,want",
    [
        (dict(tls_cert="c.pem"), "go together"),
        (dict(tls_key="k.pem"), "go together"),
        (dict(tls_ca="/no/such/ca.pem"), "tls_ca /no/such/ca.pem"),
    ],
)
def test_tls_arguments_are_checked(args: dict[str, str], want: str) -> None:
    with pytest.raises(stoker.InvalidArgument) as exc:
        stoker.Client("127.0.0.1:1", **args)
    assert want in str(exc.value), exc.value


def test_tls_files_must_be_pem(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(stoker.InvalidArgument, match="no PEM"):
        stoker.Client("127.0.0.1:1", tls_ca=bad)


def test_credentials_and_tls_files_are_one_or_the_other(pki: PKI) -> None:
    with pytest.raises(stoker.InvalidArgument, match="not both"):
        stoker.Client("127.0.0.1:1", credentials=grpc.ssl_channel_credentials(), tls_ca=pki.ca.cert)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_torch_dataset_over_mtls(tls_stokerd: Stokerd, data: Data, pki: PKI, num_workers: int) -> None:
    from torch.utils.data import DataLoader

    ds = StokerDataset(data.url, tls_stokerd.address, batch_size=8, seed=3, **pki.client_args())
    loader = DataLoader(ds, batch_size=8, num_workers=num_workers, collate_fn=as_list,
                        multiprocessing_context="spawn" if num_workers else None)
    seen = [s for batch in loader for s in batch]
    assert_exactly_once((s["__key__"] for s in seen), data.keys)
    for s in seen:
        assert_matches_reference(s, data.reference)


def test_torch_dataset_without_client_certificate_fails(tls_stokerd: Stokerd, data: Data, pki: PKI) -> None:
    ds = StokerDataset(data.url, tls_stokerd.address, batch_size=8, tls_ca=pki.ca.cert)
    with pytest.raises(stoker.TLSError, match="requires a client certificate"):
        next(iter(ds))


def test_tf_dataset_over_mtls(tls_stokerd: Stokerd, data: Data, pki: PKI) -> None:
    import stoker.tf

    ds = stoker.tf.dataset(data.url, tls_stokerd.address, batch_size=8, seed=3, **pki.client_args())
    keys = [e["__key__"].numpy().decode() for e in ds]
    assert_exactly_once(keys, data.keys)
    with stoker.Client(unix_address(tls_stokerd)) as c:
        assert keys == [s.key for s in c.read_epoch(data.url, batch_size=8, seed=3, progress=False)]
