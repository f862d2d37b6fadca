from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PreprocessOn(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREPROCESS_ON_UNSPECIFIED: _ClassVar[PreprocessOn]
    PREPROCESS_ON_LOCAL: _ClassVar[PreprocessOn]
    PREPROCESS_ON_ANY: _ClassVar[PreprocessOn]
PREPROCESS_ON_UNSPECIFIED: PreprocessOn
PREPROCESS_ON_LOCAL: PreprocessOn
PREPROCESS_ON_ANY: PreprocessOn

class OpenDatasetRequest(_message.Message):
    __slots__ = ("url", "format", "fields")
    URL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    url: str
    format: str
    fields: bool
    def __init__(self, url: _Optional[str] = ..., format: _Optional[str] = ..., fields: _Optional[bool] = ...) -> None: ...

class OpenDatasetResponse(_message.Message):
    __slots__ = ("dataset",)
    DATASET_FIELD_NUMBER: _ClassVar[int]
    dataset: Dataset
    def __init__(self, dataset: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("url", "format", "shards", "num_samples", "total_bytes", "from_stored_manifest", "arrow_schema", "columns", "counted", "counts_from", "fields")
    URL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FROM_STORED_MANIFEST_FIELD_NUMBER: _ClassVar[int]
    ARROW_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    COUNTED_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FROM_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    url: str
    format: str
    shards: _containers.RepeatedCompositeFieldContainer[Shard]
    num_samples: int
    total_bytes: int
    from_stored_manifest: bool
    arrow_schema: bytes
    columns: _containers.RepeatedCompositeFieldContainer[Column]
    counted: bool
    counts_from: str
    fields: _containers.RepeatedCompositeFieldContainer[FieldInfo]
    def __init__(self, url: _Optional[str] = ..., format: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[Shard, _Mapping]]] = ..., num_samples: _Optional[int] = ..., total_bytes: _Optional[int] = ..., from_stored_manifest: _Optional[bool] = ..., arrow_schema: _Optional[bytes] = ..., columns: _Optional[_Iterable[_Union[Column, _Mapping]]] = ..., counted: _Optional[bool] = ..., counts_from: _Optional[str] = ..., fields: _Optional[_Iterable[_Union[FieldInfo, _Mapping]]] = ...) -> None: ...

class FieldInfo(_message.Message):
    __slots__ = ("name", "samples")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    name: str
    samples: int
    def __init__(self, name: _Optional[str] = ..., samples: _Optional[int] = ...) -> None: ...

