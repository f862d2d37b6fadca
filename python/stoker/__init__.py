"""Python clients of Stoker: keep GPUs fed from S3.

``stoker.Client`` is the framework-free gRPC client; ``stoker.torch`` has
the PyTorch ``StokerDataset`` and ``stoker.tf`` the ``tf.data`` source.
Those two import their framework and are imported only when asked for.
"""

from .client import (
    DEFAULT_SERVER,
    WINDOW_ALL,
    Batch,
    Client,
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
