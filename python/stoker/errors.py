"""Exceptions raised by the Stoker client, mapped from gRPC status codes.

Every exception keeps the server's message, which names what failed and
where (the shard object, the request field), and the gRPC code it came
from. Callers branch on the class, never on the message. This module does
not import grpc (it knows a code by its name), so stoker.types can use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import grpc

__all__ = [
    "StokerError",
    "InvalidArgument",
    "DatasetNotFound",
    "PermissionDenied",
    "CorruptShard",
    "DatasetChanged",
    "ResourceExhausted",
    "ServerUnavailable",
    "TLSError",
    "Cancelled",
    "from_rpc_error",
]


class StokerError(Exception):
    """Base of every error the Stoker client raises.

    ``code`` is the gRPC status code (None when the error did not come
    from the server), ``details`` the server's message.
    """

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class InvalidArgument(StokerError, ValueError):
    """A request argument is wrong (bad URL, batch size, rank, cursor)."""


class DatasetNotFound(StokerError, LookupError):
    """The dataset URL, or one of its shards, does not exist in storage."""


class PermissionDenied(StokerError, PermissionError):
    """Storage or the server refused access."""


class CorruptShard(StokerError):
    """A shard could not be parsed (truncated or malformed tar)."""


class DatasetChanged(StokerError):
    """A shard changed in storage (new ETag) while an epoch read it."""


class ResourceExhausted(StokerError):
    """The request is too big for the server (memory, message size)."""


class ServerUnavailable(StokerError, ConnectionError):
    """The server (or its storage) could not be reached, retries included."""


class TLSError(ServerUnavailable):
    """The TLS handshake with the server failed: its certificate is not
    verified by the CA given or does not name the host dialled, or it
    refused the client certificate (or its absence). gRPC reports it as
    UNAVAILABLE; the client raises it at once instead of retrying, since a
    retry meets the same certificates (see stoker.tls)."""


class Cancelled(StokerError):
    """The call was cancelled or ran past its deadline."""


_BY_CODE: dict[str, type[StokerError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "OUT_OF_RANGE": InvalidArgument,
    "NOT_FOUND": DatasetNotFound,
    "PERMISSION_DENIED": PermissionDenied,
    "UNAUTHENTICATED": PermissionDenied,
    "DATA_LOSS": CorruptShard,
    "ABORTED": DatasetChanged,
    "RESOURCE_EXHAUSTED": ResourceExhausted,
    "UNAVAILABLE": ServerUnavailable,
    "CANCELLED": Cancelled,
    "DEADLINE_EXCEEDED": Cancelled,
}


def from_rpc_error(err: grpc.RpcError, *, op: str, target: str) -> StokerError:
    """Turn a gRPC error into the matching StokerError.

    op names the call ("StreamBatches"), target the server address; both go
    into the message next to the server's own details. An error that is a
    grpc.Call has its code and details; any other is a StokerError.
    """
    call: Any = err if callable(getattr(err, "code", None)) and callable(getattr(err, "details", None)) else None
    code: grpc.StatusCode | None = call.code() if call is not None else None
    details = (call.details() if call is not None else None) or str(err)
    name = code.name if code is not None else "UNKNOWN"
    cls = _BY_CODE.get(name, StokerError)
    return cls(f"stoker {op} at {target}: {name}: {details}", code=code, details=details)
