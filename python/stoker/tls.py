"""TLS for the client: channel credentials from PEM files, and what a
failed handshake means.

``stokerd --tls-cert/--tls-key`` serves gRPC on TCP with TLS, and with
``--tls-ca`` requires a client certificate its CA bundle verifies (mutual
TLS). Its unix socket stays plaintext, so TLS options are ignored for
``unix:`` addresses. The name checked against the server's certificate is
the host of the address (a DNS name, or an IP address such as 127.0.0.1,
which the certificate must list as an IP SAN).

gRPC Python reads the files once, when the channel is made, and cannot
re-read them: a rotated certificate or CA bundle is used by a new Client.

A handshake that fails (a CA that does not verify the server, a
certificate that does not name the host, a client certificate missing or
refused) comes from gRPC as UNAVAILABLE, like a server that is down; it
does not go away by retrying, so the client raises :class:`TLSError` at
once, saying what is wrong.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import grpc

from .errors import InvalidArgument, TLSError

__all__ = ["TLSFiles", "is_local", "handshake_error"]

PathLike = str | os.PathLike[str]


def is_local(address: str) -> bool:
    """Whether address is a unix socket, which stokerd serves in plaintext."""
    return address.startswith(("unix:", "unix-abstract:"))


@dataclass(frozen=True)
class TLSFiles:
    """The PEM files of a TLS client: ``ca`` verifies the server (default:
    the system's roots), ``cert`` and ``key`` (together) are the client
    certificate a server started with ``--tls-ca`` requires."""

    ca: str = ""
    cert: str = ""
    key: str = ""

    @classmethod
    def of(cls, ca: PathLike | None, cert: PathLike | None, key: PathLike | None) -> TLSFiles | None:
        """The files given, or None when none is; a certificate without
        its key (or a key without its certificate) is refused."""
        f = cls(*(os.fspath(p) if p else "" for p in (ca, cert, key)))
        if bool(f.cert) != bool(f.key):
            raise InvalidArgument(
                "stoker: TLS: a client certificate and its key go together: give tls_cert and tls_key, or neither"
            )
        return f if f.ca or f.cert else None

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials from the files as they are now."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read_pem("tls_ca", self.ca),
            private_key=_read_pem("tls_key", self.key),
            certificate_chain=_read_pem("tls_cert", self.cert),
        )


def _read_pem(option: str, path: str) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise InvalidArgument(f"stoker: TLS: {option} {path}: {err.strerror or err}") from err
    if b"-----BEGIN " not in data:
        raise InvalidArgument(f"stoker: TLS: {option} {path}: no PEM block in it")
    return data


# What gRPC's details say of a failed handshake (lowercased), and what it
# means. Checked in order.
_VERIFY_SERVER = ("certificate_verify_failed", "certificate verify failed")
_HOSTNAME = ("hostname verification",)
_NOT_TLS = ("wrong_version_number", "packet_length_too_long", "http_request")
# The server ended the handshake: in TLS 1.3 the client finishes first,
# so a refused (or missing) client certificate shows as the server's alert
# on the first read, which gRPC reports as a record it cannot decrypt.
_REFUSED = (
    "unwrap failed",
    "tsi_data_corrupted",
    "alert_certificate_required",
    "alert_bad_certificate",
    "alert_unknown_ca",
    "alert_certificate_unknown",
    "alert_handshake_failure",
)
# Any other protocol failure of the handshake; not a connection that
# closed in it ("Handshake read failed (Socket closed)"), which a server
# that restarts causes and a retry gets past.
_HANDSHAKE = ("tls handshake failed", "ssl handshake failed", "ssl_error_ssl", "tsi_protocol_failure")


def handshake_error(err: grpc.RpcError, *, op: str, target: str, files: TLSFiles | None) -> TLSError | None:
    """The TLSError that err, from a call on a TLS channel to target, is
    when its details say the TLS handshake failed; None otherwise. files
    are the client's (None: credentials given as they are)."""
    if not isinstance(err, grpc.Call) or err.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    details = err.details() or ""
    d = details.lower()
    host = _host(target)
    if any(s in d for s in _HOSTNAME):
        why = (
            f"the server's certificate does not name {host}, the host of the address: dial a name or IP "
            "address the certificate lists (DNS or IP subject alternative name)"
        )
    elif any(s in d for s in _VERIFY_SERVER):
        ca = f"the CA bundle {files.ca}" if files is not None and files.ca else "the system's roots (no tls_ca given)"
        why = f"the server's certificate is not verified by {ca}: give the CA that issued it as tls_ca"
    elif any(s in d for s in _NOT_TLS):
        why = (
            "the server did not answer with TLS: this port does not serve TLS (stokerd without --tls-cert, or "
            "another server); connect without TLS options"
        )
    elif any(s in d for s in _REFUSED):
        if files is not None and not files.cert:
            why = (
                "the server ended the handshake: it requires a client certificate (stokerd --tls-ca, mutual TLS) "
                "and this client sent none: give tls_cert and tls_key"
            )
        elif files is not None:
            why = (
                f"the server ended the handshake: it refused the client certificate {files.cert} (it must be "
                "issued by a CA in the server's --tls-ca bundle, be valid now and allow client authentication)"
            )
        else:
            why = (
                "the server ended the handshake: it refused this client's certificate, or requires one and "
                "none was sent (stokerd --tls-ca, mutual TLS)"
            )
    elif any(s in d for s in _HANDSHAKE):
        why = "the TLS handshake failed"
    else:
        return None
    return TLSError(
        f"stoker {op} at {target}: TLS: {why} (not retried; gRPC UNAVAILABLE: {details})",
        code=err.code(),
        details=details,
    )


def _host(target: str) -> str:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return target
    return host.strip("[]")
