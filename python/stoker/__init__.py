"""Python clients of Stoker: keep GPUs fed from S3.

``stoker.Client`` is the framework-free gRPC client; ``stoker.torch`` has
the PyTorch ``StokerDataset`` and ``stoker.tf`` the ``tf.data`` source.
Those two import their framework and are imported only when asked for.

``import stoker`` imports the values (:mod:`stoker.types`) and the errors
only; ``stoker.Client`` (and with it grpc) is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .decode import decode_sample
from .errors import (
    Cancelled,
    CorruptShard,
    DatasetChanged,
    DatasetNotFound,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    ServerUnavailable,
    StokerError,
    TLSError,
)
from .types import (
    WINDOW_ALL,
    Batch,
    ColumnInfo,
    Cursor,
    DatasetInfo,
    FieldInfo,
    PrefetchHint,
    PrefetchProgress,
    PrefetchStatus,
    Sample,
    ShardInfo,
    Stats,
)

if TYPE_CHECKING:
    from .client import DEFAULT_SERVER, Client

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_SERVER",
    "WINDOW_ALL",
    "Batch",
    "Cancelled",
    "Client",
    "ColumnInfo",
    "CorruptShard",
    "Cursor",
    "DatasetChanged",
    "DatasetInfo",
    "DatasetNotFound",
    "FieldInfo",
    "InvalidArgument",
    "PermissionDenied",
    "PrefetchHint",
    "PrefetchProgress",
    "PrefetchStatus",
    "ResourceExhausted",
    "Sample",
    "ServerUnavailable",
    "ShardInfo",
    "Stats",
    "StokerError",
    "TLSError",
    "decode_sample",
    "__version__",
]

# Names of stoker.client, imported on first use (PEP 562).
_FROM_CLIENT = ("Client", "DEFAULT_SERVER")
# Modules that `import stoker` imported when it imported the client, so
# that `stoker.shm` and the like still work after `import stoker` alone.
_SUBMODULES = ("client", "auth", "gds", "shm", "split", "tls", "retry", "progress")


def __getattr__(name: str) -> Any:
    if name in _FROM_CLIENT:
        value = getattr(importlib.import_module(".client", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_FROM_CLIENT))