class Column(_message.Message):
    __slots__ = ("name", "type", "nullable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    nullable: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., nullable: _Optional[bool] = ...) -> None: ...

class Shard(_message.Message):
    __slots__ = ("object", "size", "etag", "samples", "part", "offset", "length")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    object: str
    size: int
    etag: str
    samples: int
    part: int
    offset: int
    length: int
    def __init__(self, object: _Optional[str] = ..., size: _Optional[int] = ..., etag: _Optional[str] = ..., samples: _Optional[int] = ..., part: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class Cursor(_message.Message):
    __slots__ = ("epoch", "position", "plan_version")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    PLAN_VERSION_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    position: int
    plan_version: int
    def __init__(self, epoch: _Optional[int] = ..., position: _Optional[int] = ..., plan_version: _Optional[int] = ...) -> None: ...

class StreamBatchesRequest(_message.Message):
    __slots__ = ("url", "format", "seed", "epoch", "rank", "world_size", "batch_size", "shuffle_window", "no_shuffle", "drop_last", "cursor", "columns", "shm", "shm_region_bytes", "gds", "shm_tier", "pipeline", "packed", "shm_release_ring", "preprocess_on")
    URL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    NO_SHUFFLE_FIELD_NUMBER: _ClassVar[int]
    DROP_LAST_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    SHM_FIELD_NUMBER: _ClassVar[int]
    SHM_REGION_BYTES_FIELD_NUMBER: _ClassVar[int]
    GDS_FIELD_NUMBER: _ClassVar[int]
    SHM_TIER_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    SHM_RELEASE_RING_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_ON_FIELD_NUMBER: _ClassVar[int]
    url: str
    format: str
    seed: int
    epoch: int
    rank: int
    world_size: int
    batch_size: int
    shuffle_window: int
    no_shuffle: bool
    drop_last: bool
    cursor: Cursor
    columns: _containers.RepeatedScalarFieldContainer[str]
    shm: bool
    shm_region_bytes: int
    gds: bool
    shm_tier: bool
    pipeline: Pipeline
    packed: bool
    shm_release_ring: bool
    preprocess_on: PreprocessOn
    def __init__(self, url: _Optional[str] = ..., format: _Optional[str] = ..., seed: _Optional[int] = ..., epoch: _Optional[int] = ..., rank: _Optional[int] = ..., world_size: _Optional[int] = ..., batch_size: _Optional[int] = ..., shuffle_window: _Optional[int] = ..., no_shuffle: _Optional[bool] = ..., drop_last: _Optional[bool] = ..., cursor: _Optional[_Union[Cursor, _Mapping]] = ..., columns: _Optional[_Iterable[str]] = ..., shm: _Optional[bool] = ..., shm_region_bytes: _Optional[int] = ..., gds: _Optional[bool] = ..., shm_tier: _Optional[bool] = ..., pipeline: _Optional[_Union[Pipeline, _Mapping]] = ..., packed: _Optional[bool] = ..., shm_release_ring: _Optional[bool] = ..., preprocess_on: _Optional[_Union[PreprocessOn, str]] = ...) -> None: ...

class StreamBatchesResponse(_message.Message):
    __slots__ = ("epoch", "step", "rank", "samples", "final", "cursor", "arrow_ipc", "row_shards", "first_position", "shm_region", "shm_lease", "shm_tier", "tensors", "sample_table", "sample_data")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    ROW_SHARDS_FIELD_NUMBER: _ClassVar[int]
    FIRST_POSITION_FIELD_NUMBER: _ClassVar[int]
    SHM_REGION_FIELD_NUMBER: _ClassVar[int]
    SHM_LEASE_FIELD_NUMBER: _ClassVar[int]
    SHM_TIER_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_TABLE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_DATA_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    step: int
    rank: int
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    final: bool
    cursor: Cursor
    arrow_ipc: bytes
    row_shards: _containers.RepeatedScalarFieldContainer[int]
    first_position: int
    shm_region: ShmRegion
    shm_lease: ShmLease
    shm_tier: ShmRegion
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    sample_table: bytes
    sample_data: bytes
    def __init__(self, epoch: _Optional[int] = ..., step: _Optional[int] = ..., rank: _Optional[int] = ..., samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., final: _Optional[bool] = ..., cursor: _Optional[_Union[Cursor, _Mapping]] = ..., arrow_ipc: _Optional[bytes] = ..., row_shards: _Optional[_Iterable[int]] = ..., first_position: _Optional[int] = ..., shm_region: _Optional[_Union[ShmRegion, _Mapping]] = ..., shm_lease: _Optional[_Union[ShmLease, _Mapping]] = ..., shm_tier: _Optional[_Union[ShmRegion, _Mapping]] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., sample_table: _Optional[bytes] = ..., sample_data: _Optional[bytes] = ...) -> None: ...

class ShmRegion(_message.Message):
    __slots__ = ("id", "path", "size", "release_ring")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RELEASE_RING_FIELD_NUMBER: _ClassVar[int]
    id: str
    path: str
    size: int
    release_ring: int
    def __init__(self, id: _Optional[str] = ..., path: _Optional[str] = ..., size: _Optional[int] = ..., release_ring: _Optional[int] = ...) -> None: ...

class ShmLease(_message.Message):
    __slots__ = ("id", "offset", "length")
    ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    id: int
    offset: int
    length: int
    def __init__(self, id: _Optional[int] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class ReleaseShmRequest(_message.Message):
    __slots__ = ("region", "leases")
    REGION_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    region: str
    leases: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, region: _Optional[str] = ..., leases: _Optional[_Iterable[int]] = ...) -> None: ...

class ReleaseShmResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Sample(_message.Message):
    __slots__ = ("key", "position", "shard", "fields", "error")
    KEY_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    key: str
    position: int
    shard: int
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    error: str
    def __init__(self, key: _Optional[str] = ..., position: _Optional[int] = ..., shard: _Optional[int] = ..., fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...

class Field(_message.Message):
    __slots__ = ("name", "data", "shm_offset", "shm_length", "extent", "shm_tier")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SHM_LENGTH_FIELD_NUMBER: _ClassVar[int]
    EXTENT_FIELD_NUMBER: _ClassVar[int]
    SHM_TIER_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: bytes
    shm_offset: int
    shm_length: int
    extent: FileExtent
    shm_tier: bool
    def __init__(self, name: _Optional[str] = ..., data: _Optional[bytes] = ..., shm_offset: _Optional[int] = ..., shm_length: _Optional[int] = ..., extent: _Optional[_Union[FileExtent, _Mapping]] = ..., shm_tier: _Optional[bool] = ...) -> None: ...

class FileExtent(_message.Message):
    __slots__ = ("path", "offset", "length")
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    path: str
    offset: int
    length: int
    def __init__(self, path: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("memory_hits", "disk_hits", "misses", "memory_bytes", "memory_capacity", "disk_bytes", "disk_capacity", "storage_requests", "storage_bytes", "stall_nanos", "samples_served", "bytes_served", "active_streams", "evictions", "shm_regions", "shm_region_bytes", "shm_leases", "shm_leased_bytes", "shm_bytes_served", "host", "shm_waits", "shm_extent_bytes", "shm_tier_bytes", "storage_range_requests", "storage_range_bytes", "disk_range_hits", "counting", "cached_bytes", "pipeline")
    MEMORY_HITS_FIELD_NUMBER: _ClassVar[int]
    DISK_HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    STORAGE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STALL_NANOS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_SERVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_SERVED_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_STREAMS_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    SHM_REGIONS_FIELD_NUMBER: _ClassVar[int]
    SHM_REGION_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHM_LEASES_FIELD_NUMBER: _ClassVar[int]
    SHM_LEASED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHM_BYTES_SERVED_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    SHM_WAITS_FIELD_NUMBER: _ClassVar[int]
    SHM_EXTENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHM_TIER_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_RANGE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_RANGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_RANGE_HITS_FIELD_NUMBER: _ClassVar[int]
    COUNTING_FIELD_NUMBER: _ClassVar[int]
    CACHED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    memory_hits: int
    disk_hits: int
    misses: int
    memory_bytes: int
    memory_capacity: int
    disk_bytes: int
    disk_capacity: int
    storage_requests: int
    storage_bytes: int
    stall_nanos: int
    samples_served: int
    bytes_served: int
    active_streams: int
    evictions: int
    shm_regions: int
    shm_region_bytes: int
    shm_leases: int
    shm_leased_bytes: int
    shm_bytes_served: int
    host: HostInfo
    shm_waits: int
    shm_extent_bytes: int
    shm_tier_bytes: int
    storage_range_requests: int
    storage_range_bytes: int
    disk_range_hits: int
    counting: _containers.RepeatedCompositeFieldContainer[CountingProgress]
    cached_bytes: int
    pipeline: PipelineStats
    def __init__(self, memory_hits: _Optional[int] = ..., disk_hits: _Optional[int] = ..., misses: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., memory_capacity: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., disk_capacity: _Optional[int] = ..., storage_requests: _Optional[int] = ..., storage_bytes: _Optional[int] = ..., stall_nanos: _Optional[int] = ..., samples_served: _Optional[int] = ..., bytes_served: _Optional[int] = ..., active_streams: _Optional[int] = ..., evictions: _Optional[int] = ..., shm_regions: _Optional[int] = ..., shm_region_bytes: _Optional[int] = ..., shm_leases: _Optional[int] = ..., shm_leased_bytes: _Optional[int] = ..., shm_bytes_served: _Optional[int] = ..., host: _Optional[_Union[HostInfo, _Mapping]] = ..., shm_waits: _Optional[int] = ..., shm_extent_bytes: _Optional[int] = ..., shm_tier_bytes: _Optional[int] = ..., storage_range_requests: _Optional[int] = ..., storage_range_bytes: _Optional[int] = ..., disk_range_hits: _Optional[int] = ..., counting: _Optional[_Iterable[_Union[CountingProgress, _Mapping]]] = ..., cached_bytes: _Optional[int] = ..., pipeline: _Optional[_Union[PipelineStats, _Mapping]] = ...) -> None: ...

class PipelineStats(_message.Message):
    __slots__ = ("workers", "jpeg_decoder", "samples", "busy_nanos", "errors", "dct_scaled", "bytes_out", "peer_samples_sent", "peer_fallbacks", "peer_samples_served")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    JPEG_DECODER_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    BUSY_NANOS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    DCT_SCALED_FIELD_NUMBER: _ClassVar[int]
    BYTES_OUT_FIELD_NUMBER: _ClassVar[int]
    PEER_SAMPLES_SENT_FIELD_NUMBER: _ClassVar[int]
    PEER_FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    PEER_SAMPLES_SERVED_FIELD_NUMBER: _ClassVar[int]
    workers: int
    jpeg_decoder: str
    samples: int
    busy_nanos: int
    errors: int
    dct_scaled: int
    bytes_out: int
    peer_samples_sent: int
    peer_fallbacks: int
    peer_samples_served: int
    def __init__(self, workers: _Optional[int] = ..., jpeg_decoder: _Optional[str] = ..., samples: _Optional[int] = ..., busy_nanos: _Optional[int] = ..., errors: _Optional[int] = ..., dct_scaled: _Optional[int] = ..., bytes_out: _Optional[int] = ..., peer_samples_sent: _Optional[int] = ..., peer_fallbacks: _Optional[int] = ..., peer_samples_served: _Optional[int] = ...) -> None: ...

class CountingProgress(_message.Message):
    __slots__ = ("url", "shards_counted", "shards_total")
    URL_FIELD_NUMBER: _ClassVar[int]
    SHARDS_COUNTED_FIELD_NUMBER: _ClassVar[int]
    SHARDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    url: str
    shards_counted: int
    shards_total: int
    def __init__(self, url: _Optional[str] = ..., shards_counted: _Optional[int] = ..., shards_total: _Optional[int] = ...) -> None: ...

class HostInfo(_message.Message):
    __slots__ = ("nvml", "nvml_reason", "driver_version", "gpus", "numa_nodes", "memlock_bytes", "huge_page_bytes", "huge_pages_free", "cufile", "cufile_reason", "shm_dir", "ipc_lock", "memory_region", "unix_socket")
    NVML_FIELD_NUMBER: _ClassVar[int]
    NVML_REASON_FIELD_NUMBER: _ClassVar[int]
    DRIVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    GPUS_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODES_FIELD_NUMBER: _ClassVar[int]
    MEMLOCK_BYTES_FIELD_NUMBER: _ClassVar[int]
    HUGE_PAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    HUGE_PAGES_FREE_FIELD_NUMBER: _ClassVar[int]
    CUFILE_FIELD_NUMBER: _ClassVar[int]
    CUFILE_REASON_FIELD_NUMBER: _ClassVar[int]
    SHM_DIR_FIELD_NUMBER: _ClassVar[int]
    IPC_LOCK_FIELD_NUMBER: _ClassVar[int]
    MEMORY_REGION_FIELD_NUMBER: _ClassVar[int]
    UNIX_SOCKET_FIELD_NUMBER: _ClassVar[int]
    nvml: bool
    nvml_reason: str
    driver_version: str
    gpus: _containers.RepeatedCompositeFieldContainer[GpuDevice]
    numa_nodes: _containers.RepeatedScalarFieldContainer[int]
    memlock_bytes: int
    huge_page_bytes: int
    huge_pages_free: int
    cufile: bool
    cufile_reason: str
    shm_dir: str
    ipc_lock: bool
    memory_region: MemoryRegion
    unix_socket: str
    def __init__(self, nvml: _Optional[bool] = ..., nvml_reason: _Optional[str] = ..., driver_version: _Optional[str] = ..., gpus: _Optional[_Iterable[_Union[GpuDevice, _Mapping]]] = ..., numa_nodes: _Optional[_Iterable[int]] = ..., memlock_bytes: _Optional[int] = ..., huge_page_bytes: _Optional[int] = ..., huge_pages_free: _Optional[int] = ..., cufile: _Optional[bool] = ..., cufile_reason: _Optional[str] = ..., shm_dir: _Optional[str] = ..., ipc_lock: _Optional[bool] = ..., memory_region: _Optional[_Union[MemoryRegion, _Mapping]] = ..., unix_socket: _Optional[str] = ...) -> None: ...

class MemoryRegion(_message.Message):
    __slots__ = ("region", "bytes", "locked", "lock_reason", "huge_pages", "numa_node", "numa_reason", "reason", "shared_path", "share_reason")
    REGION_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LOCKED_FIELD_NUMBER: _ClassVar[int]
    LOCK_REASON_FIELD_NUMBER: _ClassVar[int]
    HUGE_PAGES_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODE_FIELD_NUMBER: _ClassVar[int]
    NUMA_REASON_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SHARED_PATH_FIELD_NUMBER: _ClassVar[int]
    SHARE_REASON_FIELD_NUMBER: _ClassVar[int]
    region: bool
    bytes: int
    locked: bool
    lock_reason: str
    huge_pages: bool
    numa_node: int
    numa_reason: str
    reason: str
    shared_path: str
    share_reason: str
    def __init__(self, region: _Optional[bool] = ..., bytes: _Optional[int] = ..., locked: _Optional[bool] = ..., lock_reason: _Optional[str] = ..., huge_pages: _Optional[bool] = ..., numa_node: _Optional[int] = ..., numa_reason: _Optional[str] = ..., reason: _Optional[str] = ..., shared_path: _Optional[str] = ..., share_reason: _Optional[str] = ...) -> None: ...

class GpuDevice(_message.Message):
    __slots__ = ("index", "name", "uuid", "memory_bytes", "pci_bus_id", "numa_node")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UUID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PCI_BUS_ID_FIELD_NUMBER: _ClassVar[int]
    NUMA_NODE_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    uuid: str
    memory_bytes: int
    pci_bus_id: str
    numa_node: int
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., uuid: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., pci_bus_id: _Optional[str] = ..., numa_node: _Optional[int] = ...) -> None: ...

class PrefetchRequest(_message.Message):
    __slots__ = ("url", "format", "seed", "epochs", "shuffle_window", "no_shuffle", "deadline_unix_ms", "budget_bytes", "index_only")
    URL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SHUFFLE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    NO_SHUFFLE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    INDEX_ONLY_FIELD_NUMBER: _ClassVar[int]
    url: str
    format: str
    seed: int
    epochs: _containers.RepeatedScalarFieldContainer[int]
    shuffle_window: int
    no_shuffle: bool
    deadline_unix_ms: int
    budget_bytes: int
    index_only: bool
    def __init__(self, url: _Optional[str] = ..., format: _Optional[str] = ..., seed: _Optional[int] = ..., epochs: _Optional[_Iterable[int]] = ..., shuffle_window: _Optional[int] = ..., no_shuffle: _Optional[bool] = ..., deadline_unix_ms: _Optional[int] = ..., budget_bytes: _Optional[int] = ..., index_only: _Optional[bool] = ...) -> None: ...

class PrefetchResponse(_message.Message):
    __slots__ = ("hint_id", "bytes_total", "shards_total")
    HINT_ID_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SHARDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    hint_id: str
    bytes_total: int
    shards_total: int
    def __init__(self, hint_id: _Optional[str] = ..., bytes_total: _Optional[int] = ..., shards_total: _Optional[int] = ...) -> None: ...

class PrefetchStatusRequest(_message.Message):
    __slots__ = ("hint_id",)
    HINT_ID_FIELD_NUMBER: _ClassVar[int]
    hint_id: str
    def __init__(self, hint_id: _Optional[str] = ...) -> None: ...

class PrefetchStatusResponse(_message.Message):
    __slots__ = ("hint_id", "nodes", "bytes_done", "bytes_total", "done")
    HINT_ID_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    hint_id: str
    nodes: _containers.RepeatedCompositeFieldContainer[PrefetchProgress]
    bytes_done: int
    bytes_total: int
    done: bool
    def __init__(self, hint_id: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[PrefetchProgress, _Mapping]]] = ..., bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...

class PrefetchProgress(_message.Message):
    __slots__ = ("node", "bytes_done", "bytes_total", "shards_done", "shards_total", "state", "error")
    NODE_FIELD_NUMBER: _ClassVar[int]
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SHARDS_DONE_FIELD_NUMBER: _ClassVar[int]
    SHARDS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    node: str
    bytes_done: int
    bytes_total: int
    shards_done: int
    shards_total: int
    state: str
    error: str
    def __init__(self, node: _Optional[str] = ..., bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ..., shards_done: _Optional[int] = ..., shards_total: _Optional[int] = ..., state: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class Pipeline(_message.Message):
    __slots__ = ("seed", "outputs", "on_error")
    SEED_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ON_ERROR_FIELD_NUMBER: _ClassVar[int]
    seed: int
    outputs: _containers.RepeatedCompositeFieldContainer[PipelineOutput]
    on_error: str
    def __init__(self, seed: _Optional[int] = ..., outputs: _Optional[_Iterable[_Union[PipelineOutput, _Mapping]]] = ..., on_error: _Optional[str] = ...) -> None: ...

class PipelineOutput(_message.Message):
    __slots__ = ("name", "field", "decode", "ops", "dtype", "layout", "shape", "channels", "params", "full_resolution")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DECODE_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    FULL_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    field: str
    decode: str
    ops: _containers.RepeatedCompositeFieldContainer[ImageOp]
    dtype: str
    layout: str
    shape: TensorShape
    channels: int
    params: bool
    full_resolution: bool
    def __init__(self, name: _Optional[str] = ..., field: _Optional[str] = ..., decode: _Optional[str] = ..., ops: _Optional[_Iterable[_Union[ImageOp, _Mapping]]] = ..., dtype: _Optional[str] = ..., layout: _Optional[str] = ..., shape: _Optional[_Union[TensorShape, _Mapping]] = ..., channels: _Optional[int] = ..., params: _Optional[bool] = ..., full_resolution: _Optional[bool] = ...) -> None: ...

class TensorShape(_message.Message):
    __slots__ = ("dims",)
    DIMS_FIELD_NUMBER: _ClassVar[int]
    dims: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, dims: _Optional[_Iterable[int]] = ...) -> None: ...

class ImageOp(_message.Message):
    __slots__ = ("resize", "center_crop", "random_resized_crop", "horizontal_flip", "normalize")
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    CENTER_CROP_FIELD_NUMBER: _ClassVar[int]
    RANDOM_RESIZED_CROP_FIELD_NUMBER: _ClassVar[int]
    HORIZONTAL_FLIP_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    resize: Resize
    center_crop: CenterCrop
    random_resized_crop: RandomResizedCrop
    horizontal_flip: HorizontalFlip
    normalize: Normalize
    def __init__(self, resize: _Optional[_Union[Resize, _Mapping]] = ..., center_crop: _Optional[_Union[CenterCrop, _Mapping]] = ..., random_resized_crop: _Optional[_Union[RandomResizedCrop, _Mapping]] = ..., horizontal_flip: _Optional[_Union[HorizontalFlip, _Mapping]] = ..., normalize: _Optional[_Union[Normalize, _Mapping]] = ...) -> None: ...

class Resize(_message.Message):
    __slots__ = ("shorter", "height", "width")
    SHORTER_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    shorter: int
    height: int
    width: int
    def __init__(self, shorter: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...

class CenterCrop(_message.Message):
    __slots__ = ("height", "width")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...

class RandomResizedCrop(_message.Message):
    __slots__ = ("height", "width", "scale_min", "scale_max", "ratio_min", "ratio_max")
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    SCALE_MIN_FIELD_NUMBER: _ClassVar[int]
    SCALE_MAX_FIELD_NUMBER: _ClassVar[int]
    RATIO_MIN_FIELD_NUMBER: _ClassVar[int]
    RATIO_MAX_FIELD_NUMBER: _ClassVar[int]
    height: int
    width: int
    scale_min: float
    scale_max: float
    ratio_min: float
    ratio_max: float
    def __init__(self, height: _Optional[int] = ..., width: _Optional[int] = ..., scale_min: _Optional[float] = ..., scale_max: _Optional[float] = ..., ratio_min: _Optional[float] = ..., ratio_max: _Optional[float] = ...) -> None: ...

class HorizontalFlip(_message.Message):
    __slots__ = ("p",)
    P_FIELD_NUMBER: _ClassVar[int]
    p: float
    def __init__(self, p: _Optional[float] = ...) -> None: ...

class Normalize(_message.Message):
    __slots__ = ("mean", "std")
    MEAN_FIELD_NUMBER: _ClassVar[int]
    STD_FIELD_NUMBER: _ClassVar[int]
    mean: _containers.RepeatedScalarFieldContainer[float]
    std: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, mean: _Optional[_Iterable[float]] = ..., std: _Optional[_Iterable[float]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("name", "dtype", "shape", "row_offset", "rows", "data", "shm_offset", "shm_length", "lengths")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    ROW_OFFSET_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SHM_LENGTH_FIELD_NUMBER: _ClassVar[int]
    LENGTHS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    row_offset: int
    rows: int
    data: bytes
    shm_offset: int
    shm_length: int
    lengths: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., row_offset: _Optional[int] = ..., rows: _Optional[int] = ..., data: _Optional[bytes] = ..., shm_offset: _Optional[int] = ..., shm_length: _Optional[int] = ..., lengths: _Optional[_Iterable[int]] = ...) -> None: ...
