"""The gRPC channel of a Client: its options and its credentials."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from . import errors
from .tls import PathLike, TLSFiles, is_local

__all__ = ["channel_options", "credentials_for", "open_channel"]


def channel_options(
    max_message_bytes: int, backoff: tuple[float, float], extra: Sequence[tuple[str, Any]]
) -> list[tuple[str, Any]]:
    """A Client's channel options, ``extra`` (the caller's) last."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", 64 << 20),
        # Reconnect as eagerly as streams are resumed, not after gRPC's
        # default backoff of up to two minutes.
        ("grpc.initial_reconnect_backoff_ms", int(backoff[0] * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(backoff[0] * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(backoff[1] * 1000)),
        # Streams read on the iterating thread, not handed over from
        # gRPC's channel-spin thread message by message: about twice the
        # batches per second (grpc.experimental.ChannelOptions).
        ("SingleThreadedUnaryStream", 1),
        *extra,
    ]


def credentials_for(
    addr: str,
    credentials: grpc.ChannelCredentials | None,
    tls_ca: PathLike | None,
    tls_cert: PathLike | None,
    tls_key: PathLike | None,
) -> tuple[grpc.ChannelCredentials | None, TLSFiles | None]:
    """The credentials of a channel to addr (None: plaintext) and the TLS
    files they were read from: a ``unix:`` address has neither."""
    files = TLSFiles.of(tls_ca, tls_cert, tls_key)
    if files is not None and credentials is not None:
        raise errors.InvalidArgument("stoker: give credentials or tls_ca/tls_cert/tls_key, not both")
    if is_local(addr):
        return None, None
    if files is not None:
        credentials = files.credentials()
    return credentials, files


def open_channel(
    addr: str, credentials: grpc.ChannelCredentials | None, options: Sequence[tuple[str, Any]]
) -> grpc.Channel:
    """A channel to addr, secure when there are credentials."""
    if credentials is not None:
        return grpc.secure_channel(addr, credentials, options=options)
    return grpc.insecure_channel(addr, options=options)
